"""Is the model's confidence honest? Reliability curves, calibration metrics, recalibration.

Pure numpy (+ scikit-learn for Platt and isotonic), vectorised so that a million predictions
cost a few passes over the data. Binning follows ``sklearn.calibration.calibration_curve``
exactly (bins closed on the right, ``np.searchsorted`` on the inner edges), which the tests
use as an oracle.

Results are stored objects (:class:`ReliabilityCurve`, :class:`CalibrationMetrics`,
:class:`CalibrationReport`) that the figures re-plot without recomputing, like scikit-learn's
Display objects.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from core.errors import InputShapeError, ParameterError, check_int

STRATEGIES = ("uniform", "quantile")
METHODS = ("temperature", "platt", "isotonic")
_EPS = 1e-12


# -- validation --------------------------------------------------------------------------------
def check_predictions(proba: Any, y: Any, owner: str = "calibration") -> tuple[np.ndarray, np.ndarray]:
    """Validate class probabilities and labels; return float64 / int64 copies.

    Raises
    ------
    InputShapeError
        Wrong dimensions, fewer than two classes, mismatched lengths, labels out of range.
    ParameterError
        NaN or infinite values, probabilities outside [0, 1], rows not summing to 1.
    """
    proba = np.asarray(proba, dtype=np.float64)
    y = np.asarray(y)
    if proba.ndim != 2:
        raise InputShapeError(
            f"{owner} expects probabilities of shape (n_samples, n_classes); got shape {proba.shape}.",
            hint="for a binary model pass both columns, e.g. np.column_stack([1 - p, p]).",
        )
    if proba.shape[1] < 2:
        raise InputShapeError(
            f"{owner} needs at least two classes; got {proba.shape[1]} probability column.",
            hint="for a binary model pass both columns, e.g. np.column_stack([1 - p, p]).",
        )
    if y.ndim != 1 or len(y) != len(proba):
        raise InputShapeError(f"{owner} got {len(proba)} probability rows but labels of shape {y.shape}.",
                              hint="pass one true label per row.")
    if len(y) == 0:
        raise InputShapeError(f"{owner} got no predictions (0 rows).")
    if not np.isfinite(proba).all():
        bad = int(np.size(proba) - np.isfinite(proba).sum())
        raise ParameterError(f"{owner} got {bad} NaN or infinite probabilities.",
                             hint="check the model's output; drop or repair those rows.")
    lo, hi = float(proba.min()), float(proba.max())
    if lo < -1e-6 or hi > 1 + 1e-6:
        raise ParameterError(f"{owner} got probabilities outside [0, 1] (min {lo:.4g}, max {hi:.4g}).",
                             hint="if these are logits, apply a softmax first.")
    sums = proba.sum(axis=1)
    worst = float(np.abs(sums - 1).max())
    if worst > 1e-3:
        row = int(np.abs(sums - 1).argmax())
        raise ParameterError(f"{owner} needs rows summing to 1; row {row} sums to {sums[row]:.4g}.",
                             hint="if these are logits or scores, apply a softmax first.")
    if not np.issubdtype(y.dtype, np.integer):
        if np.issubdtype(y.dtype, np.floating) and not np.isfinite(y).all():
            bad = int(np.size(y) - np.isfinite(y).sum())
            raise InputShapeError(f"{owner} got {bad} NaN or infinite labels.",
                                  hint="drop the rows without a true label.")
        if np.issubdtype(y.dtype, np.floating) and np.all(np.mod(y, 1) == 0):
            y = y.astype(np.int64)
        else:
            raise InputShapeError(f"{owner} expects integer class indices as labels; got dtype {y.dtype}.")
    if y.min() < 0 or y.max() >= proba.shape[1]:
        raise InputShapeError(
            f"{owner} got labels in [{y.min()}, {y.max()}] for {proba.shape[1]} classes.",
            hint="labels must be class indices 0..n_classes-1.",
        )
    return np.clip(proba, 0.0, 1.0), y.astype(np.int64)


def _check_bins(n_bins: Any, strategy: str, owner: str) -> int:
    n_bins = check_int("n_bins", n_bins, owner)
    if strategy not in STRATEGIES:
        raise ParameterError(f"The 'strategy' parameter of {owner} must be one of {STRATEGIES}. Got {strategy!r} instead.")
    return n_bins


# -- reliability curves ------------------------------------------------------------------------
@dataclass(frozen=True)
class ReliabilityCurve:
    """Per-bin statistics of a confidence score against a 0/1 outcome.

    Attributes
    ----------
    edges : ndarray of shape (n_bins + 1,)
    counts : ndarray of shape (n_bins,) of int
    mean_confidence : ndarray of shape (n_bins,)  (NaN for empty bins)
    accuracy : ndarray of shape (n_bins,)  (fraction of positives / correct; NaN for empty bins)
    bin_ids : ndarray of shape (n_samples,) of int
        Bin of every sample, so a page can list the samples of a clicked bin.
    strategy : {"uniform", "quantile"}
    label : str
        What is binned, e.g. ``"top-label"`` or ``"class 3 vs rest"``.
    """

    edges: np.ndarray
    counts: np.ndarray
    mean_confidence: np.ndarray
    accuracy: np.ndarray
    bin_ids: np.ndarray
    strategy: str
    label: str = "top-label"

    @property
    def gap(self) -> np.ndarray:
        """Confidence minus accuracy per bin: > 0 is over-confident."""
        return self.mean_confidence - self.accuracy

    @property
    def nonempty(self) -> np.ndarray:
        return self.counts > 0

    def samples_in(self, bin_index: int) -> np.ndarray:
        """Indices of the samples in bin ``bin_index``."""
        return np.flatnonzero(self.bin_ids == bin_index)


def bin_edges(scores: np.ndarray, n_bins: int, strategy: str = "uniform") -> np.ndarray:
    """Edges of ``n_bins`` bins: equal width on [0, 1], or equal mass (quantiles of ``scores``)."""
    if strategy == "quantile":
        return np.percentile(scores, np.linspace(0, 100, n_bins + 1))
    return np.linspace(0.0, 1.0, n_bins + 1)


def reliability_curve(scores: Any, outcome: Any, n_bins: int = 15, strategy: str = "uniform",
                      label: str = "top-label") -> ReliabilityCurve:
    """Bin ``scores`` (in [0, 1]) and average them and the 0/1 ``outcome`` per bin.

    Same bins as ``sklearn.calibration.calibration_curve(outcome, scores, n_bins, strategy)``;
    empty bins are kept (count 0, NaN means) so bin indices are stable.
    """
    n_bins = _check_bins(n_bins, strategy, "reliability_curve")
    scores = np.asarray(scores, dtype=np.float64)
    outcome = np.asarray(outcome, dtype=np.float64)
    if scores.ndim != 1 or outcome.shape != scores.shape:
        raise InputShapeError(f"reliability_curve needs 1-D scores and outcomes of the same length; got shapes "
                              f"{scores.shape} and {outcome.shape}.")
    if len(scores) == 0:
        raise InputShapeError("reliability_curve got no scores (0 rows).")
    if not (np.isfinite(scores).all() and np.isfinite(outcome).all()):
        raise ParameterError("reliability_curve got NaN or infinite scores or outcomes.",
                             hint="drop or repair those rows.")
    if scores.min() < 0 or scores.max() > 1:
        raise ParameterError(f"reliability_curve needs scores in [0, 1]; got min {scores.min():.4g}, "
                             f"max {scores.max():.4g}.", hint="if these are logits, apply a sigmoid or softmax first.")
    edges = bin_edges(scores, n_bins, strategy)
    ids = np.searchsorted(edges[1:-1], scores)
    counts = np.bincount(ids, minlength=n_bins)
    sum_conf = np.bincount(ids, weights=scores, minlength=n_bins)
    sum_out = np.bincount(ids, weights=outcome, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_conf = np.where(counts > 0, sum_conf / counts, np.nan)
        acc = np.where(counts > 0, sum_out / counts, np.nan)
    return ReliabilityCurve(edges, counts, mean_conf, acc, ids, strategy, label)


def top_label_curve(proba: Any, y: Any, n_bins: int = 15, strategy: str = "uniform") -> ReliabilityCurve:
    """Reliability of the predicted class's probability against being right."""
    proba, y = check_predictions(proba, y, "top_label_curve")
    pred = proba.argmax(axis=1)
    confidence = proba[np.arange(len(proba)), pred]
    return reliability_curve(confidence, pred == y, n_bins, strategy, "top-label")


