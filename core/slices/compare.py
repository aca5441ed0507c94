"""Two models on the same slices: error rates side by side with their intervals, the difference, how often
the two disagree, and the slices where they disagree most (the weak-slice search run on disagreement
instead of error)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from core.slices.conditions import Slice
from core.slices.metrics import slice_metrics
from core.slices.search import weak_slices


def compare_models(frame: pd.DataFrame, y: np.ndarray, proba_a: np.ndarray, proba_b: np.ndarray,
                   names: tuple[str, str], slices: list[Slice], positive: int | None = None, n_boot: int = 200,
                   seed: int = 0, top: int = 5) -> dict[str, Any]:
    """Per slice (every sample first): size, each model's error rate [interval], ``difference`` (second minus
    first), ``disagreement`` (share of samples the two predict differently); then ``disagreement_slices``."""
    y = np.asarray(y, dtype=np.int64)
    pred_a, pred_b = np.asarray(proba_a).argmax(1), np.asarray(proba_b).argmax(1)
    differ = pred_a != pred_b
    rows = []
    for s in [Slice(), *slices]:
        mask = s.mask(frame, allow_empty=True)
        if not mask.any():
            continue
        a = slice_metrics(proba_a, y, mask, s.label, positive, n_boot, seed)
        b = slice_metrics(proba_b, y, mask, s.label, positive, n_boot, seed)
        row: dict[str, Any] = {"slice": s.label, "n": a.n}
        for name, m in zip(names, (a, b)):
            low, high = m.intervals.get("error_rate", (float("nan"), float("nan")))
            row[name] = {"error_rate": round(m.values["error_rate"], 6),
                         "error_interval": None if low != low else [round(low, 6), round(high, 6)]}
        row["difference"] = round(b.values["error_rate"] - a.values["error_rate"], 6)
        row["disagreement"] = round(float(differ[mask].mean()), 6)
        rows.append(row)
    found = weak_slices(frame, differ, top=top) if differ.any() and not differ.all() else []
    return {"models": list(names), "slices": rows,
            "disagreement": round(float(differ.mean()), 6),
            "disagreement_slices": [_disagreement_row(w.as_dict()) for w in found]}


def _disagreement_row(weak: dict[str, Any]) -> dict[str, Any]:
    """A weak slice of disagreement, its rates named for what they are."""
    return {"slice": weak["slice"], "conditions": weak["conditions"], "n": weak["n"],
            "disagreement": weak["error_rate"], "disagreement_interval": weak["error_interval"],
            "rest_disagreement": weak["rest_error_rate"], "p_value": weak["p_value"]}


def comparison_slices(report: dict[str, Any], frame: pd.DataFrame, limit: int = 5) -> list[Slice]:
    """The slices a comparison shows: the applied slice, every group of the report's sensitive columns, and
    the first model's top weak slices."""
    from core.slices.conditions import Condition, parse_slice

    out: list[Slice] = []
    if report.get("slice"):
        out.append(parse_slice(report["slice"]["slice"]))
    for group in report.get("groups", []):
        column = group["column"]
        if group.get("note", "").startswith(f"{column!r} is numeric"):
            continue  # quartile bands are not conditions of the grammar
        for g in group["groups"]:
            value = g["slice"].split(" == ", 1)[1]
            numeric = pd.api.types.is_numeric_dtype(frame[column]) and not pd.api.types.is_bool_dtype(frame[column])
            out.append(Slice((Condition(column, "==", float(value) if numeric else value),)))
    out.extend(parse_slice(w["slice"]) for w in report.get("weak_slices", [])[:limit])
    return out
