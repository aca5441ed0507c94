"""Score every stress set with one source of member predictions: :func:`uncertainty_report`.

For each set: accuracy of mean and of max-confidence ensembling (sets with labels), every
uncertainty score per input, the AUROC of each score for detecting the mean ensemble's mistakes
(within the set) and for telling the set's inputs from the clean test inputs (shifted sets).
The report keeps the member probabilities, so the page re-plots without recomputing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from core.errors import ParameterError
from core.progress import ProgressCallback, report, subrange
from core.store import ArtifactStore, default_store
from core.uncertainty.metrics import SCORES, agreement_matrix, auroc, uncertainty_scores, max_confidence_prediction
from core.uncertainty.sources import Source, autoencoder_scores
from core.uncertainty.stress import DEFAULT_EPSILON, DEFAULT_N_OOD, StressSet, stress_sets

RECONSTRUCTION = "reconstruction_error"
MARGIN = "one_minus_margin"
SCORE_TITLES = {**SCORES, RECONSTRUCTION: "autoencoder reconstruction error",
                MARGIN: "1 - margin (top class minus runner-up)"}
SINGLE_MODEL_SCORES = ("one_minus_confidence", "predictive_entropy", MARGIN)
"""What one model's probabilities say (the member-disagreement scores are 0 for a single member)."""


@dataclass(frozen=True, eq=False)
class SetResult:
    """One stress set scored by one source.

    Attributes
    ----------
    proba : ndarray of shape (n_members, n_samples, n_classes), float32
    mean, max : ndarray of shape (n_samples, n_classes)
        Mean and max-confidence ensembles.
    scores : dict of str -> ndarray of shape (n_samples,)
    error_auroc : dict of str -> float
        AUROC of each score for the mean ensemble's mistakes (NaN without labels or mistakes).
    shift_auroc : dict of str -> float
        AUROC of each score for this set's inputs against the clean test inputs (NaN for clean).
    """

    set: StressSet
    proba: np.ndarray
    mean: np.ndarray
    max: np.ndarray
    scores: dict[str, np.ndarray]
    error_auroc: dict[str, float]
    shift_auroc: dict[str, float] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.set.name

    @property
    def y(self) -> np.ndarray | None:
        return self.set.bundle.y

    def accuracy(self, how: str = "mean") -> float:
        if self.y is None:
            return float("nan")
        pred = (self.mean if how == "mean" else self.max).argmax(axis=1)
        return float(np.mean(pred == self.y))

    def correct(self) -> np.ndarray | None:
        """Whether the mean ensemble is right, per input (None without labels)."""
        return None if self.y is None else self.mean.argmax(axis=1) == self.y


@dataclass(frozen=True, eq=False)
class UncertaintyReport:
    scenario: str
    model: str
    variant: str | None
    source: str
    source_title: str
    n_members: int
    epsilon: float
    sets: list[SetResult]
    agreement: np.ndarray
    member_accuracy: tuple[float, ...]

    def get(self, name: str) -> SetResult:
        for result in self.sets:
            if result.name == name:
                return result
        raise ParameterError(f"No stress set {name!r} in this report.",
                             hint="use one of: " + ", ".join(r.name for r in self.sets) + ".")

    @property
    def score_names(self) -> list[str]:
        return list(self.sets[0].scores)

    def rows(self) -> list[dict[str, Any]]:
        """The per-set table (JSON-able): n, accuracy of mean / max ensembling, AUROC of each score."""
        out = []
        for r in self.sets:
            row: dict[str, Any] = {"set": r.name, "title": r.set.title, "n": len(r.set.bundle), "labelled": r.set.labelled,
                                   "accuracy_mean": _num(r.accuracy("mean")), "accuracy_max": _num(r.accuracy("max")),
                                   "mean_scores": {k: _num(float(np.mean(v))) for k, v in r.scores.items()},
                                   "error_auroc": {k: _num(v) for k, v in r.error_auroc.items()},
                                   "ood_auroc": {k: _num(v) for k, v in r.shift_auroc.items()}}
            out.append(row)
        return out


def _num(value: float) -> float | None:
    return None if value is None or not np.isfinite(value) else round(float(value), 4)


def margin_score(proba: np.ndarray) -> np.ndarray:
    """1 - (top probability - runner-up) of the mean prediction, ndarray of shape (n_samples,): 1 = a tie."""
    mean = np.asarray(proba, dtype=np.float64).mean(axis=0)
    top2 = np.sort(mean, axis=1)[:, -2:]
    return 1.0 - (top2[:, 1] - top2[:, 0])