def class_curves(proba: Any, y: Any, n_bins: int = 15, strategy: str = "uniform",
                 class_names: list[str] | tuple[str, ...] | None = None) -> list[ReliabilityCurve]:
    """One-vs-rest reliability per class: P(class k) against "the label is k"."""
    proba, y = check_predictions(proba, y, "class_curves")
    names = class_names or [str(k) for k in range(proba.shape[1])]
    return [reliability_curve(proba[:, k], y == k, n_bins, strategy, f"{names[k]} vs rest")
            for k in range(proba.shape[1])]


# -- metrics -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class CalibrationMetrics:
    """Scalar calibration metrics of one set of predictions.

    ``ece`` uses equal-width bins, ``ace`` equal-mass bins (adaptive ECE), ``mce`` the largest
    per-bin gap (equal-width). ``ece_interval`` is a bootstrap 95% interval of ``ece``.
    """

    n: int
    accuracy: float
    ece: float
    ace: float
    mce: float
    brier: float
    nll: float
    ece_interval: tuple[float, float] = (float("nan"), float("nan"))

    def as_dict(self) -> dict[str, Any]:
        return {"n": self.n, "accuracy": self.accuracy, "ece": self.ece, "ece_low": self.ece_interval[0],
                "ece_high": self.ece_interval[1], "ace": self.ace, "mce": self.mce, "brier": self.brier, "nll": self.nll}


