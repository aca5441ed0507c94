"""Plain helpers of the uncertainty page (no Streamlit): scatter points, tables, the click -> sample mapping."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from core.scenarios import TimeEstimate
from core.uncertainty.report import SCORE_TITLES, UncertaintyReport
from core.uncertainty.sources import SOURCES


def scatter_points(report: UncertaintyReport, set_names: Sequence[str], max_per_set: int = 1500,
                   x_score: str = "expected_entropy", y_score: str = "mutual_information", seed: int = 0) -> dict[str, np.ndarray]:
    """Parallel arrays for :func:`components.figures.uncertainty.uncertainty_scatter`.

    At most ``max_per_set`` inputs per set (a fixed random subset, always keeping the clean set's
    mistakes, which are few and the interesting ones). ``set`` indexes ``set_names``.
    """
    parts: dict[str, list[np.ndarray]] = {k: [] for k in ("x", "y", "set", "row", "correct")}
    rng = np.random.RandomState(seed)
    for s, name in enumerate(set_names):
        result = report.get(name)
        n = len(result.set.bundle)
        correct = result.correct()
        rows = np.arange(n)
        if n > max_per_set:
            keep = np.zeros(n, bool)
            keep[rng.choice(n, max_per_set, replace=False)] = True
            if correct is not None:
                keep |= ~correct
            rows = np.flatnonzero(keep)
        parts["x"].append(result.scores[x_score][rows])
        parts["y"].append(result.scores[y_score][rows])
        parts["set"].append(np.full(len(rows), s))
        parts["row"].append(rows)
        parts["correct"].append(np.full(len(rows), -1) if correct is None else correct[rows].astype(int))
    out = {k: np.concatenate(v) if v else np.empty(0) for k, v in parts.items()}
    out["id"] = np.arange(len(out["x"]))
    return out


def point_of(points: dict[str, np.ndarray], set_names: Sequence[str], point_id: int | None) -> tuple[str, int] | None:
    """The (set name, row) of a clicked point id, or None when the id is not one of ``points``."""
    if point_id is None or not 0 <= point_id < len(points["id"]):
        return None
    return set_names[int(points["set"][point_id])], int(points["row"][point_id])


MEAN_COLUMNS = {"mutual_information": "mean epistemic (MI)", "expected_entropy": "mean aleatoric",
                "predictive_entropy": "mean predictive entropy", "one_minus_margin": "mean 1 - margin"}


def headline_scores(report: UncertaintyReport) -> tuple[str, str]:
    """(x, y) scores of the scatter and the table: aleatoric / epistemic for several members;
    predictive entropy / 1 - margin for one model (its disagreement scores are all 0)."""
    if report.n_members == 1:
        return "predictive_entropy", "one_minus_margin"
    return "expected_entropy", "mutual_information"


def has_labels(report: UncertaintyReport) -> bool:
    """True when at least one set has true labels (an unlabelled upload's sets have none)."""
    return any(r.set.labelled for r in report.sets)


def accuracy_table(report: UncertaintyReport) -> pd.DataFrame:
    """One row per set: inputs, accuracy (only when some set has labels; NaN for sets without),
    the mean of the report's headline scores, what the set is.

    A single model (one member) has one accuracy column; an ensemble has mean and max-confidence.
    """
    labelled = has_labels(report)
    rows = []
    for r in report.sets:
        row: dict[str, Any] = {"set": r.set.title, "inputs": len(r.set.bundle)}
        if labelled and report.n_members == 1:
            row["accuracy"] = r.accuracy("mean")
        elif labelled:
            row["accuracy (mean ensemble)"] = r.accuracy("mean")
            row["accuracy (max-confidence)"] = r.accuracy("max")
        for score in reversed(headline_scores(report)) if report.n_members > 1 else headline_scores(report):
            row[MEAN_COLUMNS[score]] = float(np.mean(r.scores[score]))
        row["what"] = r.set.description
        rows.append(row)
    return pd.DataFrame(rows)


def numbers(frame: pd.DataFrame, digits: int = 3) -> pd.DataFrame:
    """``frame`` for st.dataframe: float columns as text with ``digits`` decimals and "—" where a value
    is missing (a set without labels has no accuracy). Text, because st.dataframe draws a missing
    number as "None" whatever a Styler's ``na_rep`` says (seen in the browser)."""
    out = frame.copy()
    for column in out.columns:
        if pd.api.types.is_float_dtype(out[column]):
            out[column] = [f"{v:.{digits}f}" if np.isfinite(v) else "—" for v in out[column]]
    return out


def as_number(value: Any) -> float:
    """A cell of :func:`numbers` back as a float (NaN for "—")."""
    return float("nan") if value == "—" else float(value)


def literal(text: object) -> str:
    """User text (class names, file names) for st.markdown: every Markdown character backslash-escaped."""
    out = str(text)
    for ch in "\\`*_{}[]()#+-.!|<>~$":
        out = out.replace(ch, "\\" + ch)
    return out


def auroc_table(report: UncertaintyReport, which: str = "errors") -> pd.DataFrame:
    """Scores as rows, sets as columns: AUROC for the mean ensemble's errors or for shifted inputs vs clean."""
    data: dict[str, Any] = {"score": [SCORE_TITLES[name] for name in report.score_names]}
    for r in report.sets:
        values = r.error_auroc if which == "errors" else r.shift_auroc
        if which == "errors" and not r.set.labelled:
            continue
        if which != "errors" and not r.set.shifted:
            continue
        data[r.set.title] = [values[name] for name in report.score_names]
    return pd.DataFrame(data)


def most_disputed(report: UncertaintyReport, set_name: str, score: str, k: int = 12) -> np.ndarray:
    """Rows of ``set_name`` with the highest ``score``, highest first (ties: lower row first)."""
    values = report.get(set_name).scores[score]
    return np.lexsort((np.arange(len(values)), -values))[:k]


def published_scores(report: UncertaintyReport) -> dict[str, Any]:
    """What the page publishes in ``st.session_state['uncertainty_scores']`` (clean test split, one value per input)."""
    clean = report.get("clean")
    return {"scenario": report.scenario, "model": report.model, "variant": report.variant, "source": report.source,
            "scores": {SCORE_TITLES[name]: np.asarray(values) for name, values in clean.scores.items()}}


def training_offer(kind: str, n: int, estimate: TimeEstimate | None) -> str:
    """What training ``kind`` with ``n`` members / samples costs, said before it starts (Markdown)."""
    what = {"deep": f"trains {n} copies of the scenario's model with different seeds",
            "bootstrap": f"trains {n} copies of the scenario's model on resamples of its training data",
            "bayes": "trains a Bayes-by-backprop CNN on the training data",
            "mc_dropout": "needs the scenario's model, which is not trained yet"}[kind]
    when = "" if estimate is None else f": **{estimate.about} on this machine** ({estimate.basis})"
    return f"The {SOURCES[kind]} {what}{when}. It is trained once and cached for every session."


SHORT_NAMES = {"deep": "deep ensemble", "bootstrap": "bootstrap ensemble", "bayes": "Bayes network",
               "mc_dropout": "model"}


def train_label(kind: str, estimate: TimeEstimate | None) -> str:
    """The training button's label: short enough for a narrow column, with the estimate."""
    return f"Train the {SHORT_NAMES[kind]}" + (f" ({estimate.about})" if estimate is not None else "")
