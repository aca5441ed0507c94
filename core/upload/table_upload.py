"""Read an uploaded CSV of rows to explain with a built-in tabular model.

The file must hold the model's feature columns (by name, any order; other columns are kept for
display and ignored by the model). An optional ``label`` column gives the true class (name or
index). Parsed by pandas from memory: nothing is executed or unpickled, and every problem is
reported with the column and row to fix.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np
import pandas as pd

from core.bundle import DataBundle
from core.upload.data_upload import numeric_matrix
from core.errors import InputShapeError

MAX_BYTES = 5 * 1024 * 1024
MAX_ROWS = 5000
LABEL_COLUMN = "label"


def template_csv(bundle: DataBundle, rows: int = 20) -> bytes:
    """The first ``rows`` rows of ``bundle`` in the upload format (feature columns + label)."""
    frame = pd.DataFrame(np.asarray(bundle.x[:rows]), columns=list(bundle.feature_names or ()))
    if bundle.y is not None:
        frame[LABEL_COLUMN] = [bundle.class_names[int(y)] for y in bundle.y[:rows]]
    return frame.to_csv(index=False).encode("utf-8")


def load_table(data: bytes, feature_names: Sequence[str], class_names: Sequence[str], name: str = "upload",
               max_rows: int = MAX_ROWS) -> DataBundle:
    """Parse ``data`` (CSV bytes) into a tabular DataBundle over ``feature_names``.

    Raises
    ------
    InputShapeError
        Empty, too large or unreadable file; missing feature columns; non-numeric or missing
        values (naming the column and the first bad row); unknown labels.
    """
    if not data:
        raise InputShapeError("The uploaded file is empty.", hint="upload a CSV with a header row.")
    if len(data) > MAX_BYTES:
        raise InputShapeError(f"The uploaded table is {len(data) / 1e6:.1f} MB; up to {MAX_BYTES // 2**20} MB is accepted.",
                              hint=f"upload at most {max_rows} rows.")
    try:
        frame = pd.read_csv(io.BytesIO(data), nrows=max_rows + 1)
    except (UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError, ValueError) as exc:
        raise InputShapeError(f"The uploaded file is not a CSV table TrustLens can read ({type(exc).__name__}: "
                              f"{str(exc)[:200]}).", hint="save the table as comma-separated values with a header row.") from None
    frame.columns = [str(c).strip() for c in frame.columns]
    if len(frame) > max_rows:
        raise InputShapeError(f"The uploaded table has more than {max_rows} rows.", hint=f"upload at most {max_rows} rows.")
    if len(frame) == 0:
        raise InputShapeError("The uploaded table has a header but no rows.")
    missing = [f for f in feature_names if f not in frame.columns]
    if missing:
        shown = ", ".join(repr(m) for m in missing[:8]) + (f" and {len(missing) - 8} more" if len(missing) > 8 else "")
        raise InputShapeError(f"The uploaded table lacks {len(missing)} of the model's {len(feature_names)} feature "
                              f"columns: {shown}.", hint="start from the template CSV, which has every column.")
    x = numeric_matrix(frame, feature_names)
    y = _labels(frame, class_names) if LABEL_COLUMN in frame.columns else None
    return DataBundle(kind="tabular", x=x, y=y, class_names=tuple(class_names), feature_names=tuple(feature_names),
                      name=name, display=frame.reset_index(drop=True))


def _labels(frame: pd.DataFrame, class_names: Sequence[str]) -> np.ndarray:
    out = np.empty(len(frame), dtype=np.int64)
    names = [str(c) for c in class_names]
    for i, value in enumerate(frame[LABEL_COLUMN].tolist()):
        text = str(value).strip()
        if text in names:
            out[i] = names.index(text)
        elif text.lstrip("-").isdigit() and 0 <= int(text) < len(names):
            out[i] = int(text)
        else:
            raise InputShapeError(f"Row {i + 1} has label {value!r}, which is not a class.",
                                  hint=f"use a class name ({', '.join(names)}) or index 0-{len(names) - 1}, or drop the "
                                       f"'{LABEL_COLUMN}' column.")
    return out