def expected_calibration_error(curve: ReliabilityCurve) -> float:
    """sum_b (n_b / n) |confidence_b - accuracy_b|."""
    mask = curve.nonempty
    return float(np.sum(curve.counts[mask] * np.abs(curve.gap[mask])) / curve.counts.sum())


def maximum_calibration_error(curve: ReliabilityCurve) -> float:
    mask = curve.nonempty
    return float(np.max(np.abs(curve.gap[mask]))) if mask.any() else 0.0


def brier_score(proba: np.ndarray, y: np.ndarray) -> float:
    """Multi-class Brier score: mean over samples of sum_k (p_k - [y = k])^2 (0 is perfect, 2 worst)."""
    sq = np.einsum("ij,ij->i", proba, proba)  # sum_k p_k^2 without an (n, k) temporary
    return float(np.mean(sq - 2 * proba[np.arange(len(y)), y] + 1.0))


def negative_log_likelihood(proba: np.ndarray, y: np.ndarray) -> float:
    return float(-np.mean(np.log(np.clip(proba[np.arange(len(y)), y], _EPS, 1.0))))


def bootstrap_ece_interval(confidence: np.ndarray, correct: np.ndarray, n_bins: int = 15, n_boot: int = 200,
                           level: float = 0.95, seed: int = 0, exact_limit: int = 50_000) -> tuple[float, float]:
    """Percentile bootstrap interval of the equal-width ECE.

    Up to ``exact_limit`` samples the rows are resampled with replacement. Above it, resampling
    uses Poisson(1) weights, whose per-bin sums (confidence, correct, count) are approximated by
    their exact mean and covariance under a normal law: each bin then holds thousands of samples
    on average, where that approximation is tight, and the cost stays O(n + n_boot x n_bins)
    instead of O(n x n_boot).
    """
    n_boot = check_int("n_boot", n_boot, "bootstrap_ece_interval")
    rng = np.random.default_rng(seed)
    n = len(confidence)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    ids = np.searchsorted(edges[1:-1], confidence)
    correct = correct.astype(np.float64)
    if n <= exact_limit:
        eces = np.empty(n_boot)
        for b in range(n_boot):
            take = rng.integers(0, n, n)
            bid = ids[take]
            gap = np.bincount(bid, weights=confidence[take] - correct[take], minlength=n_bins)
            eces[b] = np.abs(gap).sum() / n
    else:
        # Per bin, the resampled sum of (confidence - correct) and the resampled count are
        # jointly normal with means (G_b, n_b) and covariance [[sum d^2, G_b], [G_b, n_b]].
        d = confidence - correct
        g = np.bincount(ids, weights=d, minlength=n_bins)
        g2 = np.bincount(ids, weights=d * d, minlength=n_bins)
        cnt = np.bincount(ids, minlength=n_bins).astype(np.float64)
        z1 = rng.standard_normal((n_boot, n_bins))
        z2 = rng.standard_normal((n_boot, n_bins))
        sd_g = np.sqrt(g2)
        # Cholesky of [[g2, g], [g, cnt]] per bin
        with np.errstate(invalid="ignore", divide="ignore"):
            rho_term = np.where(sd_g > 0, g / sd_g, 0.0)
            rest = np.sqrt(np.clip(cnt - rho_term**2, 0.0, None))
        gap_b = g + sd_g * z1
        cnt_b = cnt + rho_term * z1 + rest * z2
        eces = np.abs(gap_b).sum(axis=1) / np.clip(cnt_b.sum(axis=1), 1.0, None)
    alpha = (1 - level) / 2
    low, high = np.quantile(eces, [alpha, 1 - alpha])
    return float(low), float(high)


