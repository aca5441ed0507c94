"""LIME-for-text benchmark: ours vs the ``lime`` package, side by side in one run (a benchmark,
not a test).

On the first ``--docs`` test documents of the newsgroups scenario ("headers" variant), for the
logistic-regression and random-forest pipelines, ``--samples`` perturbations, 6 words, the
predicted class. Document ``i`` uses seed ``--seed + i``. After one unrecorded warm-up
explanation per model (document 0, every contender), per document:

- ``lime_s``: ``lime.lime_text.LimeTextExplainer(class_names, random_state=seed)
  .explain_instance(text, pipeline.predict_proba, num_features=6, num_samples=N,
  labels=(target,))`` (target: the class ours explained), ``--lime-repeats`` runs (default 1).
- ``ours_s``: ``core.text.lime_text._lime`` (the uncached computation behind ``explain_lime``:
  parsing the document, sampling, predicting with the sparse fast path in batches of
  ``LimeParams.batch_size``, the kernel, forward selection and the ridge surrogate), with
  ``LimeParams(num_samples=N, num_features=6, seed=seed)``; ``--repeats`` runs (default 3).
- ``floor_s``: the least any LIME explanation must do, ``--repeats`` runs: (a) sampling the
  masks (``sample_masks``), (b) one classifier call on all N perturbed documents in feature
  space (``perturber(adapter, doc).predict(active, batch_size=N)``: building the perturber,
  the sparse tf-idf rows and one ``predict_proba``), (c) one weighted least squares of the
  target probability on every word of the document plus an intercept, with lime's kernel
  weights (``kernel_weights(active, 25)``), solved by the normal equations (``--floor-wls
  lstsq``: ``numpy.linalg.lstsq`` on the sqrt-weighted design, an SVD, 3-8x slower on these
  documents). ``floor = a + b + c`` per run.

Per document, each contender's time is the median (``--stat min``: the minimum) of its runs;
the table reports the median over documents of those seconds per explanation, the speedup
``lime_s / ours_s`` and ``ours_s / floor_s`` (ratios of the medians). Top-6 agreement: documents
(of ``--docs``) whose 6 words are the same *set* for ours and lime with the same seed (our
sampling replays lime's RandomState stream, so they should all agree), and with different seeds
(ours ``seed``, lime ``seed + 1000``), the sampling-noise reference; ``overlap`` is the mean
fraction of shared words. The breakdown table shows the floor's parts and ours' prediction step
as it runs it (``LimeParams.batch_size`` rows per call), where ours spends beyond the floor.

Targets (issue): speedup >= 20 (logreg) and >= 4 (forest); ours / floor <= 2. Prints two tables,
then one JSON line. Exit status 1 with ``--check`` when a target is missed, else 0. Run from
anywhere: ``python bench/lime_text.py`` (``--quick``: 3 documents).
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
# Drop this file's own folder from the path (house style: a bench file may share a library's name).
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(ROOT))

from core import scenarios  # noqa: E402
from core.text.lime_text import LimeParams, _lime, kernel_weights, sample_masks  # noqa: E402
from core.text.text_perturb import perturber  # noqa: E402
from core.text.words import WordDocument  # noqa: E402

SCENARIO, VARIANT = "newsgroups", "headers"
NUM_FEATURES = 6
OTHER_SEED_OFFSET = 1000
SPEEDUP_TARGETS = {"logreg": 20.0, "forest": 4.0}
FLOOR_RATIO_TARGET = 2.0


def run_timed(fn: Callable[[], object], repeats: int) -> tuple[list[float], object]:
    times, result = [], None
    for _ in range(repeats):
        started = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - started)
    return times, result


def weighted_least_squares(active: np.ndarray, y: np.ndarray, weights: np.ndarray, method: str) -> np.ndarray:
    """Coefficients (intercept first) of the weighted least squares of y on the masks."""
    design = np.empty((active.shape[0], active.shape[1] + 1))
    design[:, 0] = 1.0
    design[:, 1:] = active
    root = np.sqrt(weights)
    design *= root[:, None]
    target = y * root
    if method == "lstsq":
        return np.linalg.lstsq(design, target, rcond=None)[0]
    gram = design.T @ design
    try:
        return np.linalg.solve(gram, design.T @ target)
    except np.linalg.LinAlgError:
        return np.linalg.lstsq(design, target, rcond=None)[0]


class Contenders:
    """The three timed computations for one model."""

    def __init__(self, adapter, samples: int, floor_wls: str) -> None:
        from lime.lime_text import LimeTextExplainer

        self.adapter = adapter
        self.samples = samples
        self.floor_wls = floor_wls
        self.class_names = list(adapter.class_names)
        self._explainer_cls = LimeTextExplainer
        estimator = getattr(adapter, "estimator", None)
        if estimator is not None and hasattr(estimator, "predict_proba"):
            self.classifier_fn = estimator.predict_proba
        else:  # a non-scikit-learn text model: its adapter takes an object array of strings
            self.classifier_fn = lambda texts: adapter.predict_proba(np.array(texts, dtype=object))

    def params(self, seed: int) -> LimeParams:
        return LimeParams(num_samples=self.samples, num_features=NUM_FEATURES, seed=seed)

    def ours(self, text: str, seed: int):
        return _lime(self.adapter, WordDocument.parse(text), self.params(seed), "predicted", None)

    def lime(self, text: str, seed: int, target: int):
        explainer = self._explainer_cls(class_names=self.class_names, random_state=seed)
        return explainer.explain_instance(text, self.classifier_fn, num_features=NUM_FEATURES,
                                          num_samples=self.samples, labels=(target,))

    def floor(self, text: str, seed: int, target: int) -> dict[str, float]:
        """One floor run, timed by part; also ours' batched prediction on the same masks (untimed in floor)."""
        clock = time.perf_counter
        t0 = clock()
        doc = WordDocument.parse(text)
        active = sample_masks(doc.n_words, self.samples, seed)
        t1 = clock()
        pert = perturber(self.adapter, doc)
        proba = pert.predict(active, batch_size=self.samples)
        t2 = clock()
        _, weights = kernel_weights(active, 25.0)
        weighted_least_squares(active, proba[:, target], weights, self.floor_wls)
        t3 = clock()
        pert.predict(active, batch_size=self.params(seed).batch_size)
        t4 = clock()
        return {"sample": t1 - t0, "predict": t2 - t1, "wls": t3 - t2, "floor": t3 - t0,
                "ours_predict": t4 - t3, "path": pert.path}


