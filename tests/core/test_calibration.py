"""core.calibration: binning against scikit-learn, metrics by hand, recalibration, input errors, CLI.

Oracles: ``sklearn.calibration.calibration_curve`` for the bins, ``sklearn.metrics`` for Brier and
log-loss, hand computations on tiny examples for ECE / MCE / risk-coverage, and synthetic
predictors whose calibration is known by construction (labels drawn from the predicted
probabilities; logits scaled by a known temperature).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from sklearn.calibration import calibration_curve
from sklearn.metrics import brier_score_loss, log_loss

from core import calibration as C
from core.errors import InputShapeError, ParameterError
from tests.conftest import ROOT


# -- synthetic predictors ----------------------------------------------------------------------
def softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def synthetic(n: int, k: int = 4, scale: float = 1.0, seed: int = 0, spread: float = 2.0):
    """Labels drawn from softmax(z): softmax(z) is perfectly calibrated; softmax(scale * z) is
    over-confident for scale > 1. Returns (proba of the scaled logits, labels, true logits)."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, k)) * spread
    p = softmax(z)
    y = (rng.random(n)[:, None] > np.cumsum(p, axis=1)).sum(axis=1)
    y = np.minimum(y, k - 1)  # guard against cumsum rounding just below 1
    return softmax(scale * z), y, z


def ece_of(proba, y, n_bins=15) -> float:
    return C.calibration_metrics(proba, y, n_bins, n_boot=0).ece


# -- binning agrees with sklearn.calibration.calibration_curve ---------------------------------
EDGE_SCORES = np.array([0.0, 0.1, 0.2, 0.3, 0.30000000000000004, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0,
                        0.05, 0.15, 0.55, 0.95, 0.999999, 1e-9])


def assert_matches_sklearn(curve: C.ReliabilityCurve, outcome, scores, n_bins, strategy):
    prob_true, prob_pred = calibration_curve(outcome, scores, n_bins=n_bins, strategy=strategy)
    mask = curve.nonempty
    np.testing.assert_allclose(curve.accuracy[mask], prob_true, rtol=0, atol=1e-12)
    np.testing.assert_allclose(curve.mean_confidence[mask], prob_pred, rtol=0, atol=1e-12)
    assert curve.counts.sum() == len(scores)
    assert len(curve.counts) == n_bins
    # empty bins are kept with NaN means so that bin indices stay stable
    assert np.isnan(curve.accuracy[~mask]).all() and np.isnan(curve.mean_confidence[~mask]).all()


@pytest.mark.parametrize("strategy", C.STRATEGIES)
@pytest.mark.parametrize("n_bins", [1, 3, 5, 10, 15])
def test_bins_match_sklearn_on_values_exactly_on_bin_edges(strategy, n_bins):
    rng = np.random.default_rng(n_bins)
    outcome = rng.integers(0, 2, len(EDGE_SCORES))
    outcome[:2] = [0, 1]
    curve = C.reliability_curve(EDGE_SCORES, outcome, n_bins, strategy)
    assert_matches_sklearn(curve, outcome, EDGE_SCORES, n_bins, strategy)


def test_edge_values_fall_in_the_bin_closed_on_the_right():
    # (0.0, 0.1] is bin 0, (0.1, 0.2] bin 1, ...; 0.0 is in bin 0 and 1.0 in the last bin.
    curve = C.reliability_curve(np.array([0.0, 0.1, 0.1000001, 0.2, 0.5, 1.0]), np.zeros(6), 10, "uniform")
    np.testing.assert_array_equal(curve.bin_ids, [0, 0, 1, 1, 4, 9])
    np.testing.assert_array_equal(curve.samples_in(1), [2, 3])
    np.testing.assert_allclose(curve.edges, np.linspace(0, 1, 11))


@pytest.mark.parametrize("strategy", C.STRATEGIES)
@pytest.mark.parametrize("seed", range(4))
def test_top_label_curve_matches_sklearn_on_random_predictions(strategy, seed):
    proba, y, _ = synthetic(500, k=5, scale=2.0, seed=seed)
    curve = C.top_label_curve(proba, y, 12, strategy)
    confidence, correct = proba.max(axis=1), proba.argmax(axis=1) == y
    assert_matches_sklearn(curve, correct, confidence, 12, strategy)
    assert curve.label == "top-label" and curve.strategy == strategy