def calibration_metrics(proba: Any, y: Any, n_bins: int = 15, n_boot: int = 200, seed: int = 0) -> CalibrationMetrics:
    """Accuracy, ECE (with a bootstrap 95% interval), ACE, MCE, Brier score and NLL."""
    proba, y = check_predictions(proba, y, "calibration_metrics")
    n_bins = check_int("n_bins", n_bins, "calibration_metrics")
    pred = proba.argmax(axis=1)
    confidence = proba[np.arange(len(proba)), pred]
    correct = pred == y
    uniform = reliability_curve(confidence, correct, n_bins, "uniform")
    quantile = reliability_curve(confidence, correct, n_bins, "quantile")
    interval = bootstrap_ece_interval(confidence, correct, n_bins, n_boot, seed=seed) if n_boot else (np.nan, np.nan)
    return CalibrationMetrics(
        n=len(y),
        accuracy=float(correct.mean()),
        ece=expected_calibration_error(uniform),
        ace=expected_calibration_error(quantile),
        mce=maximum_calibration_error(uniform),
        brier=brier_score(proba, y),
        nll=negative_log_likelihood(proba, y),
        ece_interval=interval,
    )


# -- recalibration -----------------------------------------------------------------------------
def _log_proba(proba: np.ndarray) -> np.ndarray:
    return np.log(np.clip(proba, _EPS, 1.0))


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def fit_temperature(logits: np.ndarray, y: np.ndarray, bounds: tuple[float, float] = (0.05, 20.0)) -> float:
    """The temperature T > 0 minimising the NLL of softmax(logits / T).

    Log-probabilities work as logits (softmax is shift-invariant). Minimised over log T with a
    bounded scalar search, so T = 1 (no change) is always a candidate and the fitted NLL on this
    split is never worse than the original's.
    """
    from scipy.optimize import minimize_scalar

    y = np.asarray(y, dtype=np.int64)
    rows = np.arange(len(y))

    def nll(log_t: float) -> float:
        z = logits / np.exp(log_t)
        z = z - z.max(axis=1, keepdims=True)
        return float(np.mean(np.log(np.exp(z).sum(axis=1)) - z[rows, y]))

    lo, hi = np.log(bounds[0]), np.log(bounds[1])
    result = minimize_scalar(nll, bounds=(lo, hi), method="bounded", options={"xatol": 1e-6})
    best = float(result.x)
    return float(np.exp(best)) if nll(best) <= nll(0.0) else 1.0


@dataclass
class Recalibrator:
    """A fitted recalibration map from probabilities to probabilities.

    ``method``: "temperature" (one scalar on log-probabilities), "platt" (a multinomial logistic
    regression on log-probabilities; per-class sigmoid for two classes) or "isotonic" (one-vs-rest
    isotonic regressions, renormalised).
    """

    method: str
    temperature: float = 1.0
    models: list[Any] = field(default_factory=list)

    def transform(self, proba: np.ndarray) -> np.ndarray:
        proba = np.asarray(proba, dtype=np.float64)
        if self.method == "temperature":
            return _softmax(_log_proba(proba) / self.temperature)
        if self.method == "platt":
            return self.models[0].predict_proba(_log_proba(proba))
        cols = np.column_stack([m.predict(proba[:, k]) for k, m in enumerate(self.models)])
        sums = cols.sum(axis=1, keepdims=True)
        # A row every isotonic map sends to 0 falls back to uniform rather than dividing by 0.
        return np.where(sums > 0, cols / np.where(sums > 0, sums, 1), 1.0 / proba.shape[1])


def fit_recalibrator(method: str, proba: Any, y: Any, logits: Any | None = None) -> Recalibrator:
    """Fit a :class:`Recalibrator` on held-out predictions (never on the test split)."""
    proba, y = check_predictions(proba, y, "fit_recalibrator")
    if method not in METHODS:
        raise ParameterError(f"The 'method' parameter of fit_recalibrator must be one of {METHODS}. Got {method!r} instead.")
    if len(np.unique(y)) < 2:
        raise InputShapeError(
            f"fit_recalibrator needs labels of at least two classes to fit {method!r}; got only class {int(y[0])}.",
            hint="fit on a larger held-out split.",
        )
    if method == "temperature":
        source = _log_proba(proba) if logits is None else np.asarray(logits, dtype=np.float64)
        return Recalibrator("temperature", temperature=fit_temperature(source, y))
    if method == "platt":
        from sklearn.linear_model import LogisticRegression

        model = LogisticRegression(C=1e4, max_iter=2000)
        model.fit(_log_proba(proba), y)
        if len(model.classes_) != proba.shape[1]:
            # Classes missing from the held-out split: fall back to temperature scaling's family.
            return Recalibrator("temperature", temperature=fit_temperature(_log_proba(proba), y))
        return Recalibrator("platt", models=[model])
    from sklearn.isotonic import IsotonicRegression

    models = [IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(proba[:, k], (y == k).astype(float))
              for k in range(proba.shape[1])]
    return Recalibrator("isotonic", models=models)


