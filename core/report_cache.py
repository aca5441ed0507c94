"""Disk-cached versions of reports that pages would otherwise rebuild in every fresh server process.

``calibration_report`` costs seconds on MNIST's 10,000 test predictions (bootstrap intervals for
four versions of the predictions); st.cache_data keeps it for one process only, so after a restart
the calibration page paid it again although ``warm --all`` had run. Keyed by the content of the
predictions and labels, the bins and the methods.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from core.fingerprint import hash_array
from core.store import ArtifactStore, default_store


def calibration_report_cached(model: str, val_proba: Any, val_y: Any, test_proba: Any, test_y: Any, n_bins: int = 15,
                              store: ArtifactStore | None = None):
    """:func:`core.calibration.calibration_report` with its default methods and bootstrap, stored by content."""
    from core.calibration import METHODS, calibration_report

    arrays = [np.ascontiguousarray(a) for a in (val_proba, val_y, test_proba, test_y)]
    return (store or default_store()).cached(
        lambda: calibration_report(model, *arrays, n_bins=n_bins),
        op="calibration_report", data_fingerprint="".join(hash_array(a) for a in arrays),
        params={"model": model, "n_bins": int(n_bins), "methods": list(METHODS), "n_boot": 200},
        libraries=("numpy", "scipy", "scikit-learn"),
    )