@pytest.mark.parametrize("strategy", C.STRATEGIES)
def test_class_curves_are_sklearn_one_vs_rest_curves(strategy):
    proba, y, _ = synthetic(400, k=4, scale=1.5, seed=3)
    # round some probabilities onto the bin edges on purpose
    proba = np.round(proba, 1)
    proba = proba / proba.sum(axis=1, keepdims=True)
    curves = C.class_curves(proba, y, 10, strategy, class_names=["a", "b", "c", "d"])
    assert [c.label for c in curves] == ["a vs rest", "b vs rest", "c vs rest", "d vs rest"]
    for k, curve in enumerate(curves):
        assert_matches_sklearn(curve, (y == k).astype(int), proba[:, k], 10, strategy)


def test_class_curves_default_names_and_absent_class():
    proba, y, _ = synthetic(200, k=3, seed=5)
    y = np.where(y == 2, 0, y)  # class 2 never occurs: its one-vs-rest accuracy is 0 everywhere
    curves = C.class_curves(proba, y, 5)
    assert [c.label for c in curves] == ["0 vs rest", "1 vs rest", "2 vs rest"]
    assert np.all(curves[2].accuracy[curves[2].nonempty] == 0)


# -- metrics -----------------------------------------------------------------------------------
def two_class(confidences, correct):
    """Binary predictions whose top-label confidence and correctness are given."""
    confidences = np.asarray(confidences, dtype=float)
    proba = np.column_stack([confidences, 1 - confidences])  # always predicts class 0
    y = np.where(np.asarray(correct), 0, 1)
    return proba, y


def test_ece_and_mce_match_a_hand_computation():
    # 4 predictions at 0.65 (bin (0.6, 0.7]), all right: gap 0.65 - 1 = -0.35
    # 6 predictions at 0.95 (bin (0.9, 1.0]), 3 right: gap 0.95 - 0.5 = 0.45
    proba, y = two_class([0.65] * 4 + [0.95] * 6, [True] * 4 + [True, True, True, False, False, False])
    m = C.calibration_metrics(proba, y, n_bins=10, n_boot=0)
    assert m.ece == pytest.approx(0.4 * 0.35 + 0.6 * 0.45, abs=1e-12)
    assert m.mce == pytest.approx(0.45, abs=1e-12)
    assert m.accuracy == pytest.approx(0.7)
    assert m.n == 10
    assert np.isnan(m.ece_interval).all()  # n_boot=0: no interval
    curve = C.top_label_curve(proba, y, 10)
    np.testing.assert_allclose(curve.gap[[6, 9]], [-0.35, 0.45])
    assert C.expected_calibration_error(curve) == pytest.approx(m.ece)
    assert C.maximum_calibration_error(curve) == pytest.approx(m.mce)


def test_ece_of_a_constant_overconfident_predictor():
    # always 90 % sure, right 60 % of the time: ECE = MCE = 0.3 (up to sampling of the labels)
    rng = np.random.default_rng(0)
    n = 50_000
    proba, y = two_class(np.full(n, 0.9), rng.random(n) < 0.6)
    m = C.calibration_metrics(proba, y, n_boot=0)
    assert m.ece == pytest.approx(0.9 - m.accuracy, abs=1e-12)  # one bin: exactly conf - acc
    assert m.ece == pytest.approx(0.3, abs=0.01)
    assert m.mce == pytest.approx(m.ece)


def test_ece_of_a_perfectly_calibrated_predictor_is_close_to_zero():
    proba, y, _ = synthetic(200_000, k=4, seed=1)
    m = C.calibration_metrics(proba, y, n_boot=0)
    assert m.ece < 0.005
    assert m.ace < 0.005
    # and the same logits scaled by 3 are clearly miscalibrated
    over, y3, _ = synthetic(200_000, k=4, scale=3.0, seed=1)
    assert ece_of(over, y3) > 0.1


