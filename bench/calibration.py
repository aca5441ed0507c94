"""Calibration benchmark: metrics and curves for 1,000,000 predictions x 10 classes (a benchmark,
not a test). Issue 6, item 5: under 2 s on these machines.

Measured side by side in one process, each the median of ``--repeats`` runs after one warm-up:

- ``ours_s``: everything the calibration page computes from one set of predictions:
  ``core.calibration.calibration_metrics`` (accuracy, ECE with its bootstrap 95 % interval, ACE,
  MCE, Brier, NLL) + ``top_label_curve`` + ``class_curves`` (one-vs-rest, every class) +
  ``risk_coverage``. Each of these validates its input (NaN, range, row sums) as a user call
  would; nothing is shared between them.
- ``floor_s``: a plain numpy pass over the data, the least any top-label calibration summary must
  do: ``proba.max(axis=1)``, ``proba.argmax(axis=1)`` (each reads the n x k array once) and one
  ``np.bincount`` of the confidences' bin indices weighted by the confidences (one pass over n).
  ``ratio_vs_floor = ours_s / floor_s``.
- ``sklearn_curve_s`` vs ``ours_curve_s``: ``sklearn.calibration.calibration_curve(correct,
  confidence, n_bins)`` against ``core.calibration.reliability_curve(confidence, correct, n_bins)``
  on the same top-label vectors (the peer library's one comparable operation).
  ``ratio_vs_sklearn = ours_curve_s / sklearn_curve_s``.

The predictions are synthetic and seeded: logits N(0, 2^2) per class, labels drawn from their
softmax, reported probabilities the softmax of 2x the logits (over-confident, so every bin is
used). Prints a table, then one JSON line. Exit status 1 with ``--check`` when ``ours_s`` misses
the target, else 0. Run from anywhere: ``python bench/calibration.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from core import calibration  # noqa: E402

TARGET_S = 2.0


def synthetic(n: int, k: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((n, k)) * 2.0
    p = np.exp(z - z.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    y = (rng.random(n)[:, None] > np.cumsum(p, axis=1)).sum(axis=1)
    y = np.minimum(y, k - 1)
    q = np.exp(2.0 * (z - z.max(axis=1, keepdims=True)))
    q /= q.sum(axis=1, keepdims=True)
    return q, y.astype(np.int64)


def timed(fn: Callable[[], object], repeats: int) -> tuple[float, list[float]]:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times), times


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=1_000_000, help="predictions (default 1,000,000)")
    parser.add_argument("--classes", type=int, default=10, help="classes (default 10)")
    parser.add_argument("--bins", type=int, default=15, help="bins (default 15, the page's default)")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs after one warm-up (default 5)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--check", action="store_true", help="exit 1 when ours_s exceeds the target")
    args = parser.parse_args(argv)

    proba, y = synthetic(args.n, args.classes, args.seed)
    n_bins = args.bins

    def ours() -> None:
        calibration.calibration_metrics(proba, y, n_bins)
        calibration.top_label_curve(proba, y, n_bins)
        calibration.class_curves(proba, y, n_bins)
        calibration.risk_coverage(proba, y)

    edges = np.linspace(0.0, 1.0, n_bins + 1)

    def floor() -> None:
        confidence = proba.max(axis=1)
        proba.argmax(axis=1)
        ids = np.searchsorted(edges[1:-1], confidence)
        np.bincount(ids, weights=confidence, minlength=n_bins)

    pred = proba.argmax(axis=1)
    confidence = proba[np.arange(len(proba)), pred]
    correct = (pred == y).astype(np.int64)

    from sklearn.calibration import calibration_curve

    def sklearn_curve() -> None:
        calibration_curve(correct, confidence, n_bins=n_bins, strategy="uniform")

    def ours_curve() -> None:
        calibration.reliability_curve(confidence, correct, n_bins, "uniform")

    # the two curves agree (the tests check this in detail; here it guards the comparison)
    prob_true, prob_pred = calibration_curve(correct, confidence, n_bins=n_bins)
    curve = calibration.reliability_curve(confidence, correct, n_bins)
    assert np.allclose(curve.accuracy[curve.nonempty], prob_true)
    assert np.allclose(curve.mean_confidence[curve.nonempty], prob_pred)

    parts = {
        "calibration_metrics": lambda: calibration.calibration_metrics(proba, y, n_bins),
        "top_label_curve": lambda: calibration.top_label_curve(proba, y, n_bins),
        "class_curves": lambda: calibration.class_curves(proba, y, n_bins),
        "risk_coverage": lambda: calibration.risk_coverage(proba, y),
        "check_predictions": lambda: calibration.check_predictions(proba, y),
    }
    rows = {}
    ours_s, ours_all = timed(ours, args.repeats)
    floor_s, floor_all = timed(floor, args.repeats)
    sk_s, sk_all = timed(sklearn_curve, args.repeats)
    oc_s, oc_all = timed(ours_curve, args.repeats)
    for name, fn in parts.items():
        rows[name] = timed(fn, args.repeats)

    def fmt(times: list[float]) -> str:
        return f"{min(times):.3f}-{max(times):.3f}"

    print(f"calibration benchmark: n={args.n:,} classes={args.classes} bins={n_bins} repeats={args.repeats} "
          f"(median after a warm-up), cpu_count={os.cpu_count()}")
    print(f"{'what':<42} {'median s':>9} {'range s':>13}")
    print(f"{'ours: metrics + curves + risk-coverage':<42} {ours_s:9.3f} {fmt(ours_all):>13}")
    for name, (median, times) in rows.items():
        print(f"{'  ' + name:<42} {median:9.3f} {fmt(times):>13}")
    print(f"{'floor: max + argmax + one bincount':<42} {floor_s:9.3f} {fmt(floor_all):>13}")
    print(f"{'sklearn calibration_curve (top-label)':<42} {sk_s:9.3f} {fmt(sk_all):>13}")
    print(f"{'ours reliability_curve (same input)':<42} {oc_s:9.3f} {fmt(oc_all):>13}")
    result = {
        "n": args.n,
        "classes": args.classes,
        "ours_s": round(ours_s, 4),
        "floor_s": round(floor_s, 4),
        "ratio_vs_floor": round(ours_s / floor_s, 2),
        "sklearn_curve_s": round(sk_s, 4),
        "ours_curve_s": round(oc_s, 4),
        "ratio_vs_sklearn": round(oc_s / sk_s, 2),
        "target_s": TARGET_S,
        "meets_target": bool(ours_s < TARGET_S),
    }
    print(json.dumps(result))
    return 1 if args.check and not result["meets_target"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
