"""Weak slices found for you: conjunctions of up to ``max_conditions`` conditions whose error rate is
significantly higher than the rest's.

Candidates, per column of the slice frame (outcome and label columns excluded, see
:data:`core.slices.frame.NOT_SEARCHED`): ``column == value`` for each value of a categorical,
text or true/false column (and of a numeric column with at most 10 values) held by at least
``min_size`` samples; ``column < q`` and ``column >= q`` at the quintiles of any other numeric column.
Level 1 scores every candidate, level 2 every pair of the ``beam`` best single conditions on different
columns (level 3 likewise from the best pairs).

Score: the excess error (slice minus rest) times the square root of the slice's size. It is the
numerator of the two-proportion z statistic, so it ranks a small slice where most predictions are
wrong above a large one that merely contains it (size-weighted without letting the size alone win).
A slice is kept when its one-sided two-proportion z-test gives p < ``alpha`` after a Bonferroni
correction over every slice scored, and when it beats each of its sub-slices (a conjunction whose
error is no higher than one of its parts says nothing the part does not). Of slices sharing most of
their rows (Jaccard overlap >= ``OVERLAP``: ``age >= 26 and marital-status == Married-civ-spouse`` and
``marital-status == Married-civ-spouse``), only the best-ranked is listed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from core.errors import check_int
from core.slices.conditions import Condition, Slice
from core.slices.frame import NOT_SEARCHED

QUANTILES = (0.2, 0.4, 0.6, 0.8)
MAX_VALUES = 10  # a numeric column with at most this many values is treated as categorical
Z_95 = 1.959963984540054
OVERLAP = 0.8


@dataclass(frozen=True)
class WeakSlice:
    slice: Slice
    n: int
    errors: int
    error_rate: float
    error_interval: tuple[float, float]  # Wilson 95 %
    rest_error_rate: float
    excess: float
    excess_interval: tuple[float, float]  # normal approximation, 95 %
    score: float
    p_value: float  # Bonferroni-corrected, one-sided

    def as_dict(self) -> dict[str, Any]:
        return {
            "slice": self.slice.text,
            "conditions": [{"column": c.column, "op": c.op, "value": list(c.value) if isinstance(c.value, tuple)
                            else c.value} for c in self.slice.conditions],
            "n": self.n,
            "errors": self.errors,
            "error_rate": round(self.error_rate, 6),
            "error_interval": [round(v, 6) for v in self.error_interval],
            "rest_error_rate": round(self.rest_error_rate, 6),
            "excess_error": round(self.excess, 6),
            "excess_interval": [round(v, 6) for v in self.excess_interval],
            "score": round(self.score, 6),
            "p_value": float(f"{self.p_value:.3g}"),
        }


def wilson(errors: int, n: int, z: float = Z_95) -> tuple[float, float]:
    if n == 0:
        return (float("nan"), float("nan"))
    p = errors / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (max(0.0, centre - half), min(1.0, centre + half))


def candidates(frame: pd.DataFrame, min_size: int, exclude: tuple[str, ...] = NOT_SEARCHED) -> list[tuple[Condition, np.ndarray]]:
    """Single conditions (and their masks) over the columns of ``frame``, each matching >= ``min_size`` rows."""
    out: list[tuple[Condition, np.ndarray]] = []
    for column in frame.columns:
        if column in exclude:
            continue
        series = frame[column]
        numeric = pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series)
        if numeric and series.nunique(dropna=True) > MAX_VALUES:
            values = series.to_numpy(np.float64)
            cuts = np.unique(np.nanquantile(values, QUANTILES))
            for q in cuts:
                q = float(q)
                for op in ("<", ">="):
                    cond = Condition(str(column), op, int(q) if q.is_integer() else round(q, 6))
                    out.append((cond, cond.mask(frame)))
            continue
        if pd.api.types.is_bool_dtype(series):
            values_list: list[Any] = [True, False]
        elif numeric:
            values_list = [int(v) if float(v).is_integer() else float(v) for v in sorted(series.dropna().unique())]
        else:
            values_list = sorted(series.astype("string").fillna("(missing)").unique())
            if len(values_list) > 200:  # free text or an id: no useful equality slices
                continue
        for value in values_list:
            cond = Condition(str(column), "==", value if not isinstance(value, str) else str(value))
            out.append((cond, cond.mask(frame)))
    return [(c, m) for c, m in out if min_size <= m.sum() < len(frame)]


def weak_slices(frame: pd.DataFrame, errors: np.ndarray, max_conditions: int = 2, min_size: int | None = None,
                top: int = 10, beam: int = 40, alpha: float = 0.05,
                exclude: tuple[str, ...] = NOT_SEARCHED) -> list[WeakSlice]:
    """The ``top`` weakest slices of ``frame`` given each row's error (True = wrong), best first."""
    errors = np.asarray(errors, dtype=bool)
    n_total = len(errors)
    max_conditions = check_int("max_conditions", max_conditions, "weak_slices")
    top = check_int("top", top, "weak_slices")
    min_size = max(20, n_total // 100) if min_size is None else check_int("min_size", min_size, "weak_slices")
    total_errors = int(errors.sum())
    singles = candidates(frame, min_size, exclude)
    scored: dict[tuple[Condition, ...], tuple[np.ndarray, float, int, int]] = {}

    def score(conds: tuple[Condition, ...], mask: np.ndarray) -> None:
        n = int(mask.sum())
        if n < min_size or n == n_total:
            return
        e = int(errors[mask].sum())
        rate, rest = e / n, (total_errors - e) / (n_total - n)
        scored[conds] = (mask, (rate - rest) * math.sqrt(n), n, e)

    for cond, mask in singles:
        score((cond,), mask)
    level = [k for k in scored]
    for _ in range(1, max_conditions):
        best = sorted(level, key=lambda k: -scored[k][1])[:beam]
        best_singles = sorted((k for k in scored if len(k) == 1), key=lambda k: -scored[k][1])[:beam]
        nxt = []
        for base in best:
            used = {c.column for c in base}
            for (single,) in best_singles:
                if single.column in used:
                    continue
                conds = tuple(sorted(base + (single,), key=lambda c: (c.column, c.op, str(c.value))))
                if conds in scored:
                    continue
                score(conds, scored[base][0] & scored[(single,)][0])
                if conds in scored:
                    nxt.append(conds)
        level = nxt
    tests = max(1, len(scored))
    found: list[tuple[WeakSlice, np.ndarray]] = []
    for conds, (mask, s, n, e) in scored.items():
        if s <= 0:
            continue
        rate, rest = e / n, (total_errors - e) / (n_total - n)
        pooled = total_errors / n_total
        se0 = math.sqrt(pooled * (1 - pooled) * (1 / n + 1 / (n_total - n))) or 1e-12
        p_value = min(1.0, 0.5 * math.erfc((rate - rest) / se0 / math.sqrt(2)) * tests)
        if p_value >= alpha:
            continue
        if len(conds) > 1 and any(sub in scored and scored[sub][2] and
                                  scored[sub][3] / scored[sub][2] >= rate for sub in _parts(conds)):
            continue
        se = math.sqrt(rate * (1 - rate) / n + rest * (1 - rest) / (n_total - n))
        found.append((WeakSlice(Slice(conds), n, e, rate, wilson(e, n), rest, rate - rest,
                                (rate - rest - Z_95 * se, rate - rest + Z_95 * se), s, p_value), mask))
    found.sort(key=lambda item: (-item[0].score, len(item[0].slice.conditions), item[0].slice.text))
    return _distinct(found, top)


def _parts(conds: tuple[Condition, ...]) -> list[tuple[Condition, ...]]:
    return [tuple(c for c in conds if c is not drop) for drop in conds]


def _distinct(found: list[tuple[WeakSlice, np.ndarray]], top: int) -> list[WeakSlice]:
    """The first ``top`` slices, each sharing less than :data:`OVERLAP` of its rows (Jaccard) with a better one."""
    out: list[WeakSlice] = []
    kept: list[np.ndarray] = []
    for w, mask in found:
        if any((mask & k).sum() >= OVERLAP * (mask | k).sum() for k in kept):
            continue
        kept.append(mask)
        out.append(w)
        if len(out) == top:
            break
    return out