def test_ace_uses_equal_mass_bins():
    proba, y, _ = synthetic(3000, k=3, scale=2.0, seed=2)
    m = C.calibration_metrics(proba, y, n_bins=10, n_boot=0)
    assert m.ace == pytest.approx(C.expected_calibration_error(C.top_label_curve(proba, y, 10, "quantile")))
    assert m.ece == pytest.approx(C.expected_calibration_error(C.top_label_curve(proba, y, 10, "uniform")))
    # every bin over-confident: both reduce to mean confidence - accuracy, whatever the bins
    assert np.all(C.top_label_curve(proba, y, 10).gap[C.top_label_curve(proba, y, 10).nonempty] > 0)
    assert m.ace == pytest.approx(proba.max(axis=1).mean() - m.accuracy, abs=1e-12)
    assert m.ece == pytest.approx(m.ace, abs=1e-12)
    # gaps of both signs: 4 at 0.55 all right (gap -0.45), 4 at 0.6 all wrong (gap +0.6). Two
    # equal-width bins put them together (|0.575 - 0.5|); two equal-mass bins separate them.
    p2, y2 = two_class([0.55] * 4 + [0.6] * 4, [True] * 4 + [False] * 4)
    m2 = C.calibration_metrics(p2, y2, n_bins=2, n_boot=0)
    assert m2.ece == pytest.approx(0.075, abs=1e-12)
    assert m2.ace == pytest.approx(0.5 * 0.45 + 0.5 * 0.6, abs=1e-12)


@pytest.mark.parametrize("k", [2, 3, 7])
def test_brier_and_nll_match_sklearn(k):
    proba, y, _ = synthetic(300, k=k, scale=1.7, seed=k)
    m = C.calibration_metrics(proba, y, n_boot=0)
    assert m.nll == pytest.approx(log_loss(y, proba, labels=list(range(k))), rel=1e-10)
    # sklearn's multi-class Brier (scale_by_half=False) is our sum over classes
    assert m.brier == pytest.approx(brier_score_loss(y, proba, labels=list(range(k)), scale_by_half=False), rel=1e-10)
    if k == 2:
        # the binary Brier score counts one column: ours (both columns) is exactly twice it
        assert m.brier == pytest.approx(2 * brier_score_loss(y, proba[:, 1]), rel=1e-10)


def test_nll_is_finite_for_a_confident_wrong_prediction():
    proba = np.array([[1.0, 0.0], [0.5, 0.5]])
    nll = C.calibration_metrics(proba, [1, 0], n_boot=0).nll
    assert np.isfinite(nll) and nll > 10


def test_as_dict_keys():
    m = C.calibration_metrics(*synthetic(100, seed=0)[:2], n_boot=20)
    assert set(m.as_dict()) == {"n", "accuracy", "ece", "ece_low", "ece_high", "ace", "mce", "brier", "nll"}


# -- risk-coverage -----------------------------------------------------------------------------
def test_risk_coverage_keeps_the_most_confident_first():
    # confidences 0.6 (right), 0.9 (wrong), 0.7 (right), 0.8 (right)
    proba, y = two_class([0.6, 0.9, 0.7, 0.8], [True, False, True, True])
    coverage, accuracy = C.risk_coverage(proba, y)
    np.testing.assert_allclose(coverage, [0.25, 0.5, 0.75, 1.0])
    np.testing.assert_allclose(accuracy, [0.0, 0.5, 2 / 3, 0.75])


def test_risk_coverage_at_full_coverage_is_the_overall_accuracy():
    proba, y, _ = synthetic(1234, k=6, scale=2.0, seed=4)
    coverage, accuracy = C.risk_coverage(proba, y)
    assert len(coverage) == len(accuracy) == 1234
    assert coverage[-1] == 1.0
    assert accuracy[-1] == pytest.approx(np.mean(proba.argmax(axis=1) == y))
    assert np.all(np.diff(coverage) > 0)


# -- bootstrap interval of the ECE -------------------------------------------------------------
def confidence_correct(n, seed=0, scale=2.0):
    proba, y, _ = synthetic(n, k=4, scale=scale, seed=seed)
    return proba.max(axis=1), proba.argmax(axis=1) == y


def test_bootstrap_interval_is_ordered_and_reproducible():
    conf, correct = confidence_correct(2000)
    a = C.bootstrap_ece_interval(conf, correct, seed=3)
    b = C.bootstrap_ece_interval(conf, correct, seed=3)
    c = C.bootstrap_ece_interval(conf, correct, seed=4)
    assert a == b
    assert a != c
    assert 0 <= a[0] <= a[1] <= 1


