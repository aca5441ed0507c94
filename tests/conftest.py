"""Shared test set-up.

- ``TRUSTLENS_CACHE_DIR``: kept if set (reuse trained models between local runs), otherwise a
  fresh temporary folder for the whole session, so tests never touch the developer's cache.
- ``TRUSTLENS_DATA_DIR``: kept if set, otherwise ``../shared/data`` beside the checkout when it
  exists. Tests that need a non-embedded dataset use ``require_dataset``: they skip when the data
  is missing, and fail instead when ``TRUSTLENS_REQUIRE_DATA=1`` (set by .ci/run when it found the
  data), so CI cannot pass by silently skipping.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

if not os.environ.get("TRUSTLENS_CACHE_DIR"):
    os.environ["TRUSTLENS_CACHE_DIR"] = tempfile.mkdtemp(prefix="trustlens-test-cache-")
if not os.environ.get("TRUSTLENS_DATA_DIR"):
    candidate = ROOT.parent / "shared" / "data"
    if candidate.is_dir():
        os.environ["TRUSTLENS_DATA_DIR"] = str(candidate)


def require_dataset(dataset: str) -> None:
    """Skip (or fail, under TRUSTLENS_REQUIRE_DATA=1) when ``dataset`` is not available offline."""
    from core import datasets

    avail = datasets.availability(dataset)
    if avail.available:
        return
    message = f"{dataset} data not available offline: {avail.source}"
    if os.environ.get("TRUSTLENS_REQUIRE_DATA") == "1":
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture
def tmp_store(tmp_path):
    from core.store import ArtifactStore

    return ArtifactStore(tmp_path / "cache")


def pytest_collection_modifyitems(config, items):
    # GPU-marked tests skip cleanly on machines without CUDA (CI never has one).
    try:
        import torch

        has_cuda = torch.cuda.is_available()
    except Exception:  # pragma: no cover
        has_cuda = False
    if has_cuda:
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if item.get_closest_marker("gpu") is not None:
            item.add_marker(skip)