# -- the report a page plots -------------------------------------------------------------------
@dataclass(frozen=True)
class CalibrationReport:
    """Everything the calibration page shows for one model, computed once.

    ``proba`` / ``y`` are the test split's; ``recalibrated[method]`` holds the test
    probabilities after a recalibrator fitted on the validation split.
    """

    model: str
    n_bins: int
    proba: np.ndarray
    y: np.ndarray
    metrics: CalibrationMetrics
    uniform: ReliabilityCurve
    quantile: ReliabilityCurve
    recalibrated: dict[str, np.ndarray]
    recalibrated_metrics: dict[str, CalibrationMetrics]
    recalibrated_curves: dict[str, ReliabilityCurve]
    temperature: float

    def curve(self, method: str | None = None, strategy: str = "uniform") -> ReliabilityCurve:
        if method in (None, "none"):
            return self.uniform if strategy == "uniform" else self.quantile
        if strategy == "uniform":
            return self.recalibrated_curves[method]
        return top_label_curve(self.recalibrated[method], self.y, self.n_bins, strategy)

    def summary(self) -> dict[str, Any]:
        """JSON-able numbers for the CLI."""
        out = {"model": self.model, "n_bins": self.n_bins, **self.metrics.as_dict(), "temperature": self.temperature}
        for method, m in self.recalibrated_metrics.items():
            out[f"{method}_ece"] = m.ece
            out[f"{method}_nll"] = m.nll
        return out


def calibration_report(model: str, val_proba: Any, val_y: Any, test_proba: Any, test_y: Any, n_bins: int = 15,
                       methods: tuple[str, ...] = METHODS, n_boot: int = 200) -> CalibrationReport:
    """Metrics and curves on the test split before and after each recalibration method.

    Recalibrators are fitted on ``val_*`` (held out from training) and evaluated on ``test_*``.
    """
    test_proba, test_y = check_predictions(test_proba, test_y, "calibration_report")
    val_proba, val_y = check_predictions(val_proba, val_y, "calibration_report (validation split)")
    if val_proba.shape[1] != test_proba.shape[1]:
        raise InputShapeError(f"validation has {val_proba.shape[1]} classes, test {test_proba.shape[1]}.")
    metrics = calibration_metrics(test_proba, test_y, n_bins, n_boot)
    recal, recal_metrics, recal_curves = {}, {}, {}
    temperature = 1.0
    for method in methods:
        fitted = fit_recalibrator(method, val_proba, val_y)
        if method == "temperature":
            temperature = fitted.temperature
        after = fitted.transform(test_proba)
        recal[method] = after
        recal_metrics[method] = calibration_metrics(after, test_y, n_bins, n_boot)
        recal_curves[method] = top_label_curve(after, test_y, n_bins, "uniform")
    return CalibrationReport(
        model=model, n_bins=n_bins, proba=test_proba, y=test_y, metrics=metrics,
        uniform=top_label_curve(test_proba, test_y, n_bins, "uniform"),
        quantile=top_label_curve(test_proba, test_y, n_bins, "quantile"),
        recalibrated=recal, recalibrated_metrics=recal_metrics, recalibrated_curves=recal_curves,
        temperature=temperature,
    )


def risk_coverage(proba: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
    """Accuracy on the kept predictions when abstaining on the least confident ones.

    Returns
    -------
    coverage : ndarray of shape (n_samples,)
        Fraction kept, from 1/n to 1.
    accuracy : ndarray of shape (n_samples,)
        Accuracy over the ``coverage * n`` most confident predictions.
    """
    proba, y = check_predictions(proba, y, "risk_coverage")
    pred = proba.argmax(axis=1)
    confidence = proba[np.arange(len(proba)), pred]
    order = np.argsort(-confidence, kind="stable")
    correct = (pred == y)[order]
    kept = np.arange(1, len(y) + 1)
    return kept / len(y), np.cumsum(correct) / kept