def test_bootstrap_interval_shrinks_as_n_grows():
    widths = []
    for n in (500, 5000, 40_000):
        low, high = C.bootstrap_ece_interval(*confidence_correct(n, seed=n))
        assert low <= high
        widths.append(high - low)
    assert widths[0] > widths[1] > widths[2]
    assert widths[2] < widths[0] / 4  # ~ 1/sqrt(n): 80x the data, about 9x narrower


def test_bootstrap_normal_approximation_agrees_with_exact_resampling():
    conf, correct = confidence_correct(20_000, seed=7)
    exact = C.bootstrap_ece_interval(conf, correct, n_boot=400)  # n <= exact_limit: resample rows
    approx = C.bootstrap_ece_interval(conf, correct, n_boot=400, exact_limit=0)  # normal approximation
    width = exact[1] - exact[0]
    assert approx[0] == pytest.approx(exact[0], abs=max(0.2 * width, 1e-3))
    assert approx[1] == pytest.approx(exact[1], abs=max(0.2 * width, 1e-3))
    assert approx[1] - approx[0] == pytest.approx(width, rel=0.3)


def test_calibration_metrics_carries_the_bootstrap_interval():
    proba, y, _ = synthetic(3000, k=4, scale=2.0, seed=8)
    m = C.calibration_metrics(proba, y, n_bins=15, n_boot=100, seed=5)
    conf, correct = proba.max(axis=1), proba.argmax(axis=1) == y
    assert m.ece_interval == C.bootstrap_ece_interval(conf, correct, 15, 100, seed=5)


# -- temperature scaling -----------------------------------------------------------------------
@pytest.mark.parametrize("true_t", [0.5, 1.0, 2.5])
def test_fit_temperature_recovers_a_known_temperature(true_t):
    _, y, z = synthetic(20_000, k=5, seed=11)
    # the model's logits are the calibrated ones times 1/T: dividing them by T calibrates them
    fitted = C.fit_temperature(z / true_t, y)
    assert fitted == pytest.approx(1 / true_t, rel=0.05)
    # log-probabilities work as logits (softmax is shift-invariant)
    assert C.fit_temperature(np.log(softmax(z / true_t)), y) == pytest.approx(fitted, rel=1e-3)


def test_temperature_recalibrator_recovers_the_overconfidence_factor():
    proba, y, _ = synthetic(20_000, k=5, scale=3.0, seed=12)
    rec = C.fit_recalibrator("temperature", proba, y)
    assert rec.method == "temperature"
    assert rec.temperature == pytest.approx(3.0, rel=0.05)


def nll_t(logits, y, t):
    return float(-np.mean(np.log(softmax(logits / t))[np.arange(len(y)), y]))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_temperature_never_raises_nll_on_its_fitting_split(data):
    n = data.draw(st.integers(2, 60), label="n")
    k = data.draw(st.integers(2, 6), label="k")
    logits = data.draw(hnp.arrays(np.float64, (n, k), elements=st.floats(-30, 30, allow_nan=False)), label="logits")
    y = data.draw(hnp.arrays(np.int64, n, elements=st.integers(0, k - 1)), label="y")
    t = C.fit_temperature(logits, y)
    assert 0.05 - 1e-9 <= t <= 20 + 1e-9
    assert nll_t(logits, y, t) <= nll_t(logits, y, 1.0) + 1e-9
    # through the public path on probabilities too
    if len(np.unique(y)) >= 2:
        proba = softmax(logits)
        rec = C.fit_recalibrator("temperature", proba, y, logits=logits)
        before = C.negative_log_likelihood(proba, y)
        after = C.negative_log_likelihood(rec.transform(proba), y)
        assert after <= before + 1e-9


# -- recalibrators -----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def overconfident():
    """Validation and test splits of a predictor whose logits are 3x the calibrated ones."""
    val_p, val_y, _ = synthetic(6000, k=4, scale=3.0, seed=21)
    test_p, test_y, _ = synthetic(6000, k=4, scale=3.0, seed=22)
    return val_p, val_y, test_p, test_y


