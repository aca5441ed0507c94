"""Can the data be trusted: missing values, class balance, duplicates and train / test leakage, drift
between train and test, and suspected label errors. The ``data`` CLI verb and the Data section of the
Slices page print these.

- **Missing values** per column and split: a table's empty cells (the display columns, so a category
  "?" that the loader read as missing counts), empty texts, non-finite pixels.
- **Class balance**: samples per class and split.
- **Duplicates**: exact duplicates within each split, and test samples with an identical twin in the
  train split (leakage: the test score overstates what unseen data would get). Near-duplicates are
  exact duplicates after normalisation: texts lower-cased with punctuation and whitespace removed,
  images quantised to 8 grey levels, table rows rounded to 4 significant digits.
- **Drift** per feature (a table's columns; a text's length and header; an image's mean intensity):
  two-sample Kolmogorov-Smirnov for numbers, chi-square of the contingency table for categories
  (scipy), with p-values; flagged below 0.01 after a Bonferroni correction over the features.
- **Label errors** (confident learning, Northcutt et al. 2021, through cleanlab itself): samples whose
  given label the model's out-of-sample probabilities contradict, ranked by self-confidence. The test
  split's probabilities are the trained model's own (it never saw those samples).

Every list of samples carries their positions in the split, so a page can show them.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from core.bundle import DataBundle

DRIFT_ALPHA = 0.01
MAX_LISTED = 50
LIBRARIES = ("numpy", "pandas", "scipy", "cleanlab")


@dataclass
class DataReport:
    splits: dict[str, int]
    missing: list[dict[str, Any]]
    balance: list[dict[str, Any]]
    duplicates: dict[str, Any]
    drift: list[dict[str, Any]]
    label_issues: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


# -- missing values and balance ----------------------------------------------------------------------
def _columns(bundle: DataBundle) -> pd.DataFrame:
    """The columns checked for missing values and drift (raw values where the bundle keeps them)."""
    from core.slices.frame import slice_frame

    frame = slice_frame(bundle)
    return frame.drop(columns=[c for c in ("true",) if c in frame.columns])


def missing_values(splits: dict[str, DataBundle]) -> list[dict[str, Any]]:
    rows = []
    for split, bundle in splits.items():
        if bundle.kind == "tabular":
            frame = bundle.display if bundle.display is not None else pd.DataFrame(bundle.x)
            counts = {str(c): int(frame[c].isna().sum()) for c in frame.columns}
        elif bundle.kind == "text":
            counts = {"text (empty)": int(sum(1 for t in bundle.x if not str(t).strip()))}
        else:
            x = np.asarray(bundle.x, dtype=np.float64).reshape(len(bundle), -1)
            counts = {"pixels (non-finite)": int((~np.isfinite(x)).any(axis=1).sum())}
        for column, count in counts.items():
            rows.append({"split": split, "column": column, "missing": count,
                         "share": round(count / max(1, len(bundle)), 6)})
    return rows


def class_balance(splits: dict[str, DataBundle]) -> list[dict[str, Any]]:
    rows = []
    for split, bundle in splits.items():
        if bundle.y is None:
            continue
        counts = np.bincount(np.asarray(bundle.y, dtype=np.int64), minlength=len(bundle.class_names))
        for k, name in enumerate(bundle.class_names):
            rows.append({"split": split, "class": name, "n": int(counts[k]),
                         "share": round(float(counts[k]) / max(1, len(bundle)), 6)})
    return rows


# -- duplicates ----------------------------------------------------------------------------------------
_NON_WORD = re.compile(r"[\W_]+")


def sample_keys(bundle: DataBundle, near: bool) -> list[bytes]:
    """One hash per sample: exact content, or (``near``) the normalised content of the module docstring."""
    out = []
    if bundle.kind == "text":
        for text in bundle.x:
            text = str(text)
            if near:
                text = _NON_WORD.sub("", text.lower())
            out.append(hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest())
        return out
    if bundle.kind == "image":  # float32 throughout: MNIST's 47 M pixels in float64 took 11 s to quantise
        x = np.asarray(bundle.x, dtype=np.float32).reshape(len(bundle), -1)
        if near:
            x = np.rint(np.clip(x, 0, 1) * 7).astype(np.uint8)
        return [hashlib.blake2b(row.tobytes(), digest_size=16).digest() for row in np.ascontiguousarray(x)]
    x = np.asarray(bundle.x, dtype=np.float64).reshape(len(bundle), -1)
    if near:
        with np.errstate(divide="ignore", invalid="ignore"):
            digits = np.where(x == 0, 0, 3 - np.floor(np.log10(np.abs(np.where(x == 0, 1, x)))))
        x = np.round(x * 10.0**digits) / 10.0**digits
    x = np.ascontiguousarray(np.nan_to_num(x, nan=np.inf).astype(np.float32))
    return [hashlib.blake2b(row.tobytes(), digest_size=16).digest() for row in x]


def duplicates(splits: dict[str, DataBundle]) -> dict[str, Any]:
    report: dict[str, Any] = {}
    for near in (False, True):
        kind = "near" if near else "exact"
        keys = {split: sample_keys(bundle, near) for split, bundle in splits.items()}
        within = {}
        for split, split_keys in keys.items():
            seen: dict[bytes, int] = {}
            pairs = []
            for i, key in enumerate(split_keys):
                if key in seen:
                    pairs.append([seen[key], i])
                else:
                    seen[key] = i
            within[split] = {"count": len(pairs), "pairs": pairs[:MAX_LISTED]}
        train = {}
        for i, key in enumerate(keys.get("train", [])):
            train.setdefault(key, i)
        leaks = [[i, train[key]] for i, key in enumerate(keys.get("test", [])) if key in train]
        conflicting = 0
        if leaks and splits["test"].y is not None and splits["train"].y is not None:
            conflicting = int(sum(splits["test"].y[t] != splits["train"].y[r] for t, r in leaks))
        report[kind] = {"within": within, "test_in_train": {"count": len(leaks), "pairs": leaks[:MAX_LISTED],
                                                            "different_label": conflicting}}
    return report


# -- drift ---------------------------------------------------------------------------------------------
def drift(train: DataBundle, test: DataBundle, alpha: float = DRIFT_ALPHA) -> list[dict[str, Any]]:
    """Per feature: KS (numbers) or chi-square (categories) between train and test, Bonferroni-flagged."""
    from scipy.stats import chi2_contingency, ks_2samp

    a, b = _columns(train), _columns(test)
    rows = []
    for column in a.columns:
        if column not in b.columns:
            continue
        x, y = a[column], b[column]
        numeric = pd.api.types.is_numeric_dtype(x) and not pd.api.types.is_bool_dtype(x) and x.nunique() > 10
        if numeric:
            xs = pd.to_numeric(x, errors="coerce").dropna().to_numpy(np.float64)
            ys = pd.to_numeric(y, errors="coerce").dropna().to_numpy(np.float64)
            if len(xs) == 0 or len(ys) == 0:
                continue
            result = ks_2samp(xs, ys)
            rows.append({"feature": str(column), "test": "Kolmogorov-Smirnov", "statistic": float(result.statistic),
                         "p_value": float(result.pvalue), "train_mean": float(xs.mean()), "test_mean": float(ys.mean())})
        else:
            xs = x.astype("string").fillna("(missing)")
            ys = y.astype("string").fillna("(missing)")
            table = pd.crosstab(pd.concat([xs, ys], ignore_index=True),
                                np.r_[np.zeros(len(xs), int), np.ones(len(ys), int)])
            if table.shape[0] < 2:
                continue
            chi2, p_value, _, _ = chi2_contingency(table.to_numpy())
            shares = (table / table.sum(axis=0)).diff(axis=1).iloc[:, -1].abs()
            rows.append({"feature": str(column), "test": "chi-square", "statistic": float(chi2), "p_value": float(p_value),
                         "largest_share_change": float(shares.max()), "category": str(shares.idxmax())})
    for row in rows:
        row["p_corrected"] = min(1.0, row["p_value"] * len(rows))
        row["drifted"] = row["p_corrected"] < alpha
    rows.sort(key=lambda r: r["p_value"])
    return rows


# -- label errors ---------------------------------------------------------------------------------------
def label_issues(proba: np.ndarray, y: np.ndarray, class_names: tuple[str, ...]) -> dict[str, Any]:
    """Confident learning on out-of-sample probabilities (cleanlab's ``find_label_issues``), ranked by
    self-confidence: the probability the model gives the given label, lowest first."""
    from cleanlab.filter import find_label_issues

    proba = np.asarray(proba, dtype=np.float64)
    y = np.asarray(y, dtype=np.int64)
    present = np.unique(y)
    if len(present) < 2:
        return {"count": 0, "samples": [], "note": "one class only: confident learning needs two or more"}
    ranked = find_label_issues(y, proba, return_indices_ranked_by="self_confidence", n_jobs=1)
    samples = [{"index": int(i), "given": class_names[y[i]], "suggested": class_names[int(proba[i].argmax())],
                "given_probability": round(float(proba[i, y[i]]), 6),
                "suggested_probability": round(float(proba[i].max()), 6)} for i in ranked[:MAX_LISTED]]
    return {"count": int(len(ranked)), "share": round(len(ranked) / max(1, len(y)), 6), "samples": samples,
            "indices": [int(i) for i in ranked]}


def data_report(splits: dict[str, DataBundle], test_proba: np.ndarray | None = None) -> DataReport:
    """Every check above on ``splits`` (``train`` / ``val`` / ``test``); label errors on the test split
    from ``test_proba`` (the model's out-of-sample probabilities) when given."""
    report = DataReport(
        splits={k: len(v) for k, v in splits.items()},
        missing=missing_values(splits),
        balance=class_balance(splits),
        duplicates=duplicates(splits),
        drift=drift(splits["train"], splits["test"]) if "train" in splits and "test" in splits else [],
    )
    test = splits.get("test")
    if test_proba is not None and test is not None and test.y is not None:
        report.label_issues = {"split": "test", **label_issues(test_proba, test.y, test.class_names)}
    return report


CODE = ("core/slices/data_checks.py", "core/slices/frame.py")


def data_report_cached(splits: dict[str, DataBundle], model_fingerprint: str | None = None,
                       test_proba: np.ndarray | None = None, store: Any = None) -> DataReport:
    """:func:`data_report`, stored under the splits' and the model's fingerprints and this code's source."""
    from core.fingerprint import hash_json
    from core.store import default_store, source_hash

    store = store or default_store()
    document = store.cached(
        lambda: data_report(splits, test_proba).as_dict(), op="data_checks",
        model_fingerprint=model_fingerprint if test_proba is not None else None,
        data_fingerprint=hash_json({k: v.fingerprint for k, v in sorted(splits.items())}),
        params={"code": source_hash(*CODE)}, libraries=LIBRARIES)
    return DataReport(**document)
