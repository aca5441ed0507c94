"""SHAP benchmark (issue 8, tabular part; a benchmark, not a test).

For titanic and breast-cancer and each model (gboost -> tree, logreg / mlp -> exact on titanic's
9 features, permutation on breast-cancer's 30), explain the predicted class of
``min(--rows, len(test + val + train))`` rows (test first, then val, then train) against a
background of ``--background-size`` rows sampled from train:

- ``ours_s``: ``core.tabular.shap_tabular.explain_tabular`` into an empty ArtifactStore (includes the
  predictions that pick each row's target, the batched forward passes and the cache write).
- ``shap_s``: shap called directly with the same settings and background: predicted classes from
  the bare model, then ``shap.TreeExplainer(model, data=bg, model_output="probability",
  feature_perturbation="interventional")``, or ``shap.explainers.Exact`` / ``Permutation(seed=0)``
  over ``shap.maskers.Independent(bg)`` on ``f(X) = model.predict_proba(X)[:, k]`` (the bare
  scikit-learn estimator, or the torch module with a softmax on the whole array, unbatched),
  one call per predicted class. ``ratio = ours_s / shap_s`` (target <= 1.1).
- ``reopen_s``: the same call again through a *new* ArtifactStore on the same folder (what a
  restarted app pays: unpickling the FeatureAttribution).
- ``max_abs_diff``: largest |ours - shap| over the values (rounding for tree / exact; equal
  seeds make permutation agree too).

Also ``core.tabular.shapley.shapley_values`` on a random 10-player game (target < 1 s).

Prints a table, then one JSON line. Run from anywhere: ``python bench/shap.py --rows 200``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
# This file is called shap.py: drop its own folder from the path so `import shap` finds the library.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(ROOT))

from core import scenarios  # noqa: E402
from core.bundle import DataBundle  # noqa: E402
from core.tabular.shap_tabular import ShapParams, background_data, explain_tabular, resolve_algorithm  # noqa: E402
from core.store import ArtifactStore  # noqa: E402

RATIO_TARGET = 1.1
SHAPLEY_TARGET_S = 1.0


def combined(splits: dict[str, DataBundle], n: int) -> DataBundle:
    parts = [splits["test"], splits["val"], splits["train"]]
    x = np.concatenate([p.x for p in parts])[:n]
    y = np.concatenate([p.y for p in parts])[:n]
    first = parts[0]
    return DataBundle("tabular", x, y, first.class_names, feature_names=first.feature_names, name="bench")


def direct_function(loaded, k: int):
    adapter = loaded.adapter
    if loaded.spec.framework == "sklearn":
        estimator = adapter.estimator
        return lambda X: estimator.predict_proba(X)[:, k]
    import torch

    module = adapter.torch_module()

    def f(X):
        with torch.inference_mode():
            return torch.softmax(module(torch.as_tensor(np.asarray(X, dtype=np.float32), device=adapter.device)), 1)[:, k].double().cpu().numpy()

    return f


def direct_shap(loaded, x: np.ndarray, bg: np.ndarray, algorithm: str, seed: int) -> np.ndarray:
    import shap

    pred = direct_function(loaded, 1)(x) >= 0.5  # binary tasks: P(class 1) >= 0.5 picks class 1
    targets = pred.astype(int)
    values = np.empty(x.shape)
    if algorithm == "tree":
        explainer = shap.TreeExplainer(loaded.adapter.estimator, data=bg, model_output="probability",
                                       feature_perturbation="interventional")
        v = np.asarray(explainer.shap_values(x))
        if v.ndim == 2:
            v = np.stack([-v, v], axis=2)
        return v[np.arange(len(x)), :, targets]
    for k in (0, 1):
        idx = np.flatnonzero(targets == k)
        if len(idx) == 0:
            continue
        masker = shap.maskers.Independent(bg, max_samples=len(bg))
        if algorithm == "exact":
            result = shap.explainers.Exact(direct_function(loaded, k), masker)(x[idx], silent=True)
        else:
            result = shap.explainers.Permutation(direct_function(loaded, k), masker, seed=seed)(x[idx], silent=True)
        values[idx] = result.values
    return values


def bench_shapley(players: int = 10, repeats: int = 5) -> float:
    from core.tabular import shapley

    rng = np.random.default_rng(0)
    game = shapley.Game(tuple(f"p{i}" for i in range(players)), np.concatenate([[0.0], rng.normal(size=(1 << players) - 1)]))
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        phi = shapley.shapley_values(game)
        times.append(time.perf_counter() - started)
    assert abs(shapley.efficiency_gap(game, phi)) < 1e-9
    return float(np.median(times))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1000, help="rows explained per model (default 1000)")
    parser.add_argument("--background-size", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=ShapParams.batch_size,
                        help=f"ShapParams.batch_size: rows per forward pass (default {ShapParams.batch_size})")
    parser.add_argument("--scenario", action="append", help="only this scenario (repeatable)")
    parser.add_argument("--model", action="append", help="only this model (repeatable)")
    args = parser.parse_args(argv)

    import shap  # noqa: F401  (import and numba compilation are not what we time)

    params = ShapParams(background_size=args.background_size, batch_size=args.batch_size)
    results = []
    print(f"{'scenario':<14} {'model':<7} {'algo':<12} {'rows':>5} {'ours_s':>8} {'shap_s':>8} {'ratio':>6} "
          f"{'reopen_s':>9} {'max|diff|':>10} {'max|add.err|':>12}")
    for scenario in args.scenario or ["titanic", "breast-cancer"]:
        splits = scenarios.load_data(scenario)
        n = min(args.rows, sum(len(s) for s in splits.values()))
        data = combined(splits, n)
        bg = background_data(splits["train"], params)
        for model in args.model or ["gboost", "logreg", "mlp"]:
            loaded = scenarios.load_model(scenario, model)
            algorithm = resolve_algorithm(loaded.adapter, data.x.shape[1], "auto")
            # warm-up on two rows (numba compilation, first torch call) in a throwaway store
            with tempfile.TemporaryDirectory() as warm:
                explain_tabular(loaded.adapter, data, [0, 1], bg, params, store=ArtifactStore(warm))
                direct_shap(loaded, data.x[:2], bg.data, algorithm, params.seed)
            with tempfile.TemporaryDirectory() as folder:
                started = time.perf_counter()
                ours = explain_tabular(loaded.adapter, data, None, bg, params, store=ArtifactStore(folder))
                ours_s = time.perf_counter() - started
                started = time.perf_counter()
                reference = direct_shap(loaded, data.x, bg.data, algorithm, params.seed)
                shap_s = time.perf_counter() - started
                started = time.perf_counter()
                again = explain_tabular(loaded.adapter, data, None, bg, params, store=ArtifactStore(folder))
                reopen_s = time.perf_counter() - started
                assert np.array_equal(again.values, ours.values)
            row = {
                "scenario": scenario, "model": model, "algorithm": algorithm, "rows": n,
                "ours_s": round(ours_s, 4), "shap_s": round(shap_s, 4), "ratio": round(ours_s / shap_s, 3),
                "reopen_s": round(reopen_s, 4), "max_abs_diff": float(np.abs(ours.values - reference).max()),
                "max_additivity_error": float(np.abs(ours.additivity_error).max()),
            }
            results.append(row)
            print(f"{scenario:<14} {model:<7} {algorithm:<12} {n:>5} {ours_s:8.3f} {shap_s:8.3f} {row['ratio']:6.2f} "
                  f"{reopen_s:9.4f} {row['max_abs_diff']:10.2e} {row['max_additivity_error']:12.2e}", flush=True)
    shapley_s = bench_shapley()
    print(f"core.tabular.shapley.shapley_values, 10 players: {shapley_s * 1000:.2f} ms (target < {SHAPLEY_TARGET_S:.0f} s)")
    summary = {
        "bench": "shap", "rows": args.rows, "background_size": args.background_size,
        "batch_size": args.batch_size, "results": results,
        "max_ratio": max(r["ratio"] for r in results) if results else None, "ratio_target": RATIO_TARGET,
        "shapley_10_players_s": round(shapley_s, 6), "shapley_target_s": SHAPLEY_TARGET_S,
    }
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