@pytest.mark.parametrize("method", C.METHODS)
def test_each_recalibrator_reduces_ece_and_returns_distributions(method, overconfident):
    val_p, val_y, test_p, test_y = overconfident
    rec = C.fit_recalibrator(method, val_p, val_y)
    assert rec.method == method
    for proba in (val_p, test_p):
        after = rec.transform(proba)
        assert after.shape == proba.shape
        np.testing.assert_allclose(after.sum(axis=1), 1.0, atol=1e-9)
        assert after.min() >= 0 and after.max() <= 1
    before, after = ece_of(val_p, val_y), ece_of(rec.transform(val_p), val_y)
    assert before > 0.15
    assert after < before / 3, (method, before, after)
    assert ece_of(rec.transform(test_p), test_y) < ece_of(test_p, test_y) / 2


@pytest.mark.parametrize("method", C.METHODS)
def test_recalibrators_work_for_two_classes(method):
    val_p, val_y, _ = synthetic(2000, k=2, scale=3.0, seed=31)
    rec = C.fit_recalibrator(method, val_p, val_y)
    after = rec.transform(val_p)
    np.testing.assert_allclose(after.sum(axis=1), 1.0, atol=1e-9)
    assert ece_of(after, val_y) < ece_of(val_p, val_y)


def test_platt_with_a_class_missing_from_the_validation_split_falls_back_to_temperature():
    val_p, val_y, _ = synthetic(1000, k=3, scale=2.0, seed=41)
    keep = val_y != 2
    rec = C.fit_recalibrator("platt", val_p[keep], val_y[keep])
    assert rec.method == "temperature"
    np.testing.assert_allclose(rec.transform(val_p).sum(axis=1), 1.0)


@pytest.mark.parametrize("method", C.METHODS)
def test_fit_recalibrator_rejects_labels_of_a_single_class(method):
    proba = softmax(np.random.default_rng(0).normal(size=(20, 3)))
    with pytest.raises(InputShapeError, match=r"at least two classes.*got only class 1"):
        C.fit_recalibrator(method, proba, np.ones(20, dtype=int))


def test_fit_recalibrator_rejects_an_unknown_method():
    proba, y, _ = synthetic(50, seed=0)
    with pytest.raises(ParameterError, match=r"'method'.*Got 'beta' instead"):
        C.fit_recalibrator("beta", proba, y)


# -- the report --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def report():
    # validation: over-confident by 3x; test: calibrated. Fitting on validation gives T ~ 3,
    # which would be ~1 if the report (wrongly) fitted on the test split.
    val_p, val_y, _ = synthetic(6000, k=4, scale=3.0, seed=51)
    test_p, test_y, _ = synthetic(1500, k=4, scale=1.0, seed=52)
    return C.calibration_report("synthetic", val_p, val_y, test_p, test_y, n_bins=12, n_boot=50), (test_p, test_y)


def test_report_fits_on_validation_and_evaluates_on_test(report):
    rep, (test_p, test_y) = report
    assert rep.metrics.n == len(test_y) == 1500
    assert rep.temperature == pytest.approx(3.0, rel=0.1)
    np.testing.assert_array_equal(rep.proba, test_p)
    np.testing.assert_array_equal(rep.y, test_y)
    assert rep.metrics == C.calibration_metrics(test_p, test_y, 12, 50)
    assert set(rep.recalibrated) == set(C.METHODS) == set(rep.recalibrated_metrics) == set(rep.recalibrated_curves)
    for method in C.METHODS:
        after = rep.recalibrated[method]
        assert after.shape == test_p.shape
        assert rep.recalibrated_metrics[method] == C.calibration_metrics(after, test_y, 12, 50)
        assert rep.recalibrated_metrics[method].n == 1500
    # temperature 3 applied to already calibrated test predictions makes them under-confident
    expected = softmax(np.log(test_p) / rep.temperature)
    np.testing.assert_allclose(rep.recalibrated["temperature"], expected, atol=1e-9)