def top_set_ours(e) -> set[str]:
    return {w for w, _ in e.top(NUM_FEATURES)}


def top_set_lime(exp, target: int) -> set[str]:
    return {w for w, _ in exp.as_list(label=target)}


def bench_model(model: str, texts: list[str], args, stat: Callable[[list[float]], float]) -> dict:
    adapter = scenarios.load_model(SCENARIO, model, VARIANT).adapter
    c = Contenders(adapter, args.samples, args.floor_wls)
    # warm-up: one explanation per contender on document 0 (first calls, joblib pools, imports)
    warm = c.ours(texts[0], args.seed)
    c.lime(texts[0], args.seed, warm.target)
    c.floor(texts[0], args.seed, warm.target)

    per_doc = []
    for i, text in enumerate(texts):
        seed = args.seed + i
        ours_times, e = run_timed(lambda: c.ours(text, seed), args.repeats)
        target = e.target
        lime_times, exp = run_timed(lambda: c.lime(text, seed, target), args.lime_repeats)
        started = time.perf_counter()
        exp_other = c.lime(text, seed + OTHER_SEED_OFFSET, target)
        lime_other_s = time.perf_counter() - started
        floors = [c.floor(text, seed, target) for _ in range(args.repeats)]
        mine = top_set_ours(e)
        same = top_set_lime(exp, target)
        other = top_set_lime(exp_other, target)
        row = {
            "doc": i, "n_words": e.doc.n_words, "target": target, "path": e.path,
            "ours_s": stat(ours_times), "lime_s": stat(lime_times), "lime_other_seed_s": lime_other_s,
            "floor_s": stat([f["floor"] for f in floors]),
            "sample_s": stat([f["sample"] for f in floors]),
            "predict_s": stat([f["predict"] for f in floors]),
            "wls_s": stat([f["wls"] for f in floors]),
            "ours_predict_s": stat([f["ours_predict"] for f in floors]),
            "same_seed_identical": mine == same, "same_seed_overlap": len(mine & same) / NUM_FEATURES,
            "other_seed_identical": mine == other, "other_seed_overlap": len(mine & other) / NUM_FEATURES,
        }
        per_doc.append(row)
        if args.verbose:
            print(f"  {model:<7} doc {i:>2} words {row['n_words']:>4}  lime {row['lime_s']:7.3f}  "
                  f"ours {row['ours_s']:6.3f}  floor {row['floor_s']:6.3f} (sample {row['sample_s']:.3f} "
                  f"predict {row['predict_s']:.3f} wls {row['wls_s']:.3f}; ours' predict {row['ours_predict_s']:.3f})  "
                  f"top-6 same seed {len(mine & same)}/6, other seed {len(mine & other)}/6", flush=True)

    def med(key: str) -> float:
        return float(statistics.median(r[key] for r in per_doc))

    lime_s, ours_s, floor_s = med("lime_s"), med("ours_s"), med("floor_s")
    speedup = lime_s / ours_s
    over_floor = ours_s / floor_s
    target = SPEEDUP_TARGETS.get(model)
    return {
        "lime_s": round(lime_s, 4), "ours_s": round(ours_s, 4), "floor_s": round(floor_s, 4),
        "speedup_vs_lime": round(speedup, 2), "ours_over_floor": round(over_floor, 2),
        "agree_same_seed": sum(r["same_seed_identical"] for r in per_doc),
        "agree_other_seed": sum(r["other_seed_identical"] for r in per_doc),
        "overlap_same_seed": round(float(np.mean([r["same_seed_overlap"] for r in per_doc])), 3),
        "overlap_other_seed": round(float(np.mean([r["other_seed_overlap"] for r in per_doc])), 3),
        "docs": len(per_doc),
        "speedup_target": target,
        "speedup_ok": None if target is None else bool(speedup >= target),
        "floor_ok": bool(over_floor <= FLOOR_RATIO_TARGET),
        "floor_parts_s": {"sample": round(med("sample_s"), 4), "predict": round(med("predict_s"), 4),
                          "wls": round(med("wls_s"), 4)},
        "ours_predict_s": round(med("ours_predict_s"), 4),
        "lime_other_seed_s": round(med("lime_other_seed_s"), 4),
        "median_words": int(statistics.median(r["n_words"] for r in per_doc)),
        "path": per_doc[0]["path"],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--docs", type=int, default=10, help="test documents explained per model (default 10)")
    parser.add_argument("--samples", type=int, default=5000, help="perturbed documents per explanation (default 5000)")
    parser.add_argument("--models", default="logreg,forest", help="comma-separated newsgroups models (default logreg,forest)")
    parser.add_argument("--quick", action="store_true", help="smoke run: 3 documents")
    parser.add_argument("--repeats", type=int, default=3, help="runs per document for ours and the floor (default 3)")
    parser.add_argument("--lime-repeats", type=int, default=1, help="runs per document for lime (default 1, it is slow)")
    parser.add_argument("--stat", choices=("median", "min"), default="median",
                        help="per-document statistic over the runs (default median)")
    parser.add_argument("--floor-wls", choices=("normal", "lstsq"), default="normal",
                        help="how the floor solves its weighted least squares (default: normal equations)")
    parser.add_argument("--seed", type=int, default=0, help="document i uses seed + i (default 0)")
    parser.add_argument("--verbose", "-v", action="store_true", help="print one line per document")
    parser.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    args = parser.parse_args(argv)
    if args.quick:
        args.docs = 3
    if args.docs < 1 or args.repeats < 1 or args.lime_repeats < 1 or args.samples < 2:
        parser.error("--docs, --repeats and --lime-repeats must be >= 1, --samples >= 2")
    stat = statistics.median if args.stat == "median" else min
    models = [m.strip() for m in args.models.split(",") if m.strip()]

    import lime.lime_text  # noqa: F401  (importing lime is not what we time)

    test = scenarios.load_data(SCENARIO, VARIANT)["test"]
    texts = [str(t) for t in test.x[:args.docs]]

    print(f"LIME text benchmark: {SCENARIO} ({VARIANT}), {len(texts)} test documents, {args.samples} samples, "
          f"top-{NUM_FEATURES}, per-doc {args.stat} of {args.repeats} runs (ours, floor) / {args.lime_repeats} (lime), "
          f"median over documents; floor WLS: {args.floor_wls}; cpu_count={os.cpu_count()}", flush=True)
    results = {}
    for model in models:
        results[model] = bench_model(model, texts, args, stat)

    def ok(flag: bool | None) -> str:
        return "-" if flag is None else ("pass" if flag else "FAIL")

    n = len(texts)
    print()
    print(f"{'model':<8} {'lime s/ex':>9} {'ours s/ex':>9} {'floor s/ex':>10} {'speedup':>8} {'target':>7} "
          f"{'ours/floor':>10} {'<=2':>5} {'top6 same seed':>15} {'top6 other seed':>16}")
    for model, r in results.items():
        target = "-" if r["speedup_target"] is None else f">={r['speedup_target']:.0f}x"
        same = f"{r['agree_same_seed']}/{n} ({r['overlap_same_seed']:.2f})"
        other = f"{r['agree_other_seed']}/{n} ({r['overlap_other_seed']:.2f})"
        print(f"{model:<8} {r['lime_s']:9.3f} {r['ours_s']:9.3f} {r['floor_s']:10.3f} {r['speedup_vs_lime']:7.1f}x "
              f"{target:>7} {r['ours_over_floor']:10.2f} {ok(r['floor_ok']):>5} {same:>15} {other:>16}   "
              f"speedup {ok(r['speedup_ok'])}")
    print("(top6: documents whose 6 words are the same set, mean fraction of shared words in brackets)")
    print()
    print(f"{'model':<8} {'path':<15} {'words':>5} {'floor: sample':>13} {'predict x1':>10} {'wls':>7} "
          f"{'ours predict (batches of ' + str(LimeParams.batch_size) + ')':>32} {'lime other seed s':>17}")
    for model, r in results.items():
        p = r["floor_parts_s"]
        print(f"{model:<8} {r['path']:<15} {r['median_words']:>5} {p['sample']:13.3f} {p['predict']:10.3f} "
              f"{p['wls']:7.3f} {r['ours_predict_s']:32.3f} {r['lime_other_seed_s']:17.3f}")

    targets_met = all((r["speedup_ok"] is not False) and r["floor_ok"] for r in results.values())
    summary: dict = {"bench": "lime_text", "docs": n, "samples": args.samples, "repeats": args.repeats,
                     "lime_repeats": args.lime_repeats, "stat": args.stat, "floor_wls": args.floor_wls}
    keys = ("speedup_vs_lime", "ours_over_floor", "agree_same_seed", "agree_other_seed", "overlap_same_seed",
            "overlap_other_seed", "lime_s", "ours_s", "floor_s", "floor_parts_s", "ours_predict_s")
    for model, r in results.items():
        summary[model] = {k: r[k] for k in keys}
    summary["targets"] = {"speedup": {m: SPEEDUP_TARGETS.get(m) for m in results}, "ours_over_floor": FLOOR_RATIO_TARGET}
    summary["targets_met"] = targets_met
    print(json.dumps(summary))
    return 1 if args.check and not targets_met else 0


if __name__ == "__main__":
    raise SystemExit(main())
