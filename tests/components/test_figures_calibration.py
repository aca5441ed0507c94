"""components.figures.calibration: the figures re-plot core result objects; clicks map back to bins."""

from __future__ import annotations

import numpy as np
import pytest

from components.figures.calibration import reliability_figure, risk_coverage_figure
from components.selection import clicked_index
from core import calibration as C


def synthetic(n=600, k=4, scale=2.0, seed=0):
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, k)) * 2
    p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    y = np.minimum((rng.random(n)[:, None] > np.cumsum(p, axis=1)).sum(axis=1), k - 1)
    q = np.exp(scale * z)
    return q / q.sum(axis=1, keepdims=True), y


@pytest.fixture(scope="module")
def curves():
    proba, y = synthetic()
    other, y2 = synthetic(seed=1, scale=0.7)
    return [("model a", C.top_label_curve(proba, y, 15)), ("model b", C.top_label_curve(other, y2, 15))]


def bars(fig):
    return [t for t in fig.data if t.type == "bar"]


def test_diagonal_is_the_first_trace(curves):
    fig = reliability_figure(curves, "my title")
    diag = fig.data[0]
    assert diag.type == "scatter" and diag.name == "perfect calibration"
    assert list(diag.x) == [0, 1] and list(diag.y) == [0, 1]
    assert diag.customdata is None  # a click on it selects nothing
    assert fig.layout.title.text == "my title"


def test_accuracy_bars_carry_the_nonempty_bin_indices(curves):
    name, primary = curves[0]
    fig = reliability_figure(curves)
    acc = next(t for t in fig.data if t.type == "bar" and t.name == f"{name}: accuracy per bin")
    nonempty = np.flatnonzero(primary.counts > 0)
    assert len(nonempty) < 15  # the fixture has empty bins, so the mapping is not the identity
    custom = np.asarray(acc.customdata)
    np.testing.assert_array_equal(custom[:, 0].astype(int), nonempty)
    np.testing.assert_array_equal(custom[:, 1].astype(int), primary.counts[nonempty])
    np.testing.assert_allclose(custom[:, 2], primary.mean_confidence[nonempty])
    np.testing.assert_allclose(np.asarray(acc.y), primary.accuracy[nonempty])
    centers = (primary.edges[:-1] + primary.edges[1:]) / 2
    np.testing.assert_allclose(np.asarray(acc.x), centers[nonempty])


def test_every_clickable_trace_of_the_primary_maps_back_to_its_bin(curves):
    name, primary = curves[0]
    fig = reliability_figure(curves)
    nonempty = np.flatnonzero(primary.counts > 0)
    for trace in fig.data:
        if trace.customdata is None or trace.name == "model b":
            continue
        custom = np.asarray(trace.customdata)
        for row, b in zip(custom, nonempty):
            point = {"customdata": row.tolist() if row.ndim else row.item()}
            assert clicked_index({"selection": {"points": [point]}}) == b, trace.name


def test_gap_bars_are_signed_confidence_minus_accuracy(curves):
    _, primary = curves[0]
    fig = reliability_figure(curves)
    gap = next(t for t in fig.data if t.type == "bar" and t.name.startswith("gap"))
    nonempty = np.flatnonzero(primary.counts > 0)
    np.testing.assert_allclose(np.asarray(gap.customdata)[:, 1], primary.gap[nonempty])
    np.testing.assert_allclose(np.asarray(gap.y), np.abs(primary.gap[nonempty]))


def test_one_line_per_model(curves):
    fig = reliability_figure(curves)
    lines = [t for t in fig.data if t.type == "scatter" and t.name in ("model a", "model b")]
    assert [t.name for t in lines] == ["model a", "model b"]
    for t, (_, curve) in zip(lines, curves):
        np.testing.assert_allclose(np.asarray(t.y), curve.accuracy[curve.nonempty])


def test_no_curves_gives_just_the_diagonal():
    fig = reliability_figure([])
    assert len(fig.data) == 1 and fig.data[0].name == "perfect calibration"


def coverage_curve(n):
    coverage = np.arange(1, n + 1) / n
    return coverage, np.linspace(1.0, 0.8, n)


@pytest.mark.parametrize("n", [10, 1999, 2000, 10_000, 1_000_000])
def test_risk_coverage_figure_downsamples(n):
    fig = risk_coverage_figure([("m", *coverage_curve(n)), ("other", *coverage_curve(500))])
    assert len(fig.data) == 2
    for trace in fig.data:
        assert 1 <= len(trace.x) <= 2001
        assert len(trace.x) == len(trace.y)
        assert np.all(np.diff(np.asarray(trace.x)) > 0)
    # every ceil(n / 2000)-th point plus the full-coverage end point
    assert min(n, 2000) <= len(fig.data[0].x) <= min(n, 2000) + 1


def test_risk_coverage_figure_downsamples_just_below_twice_the_target():
    fig = risk_coverage_figure([("m", *coverage_curve(3999))])
    assert len(fig.data[0].x) <= 2001


@pytest.mark.parametrize("n", [10_000, 1_000_000])
def test_risk_coverage_figure_keeps_the_full_coverage_point(n):
    coverage, accuracy = coverage_curve(n)
    fig = risk_coverage_figure([("m", coverage, accuracy)])
    assert fig.data[0].x[-1] == 1.0 and fig.data[0].y[-1] == accuracy[-1]