def test_report_curves_by_method_and_strategy(report):
    rep, (test_p, test_y) = report
    assert rep.curve() is rep.uniform and rep.curve("none") is rep.uniform
    assert rep.curve("none", "quantile") is rep.quantile
    for method in (None, *C.METHODS):
        proba = test_p if method is None else rep.recalibrated[method]
        for strategy in C.STRATEGIES:
            got = rep.curve(method, strategy)
            want = C.top_label_curve(proba, test_y, 12, strategy)
            assert got.strategy == strategy
            np.testing.assert_array_equal(got.counts, want.counts)
            np.testing.assert_allclose(got.edges, want.edges)
            np.testing.assert_array_equal(got.bin_ids, want.bin_ids)
            np.testing.assert_allclose(got.accuracy, want.accuracy, equal_nan=True)


def test_report_summary(report):
    rep, _ = report
    s = rep.summary()
    assert s["model"] == "synthetic" and s["n_bins"] == 12 and s["n"] == 1500
    assert s["temperature"] == rep.temperature
    for method in C.METHODS:
        assert s[f"{method}_ece"] == rep.recalibrated_metrics[method].ece
        assert s[f"{method}_nll"] == rep.recalibrated_metrics[method].nll
    json.dumps(s)  # JSON-able


def test_report_with_a_subset_of_methods_and_mismatched_classes():
    val_p, val_y, _ = synthetic(500, k=3, scale=2.0, seed=61)
    rep = C.calibration_report("m", val_p, val_y, val_p, val_y, methods=("temperature",), n_boot=0)
    assert set(rep.recalibrated) == {"temperature"}
    other_p, other_y, _ = synthetic(100, k=4, seed=62)
    with pytest.raises(InputShapeError, match="validation has 3 classes, test 4"):
        C.calibration_report("m", val_p, val_y, other_p, other_y)


# -- bad input: clear errors naming the received values ----------------------------------------
GOOD = np.array([[0.2, 0.8], [0.6, 0.4], [0.5, 0.5]])


@pytest.mark.parametrize("func", [C.calibration_metrics, C.top_label_curve, C.class_curves, C.risk_coverage,
                                  lambda p, y: C.fit_recalibrator("isotonic", p, y)])
@pytest.mark.parametrize("proba,y,error,pattern", [
    (np.array([[1.2, -0.2], [0.5, 0.5], [0.5, 0.5]]), [0, 1, 0], ParameterError, r"outside \[0, 1\] \(min -0\.2, max 1\.2\)"),
    (np.array([[0.6, 0.6], [0.5, 0.5], [0.5, 0.5]]), [0, 1, 0], ParameterError, r"rows summing to 1; row 0 sums to 1\.2"),
    (np.array([[0.5, 0.5], [0.5, 0.5], [0.5, 0.2]]), [0, 1, 0], ParameterError, r"row 2 sums to 0\.7"),
    (np.ones((3, 1)), [0, 0, 0], InputShapeError, r"at least two classes; got 1 probability column"),
    (GOOD, [0, 1], InputShapeError, r"got 3 probability rows but labels of shape \(2,\)"),
    (GOOD, [0, 1, 1, 0], InputShapeError, r"got 3 probability rows but labels of shape \(4,\)"),
    (np.array([[np.nan, 0.5], [0.5, 0.5], [0.5, np.nan]]), [0, 1, 0], ParameterError, r"got 2 NaN or infinite"),
    (np.array([[np.inf, 0.5], [0.5, 0.5], [0.5, 0.5]]), [0, 1, 0], ParameterError, r"got 1 NaN or infinite"),
    (GOOD, [0, 2, 1], InputShapeError, r"labels in \[0, 2\] for 2 classes"),
    (GOOD, [-1, 0, 1], InputShapeError, r"labels in \[-1, 1\] for 2 classes"),
    (np.array([0.2, 0.8, 0.5]), [0, 1, 0], InputShapeError, r"shape \(n_samples, n_classes\); got shape \(3,\)"),
    (np.zeros((0, 2)), [], InputShapeError, r"0 rows"),
    (GOOD, ["a", "b", "a"], InputShapeError, r"integer class indices.*got dtype <U1"),
])
def test_bad_input_raises_a_clear_error(func, proba, y, error, pattern):
    with pytest.raises(error, match=pattern) as info:
        func(proba, y)
    assert info.value.message  # a TrustLensError with its own message (hint optional)


def test_errors_name_the_calling_function_and_suggest_a_fix():
    with pytest.raises(ParameterError) as info:
        C.calibration_metrics(np.array([[3.0, -2.0]]), [0])
    assert str(info.value).startswith("calibration_metrics got probabilities outside [0, 1]")
    assert "softmax" in info.value.hint


