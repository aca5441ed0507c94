"""Slices benchmark: group metrics with bootstrap intervals, ours against Fairlearn's MetricFrame (a
benchmark, not a test). The claim it backs (core/slices/metrics.py): scoring every group with 200
bootstrap draws is faster with one vectorised draw per group than with MetricFrame's ``n_boot``.

Measured side by side in one process, each the median of ``--repeats`` runs after one warm-up, on a
synthetic binary task of ``--n`` rows (Adult's test split has 16,281) and a sensitive column of
``--groups`` groups:

- ``ours_s``: ``core.slices.metrics.group_report(..., n_boot=B)``: accuracy, error rate, ECE,
  selection rate, TPR and FPR per group, each with a 95 % interval, plus Fairlearn's four disparities;
- ``fairlearn_s``: ``MetricFrame(metrics={accuracy, selection_rate, TPR, FPR}, n_boot=B,
  ci_quantiles=[0.025, 0.975])`` (four metrics, no ECE: MetricFrame has none), the same draws count;
- ``floor_s``: one pass of the point metrics per group (``group_report`` with ``n_boot=0``), the least
  any group table does. ``ratio_vs_fairlearn = ours_s / fairlearn_s``, ``ratio_vs_floor = ours_s / floor_s``.

Prints a table, then one JSON line. Run from anywhere: ``python bench/slices.py``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def timed(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=16_281)
    parser.add_argument("--groups", type=int, default=5)
    parser.add_argument("--boot", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    from fairlearn.metrics import MetricFrame, false_positive_rate, selection_rate, true_positive_rate
    from sklearn.metrics import accuracy_score

    from core.slices.metrics import group_report

    rng = np.random.default_rng(0)
    names = np.array([f"group {i}" for i in range(args.groups)], dtype=object)
    groups = names[rng.integers(0, args.groups, args.n)]
    y = rng.integers(0, 2, args.n)
    p1 = np.clip(0.5 + (y - 0.5) * rng.uniform(0.0, 0.9, args.n), 0.01, 0.99)
    proba = np.stack([1 - p1, p1], axis=1)
    pred = proba.argmax(1)
    frame = pd.DataFrame({"g": groups})

    ours = timed(lambda: group_report(frame, "g", proba, y, positive=1, n_boot=args.boot), args.repeats)
    floor = timed(lambda: group_report(frame, "g", proba, y, positive=1, n_boot=0), args.repeats)
    metrics = {"accuracy": accuracy_score, "selection_rate": selection_rate, "tpr": true_positive_rate,
               "fpr": false_positive_rate}
    fairlearn = timed(lambda: MetricFrame(metrics=metrics, y_true=y, y_pred=pred, sensitive_features=groups,
                                          n_boot=args.boot, ci_quantiles=[0.025, 0.975], random_state=0),
                      max(1, args.repeats // 3))
    row = {"n": args.n, "groups": args.groups, "boot": args.boot, "ours_s": round(ours, 4),
           "fairlearn_s": round(fairlearn, 4), "floor_s": round(floor, 4),
           "ratio_vs_fairlearn": round(ours / fairlearn, 4), "ratio_vs_floor": round(ours / floor, 2)}
    print(f"{'n':>8} {'groups':>6} {'boot':>5} {'ours s':>8} {'fairlearn s':>12} {'floor s':>8} {'vs fairlearn':>13} "
          f"{'vs floor':>9}")
    print(f"{args.n:>8,} {args.groups:>6} {args.boot:>5} {ours:>8.3f} {fairlearn:>12.3f} {floor:>8.3f} "
          f"{ours / fairlearn:>13.3f} {ours / floor:>9.1f}")
    print(json.dumps(row))


if __name__ == "__main__":
    main()