def score_set(stress: StressSet, proba: np.ndarray, extra: dict[str, np.ndarray] | None = None,
              keep: tuple[str, ...] | None = None) -> SetResult:
    """Scores, ensembles and error AUROCs of one set from its member probabilities.

    ``keep`` names the scores to report (default: every score of :data:`SCORES` plus ``extra``);
    :data:`MARGIN` is computed when asked for.
    """
    scores = uncertainty_scores(proba)
    if keep is not None and MARGIN in keep:
        scores[MARGIN] = margin_score(proba)
    scores.update(extra or {})
    if keep is not None:
        scores = {name: scores[name] for name in keep if name in scores}
    mean = proba.astype(np.float64).mean(axis=0)
    result = SetResult(stress, proba, mean, max_confidence_prediction(proba), scores, {})
    correct = result.correct()
    for name, values in scores.items():
        result.error_auroc[name] = auroc(values, ~correct) if correct is not None else float("nan")
    return result


def rows_summary(result: SetResult, rows: np.ndarray, score: str = "mutual_information") -> dict[str, float]:
    """One set's numbers on some of its inputs (a slice): size, the mean ensemble's accuracy there and elsewhere, the
    mean ``score`` there and elsewhere, and how well ``score`` ranks the mistakes there (error AUROC; NaN when the
    inputs are all right or all wrong, or unlabelled)."""
    rows = np.asarray(rows, dtype=np.int64)
    inside = np.zeros(len(result.mean), dtype=bool)
    inside[rows] = True
    values = result.scores[score]
    correct = result.correct()
    out = {"n": int(inside.sum()), "score_inside": float(values[inside].mean()) if inside.any() else float("nan"),
           "score_outside": float(values[~inside].mean()) if (~inside).any() else float("nan"),
           "accuracy_inside": float("nan"), "accuracy_outside": float("nan"), "error_auroc_inside": float("nan")}
    if correct is not None:
        if inside.any():
            out["accuracy_inside"] = float(correct[inside].mean())
            if 0 < correct[inside].sum() < inside.sum():
                out["error_auroc_inside"] = auroc(values[inside], ~correct[inside])
        if (~inside).any():
            out["accuracy_outside"] = float(correct[~inside].mean())
    return out


def uncertainty_report(
    source: Source,
    *,
    epsilon: float = DEFAULT_EPSILON,
    n_ood: int = DEFAULT_N_OOD,
    autoencoder: bool = True,
    batch_size: int = 128,
    progress: ProgressCallback | None = None,
    store: ArtifactStore | None = None,
) -> UncertaintyReport:
    """Score the scenario's stress sets with ``source`` (see :func:`core.uncertainty.stress.stress_sets`).

    Parameters
    ----------
    autoencoder : bool
        Add the autoencoder's reconstruction error as one more score (trained on first use).
    batch_size : int
        Samples per forward pass; never changes the result.
    """
    store = store or default_store()
    # FGSM needs input gradients: a scikit-learn ensemble gets the out-of-distribution sets only.
    attack = source.attack_adapter if source.attack_adapter.torch_module() is not None else None
    sets = stress_sets(source.scenario, source.variant, attack, epsilon=epsilon, n_ood=n_ood,
                       batch_size=batch_size, progress=subrange(progress, 0.0, 0.3), store=store)
    recon: dict[str, np.ndarray] = {}
    if autoencoder:
        recon = autoencoder_scores(source.scenario, source.variant, {s.name: s.bundle for s in sets},
                                   progress=subrange(progress, 0.3, 0.4), store=store)
    return report_of_sets(source, sets, float(epsilon), recon=recon, batch_size=batch_size,
                          progress=subrange(progress, 0.4, 1.0), store=store)


def report_of_sets(source: Any, sets: list[StressSet], epsilon: float, *, recon: dict[str, np.ndarray] | None = None,
                   keep: tuple[str, ...] | None = None, batch_size: int = 128,
                   progress: ProgressCallback | None = None, store: ArtifactStore | None = None) -> UncertaintyReport:
    """Score ready-made stress sets (the first one is the clean reference) with ``source``.

    ``source`` is a :class:`~core.uncertainty.sources.Source` or anything with its attributes
    (``probabilities``, ``scenario``, ``model``, ``variant``, ``kind``, ``title``, ``n_members``,
    ``member_accuracy``), e.g. an uploaded model's source.
    """
    recon = recon or {}
    store = store or default_store()
    results = []
    for i, stress in enumerate(sets):
        part = subrange(progress, i / len(sets), (i + 1) / len(sets))
        report(part, 0.0, f"scoring {stress.title}")
        proba = source.probabilities(stress.bundle, batch_size=batch_size, progress=part, store=store)
        extra = {RECONSTRUCTION: recon[stress.name]} if stress.name in recon else None
        results.append(score_set(stress, proba, extra, keep))
    clean = results[0]
    for result in results[1:]:
        for name, values in result.scores.items():
            both = np.concatenate([clean.scores[name], values])
            result.shift_auroc[name] = auroc(both, np.r_[np.zeros(len(clean.scores[name]), bool), np.ones(len(values), bool)])
    for name in clean.scores:
        clean.shift_auroc[name] = float("nan")
    report(progress, 1.0, "uncertainty report ready")
    return UncertaintyReport(source.scenario, source.model, source.variant, source.kind, source.title, source.n_members,
                             float(epsilon), results, agreement_matrix(clean.proba), source.member_accuracy)