def test_small_rounding_is_tolerated_and_float_labels_accepted():
    proba = np.array([[1 + 1e-9, -1e-9], [0.3, 0.7 + 1e-5]])
    p, y = C.check_predictions(proba, np.array([0.0, 1.0]))
    assert p.min() >= 0 and p.max() <= 1 and y.dtype == np.int64


@pytest.mark.parametrize("bins,error,pattern", [
    (0, ParameterError, r"The 'n_bins' parameter of reliability_curve must be an int >= 1\. Got 0 instead\."),
    (-3, ParameterError, r"Got -3 instead"),
    (2.5, ParameterError, r"Got 2\.5 of type float instead"),
])
def test_bad_bin_counts(bins, error, pattern):
    with pytest.raises(error, match=pattern):
        C.reliability_curve(np.array([0.1, 0.9]), np.array([0, 1]), bins)


def test_bad_strategy():
    with pytest.raises(ParameterError, match=r"'strategy'.*Got 'kmeans' instead"):
        C.top_label_curve(GOOD, [0, 1, 0], 5, "kmeans")
    with pytest.raises(ParameterError, match=r"n_bins.*calibration_metrics.*Got 0 instead"):
        C.calibration_metrics(GOOD, [0, 1, 0], n_bins=0)


def test_nan_labels_are_named_in_the_error():
    with pytest.raises(InputShapeError, match=r"NaN"):
        C.check_predictions(GOOD, np.array([0.0, np.nan, 1.0]))


@pytest.mark.parametrize("scores,outcome", [
    (np.array([0.1, 0.2, 0.3]), np.array([1, 0])),           # mismatched lengths -> numpy ValueError
    (np.array([0.1, np.nan, 0.3]), np.array([1, 0, 1])),     # NaN score -> silently in the last bin
    (np.array([0.1, 1.7, -0.3]), np.array([1, 0, 1])),       # outside [0, 1] -> silently binned
], ids=["mismatched-lengths", "nan-score", "out-of-range"])
def test_reliability_curve_validates_its_inputs(scores, outcome):
    from core.errors import TrustLensError

    with pytest.raises(TrustLensError):
        C.reliability_curve(scores, outcome, 10, "uniform")


# -- CLI ---------------------------------------------------------------------------------------
def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "core", "calibration", *args, "--quiet"], cwd=ROOT,
                          capture_output=True, text=True, env=os.environ.copy(), timeout=300)


@pytest.mark.slow  # 5 s: the CLI in a fresh process
def test_cli_calibration_json():
    done = run_cli("digits", "--json", "--bins", "10")
    assert done.returncode == 0, done.stderr
    rows = json.loads(done.stdout)
    assert [r["model"] for r in rows] == ["cnn", "logreg"]
    keys = {"accuracy", "ece", "mce", "brier", "nll", "temperature", "ece_after_temperature", "nll_after_temperature"}
    for r in rows:
        assert keys <= set(r)
        assert r["n_bins"] == 10 and r["scenario"] == "digits"
        assert 0 <= r["ece"] <= r["mce"] <= 1
        assert r["ece_low"] <= r["ece_high"]
        assert r["temperature"] > 0
        assert r["nll_after_temperature"] <= r["nll"] + 0.05  # fitted on validation, evaluated on test
    # the numbers are the core's, computed independently from the model's test predictions
    from core import scenarios

    test = scenarios.load_data("digits")["test"]
    proba = scenarios.load_model("digits", "logreg").adapter.predict_proba(test.x)
    m = C.calibration_metrics(proba, test.y, n_bins=10)
    logreg = rows[1]
    assert logreg["ece"] == pytest.approx(m.ece, abs=1e-9)
    assert logreg["nll"] == pytest.approx(m.nll, abs=1e-9)
    assert logreg["n"] == len(test.y)


def test_cli_calibration_rejects_zero_bins():
    done = run_cli("digits", "--model", "logreg", "--bins", "0")
    assert done.returncode == 1
    assert "The 'n_bins' parameter of calibration must be an int >= 1. Got 0 instead." in done.stderr
    assert "Traceback" not in done.stderr
