"""``python -m core``: the command-line face of the engine (no browser needed).

Exit codes: 0 success, 1 a TrustLens error (bad data dir, unknown name...; the message says
what to try), 2 a usage error (argparse), 3 a model below its accuracy target (``warm --check``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from core.errors import TrustLensError

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_BELOW_TARGET = 0, 1, 2, 3


def _stderr_progress(quiet: bool):
    last = [0.0]

    def callback(fraction: float, message: str) -> None:
        now = time.monotonic()
        if quiet or (now - last[0] < 1.0 and fraction < 1.0):
            return
        last[0] = now
        print(f"[{fraction * 100:5.1f}%] {message}", file=sys.stderr, flush=True)

    return callback


def cmd_scenarios(args: argparse.Namespace) -> int:
    from core import scenarios

    rows = [scenarios.summary(name) for name in scenarios.SCENARIOS]
    if args.json:
        print(json.dumps(rows, indent=2))
        return EXIT_OK
    for row in rows:
        data = "available" if row["data_available"] else "download needed"
        variants = f"  variants: {', '.join(row['variants'])}" if row["variants"] else ""
        print(f"{row['name']:<14} {row['kind']:<8} models: {', '.join(row['models']):<22} data: {data}{variants}")
    return EXIT_OK


def _warm_everything(args: argparse.Namespace) -> int:
    """``warm --all``: every built-in scenario's default views (core/lecture/warmup.py), one line per step."""
    from core.lecture.warmup import warm_all

    def line(item) -> None:
        if not args.json:
            print(f"{item.scenario:<14} {item.item:<18} {item.status:<9} {item.seconds:8.1f} s  {item.detail}", flush=True)

    result = warm_all(names=[args.scenario] if args.scenario else None, progress=_stderr_progress(args.quiet),
                      umap=not args.no_umap, on_item=line)
    if args.json:
        print(json.dumps(result, indent=2))
        return EXIT_OK
    for skipped in result["skipped"]:
        print(f"{skipped['scenario']:<14} skipped: {skipped['reason']}")
    per_scenario: dict[str, float] = {}
    for item in result["items"]:
        per_scenario[item["scenario"]] = per_scenario.get(item["scenario"], 0.0) + item["seconds"]
    print("total: " + ", ".join(f"{name} {s:.1f} s" for name, s in per_scenario.items()) + f"; {result['seconds']:.1f} s")
    return EXIT_ERROR if any(i["status"] == "failed" for i in result["items"]) else EXIT_OK


def cmd_warm(args: argparse.Namespace) -> int:
    from core import scenarios

    if args.all:
        return _warm_everything(args)
    if not args.scenario:
        args.warm_parser.error("give a SCENARIO (see 'python -m core scenarios') or --all")  # exits with status 2
    spec = scenarios.get_spec(args.scenario)
    variants = list(spec.variants) if args.all_variants and spec.variants else [args.variant]
    models = [spec.model(m).name for m in args.model] if args.model else None
    reports: list[dict[str, Any]] = []
    for variant in variants:
        reports += scenarios.warm(args.scenario, variant, models, progress=_stderr_progress(args.quiet))
    if args.json:
        print(json.dumps(reports, indent=2))
    else:
        for r in reports:
            target = "" if r["accuracy_target"] is None else f" (target {r['accuracy_target']:.2f})"
            how = f"trained in {r['train_seconds']:.1f} s" if r["trained_now"] else "loaded from cache"
            variant = f"[{r['variant']}]" if r["variant"] else ""
            print(f"{r['scenario']}{variant}/{r['model']}: test accuracy {r['test_accuracy']:.4f}{target}, {how}, device {r['device']}")
    if args.check and any(r["meets_target"] is False for r in reports):
        return EXIT_BELOW_TARGET
    return EXIT_OK


def cmd_calibration(args: argparse.Namespace) -> int:
    from core import calibration, scenarios
    from core.inference import predict_proba_cached

    from core.errors import check_int

    check_int("n_bins", args.bins, "calibration")  # fail before loading or training anything
    spec = scenarios.get_spec(args.scenario)
    names = [spec.model(m).name for m in args.model] if args.model else spec.model_names
    rows = []
    for name in names:
        loaded = scenarios.load_model(args.scenario, name, args.variant, progress=_stderr_progress(args.quiet))
        splits = scenarios.load_data(args.scenario, args.variant)
        val, test = splits["val"], splits["test"]
        report = calibration.calibration_report(
            name, predict_proba_cached(loaded.adapter, val), val.y, predict_proba_cached(loaded.adapter, test), test.y,
            n_bins=args.bins, methods=("temperature",),
        )
        s = report.summary()
        rows.append({
            "scenario": args.scenario, "variant": loaded.variant, "model": name, "n": s["n"], "n_bins": args.bins,
            "accuracy": s["accuracy"], "ece": s["ece"], "ece_low": s["ece_low"], "ece_high": s["ece_high"],
            "ace": s["ace"], "mce": s["mce"], "brier": s["brier"], "nll": s["nll"],
            "temperature": s["temperature"], "ece_after_temperature": s["temperature_ece"],
            "nll_after_temperature": s["temperature_nll"],
        })
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        print(f"{'model':<10} {'acc':>7} {'ECE':>7} {'MCE':>7} {'Brier':>7} {'NLL':>7} {'T':>6} {'ECE(T)':>7} {'NLL(T)':>7}")
        for r in rows:
            print(f"{r['model']:<10} {r['accuracy']:7.4f} {r['ece']:7.4f} {r['mce']:7.4f} {r['brier']:7.4f} "
                  f"{r['nll']:7.4f} {r['temperature']:6.3f} {r['ece_after_temperature']:7.4f} {r['nll_after_temperature']:7.4f}")
    return EXIT_OK


def cmd_shapley_game(args: argparse.Namespace) -> int:
    from pathlib import Path

    from core.tabular import shapley
    from core.errors import InputShapeError

    if args.values is None:
        mapping = shapley.RESTAURANT_BILL
    else:
        text = Path(args.values).read_text() if Path(args.values).is_file() else args.values
        try:
            mapping = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InputShapeError(f"--values is not valid JSON ({exc.msg} at character {exc.pos}).",
                                  hint='give an object like \'{"A": 400, "B": 560, "A,B": 740}\' or a path to one.') from None
        if not isinstance(mapping, dict):
            raise InputShapeError(f"--values must be a JSON object of coalition -> value; got a {type(mapping).__name__}.")
    game = shapley.Game.from_mapping(mapping)
    phi = shapley.shapley_values(game)
    result = {
        "players": list(game.players),
        "shapley_values": {p: float(v) for p, v in zip(game.players, phi)},
        "grand_coalition_value": float(game.values[-1]),
        "empty_coalition_value": float(game.values[0]),
        "efficiency_gap": shapley.efficiency_gap(game, phi),
    }
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        for player, value in result["shapley_values"].items():
            print(f"{player:<16} {value:12.4f}")
        print(f"{'sum':<16} {sum(result['shapley_values'].values()):12.4f}  "
              f"(grand coalition {result['grand_coalition_value']:.4f}, gap {result['efficiency_gap']:.2e})")
    return EXIT_OK


def _scenario_of_kind(name: str, kind: str, what: str):
    """The scenario's spec, or an error naming the scenarios of the ``kind`` that ``what`` needs."""
    from core import scenarios
    from core.errors import InputShapeError

    spec = scenarios.get_spec(name)
    if spec.kind != kind:
        fitting = [n for n, s in scenarios.SCENARIOS.items() if s.kind == kind]
        raise InputShapeError(f"{what} need a {kind} scenario; {name!r} is {spec.kind}.",
                              hint=f"use one of: {', '.join(fitting)}.")
    return spec


def _check_index(args: argparse.Namespace, n: int, noun: str) -> None:
    from core.errors import ParameterError

    if not 0 <= args.index < n:
        raise ParameterError(f"--index {args.index} is out of range: the test split of {args.scenario!r} has "
                             f"{n} {noun}, so valid indices are 0 to {n - 1}.")


def cmd_shap(args: argparse.Namespace) -> int:
    from core import scenarios
    from core.tabular.shap_tabular import ShapParams, background_data, explain_tabular

    spec = _scenario_of_kind(args.scenario, "tabular", "SHAP tabular explanations")
    params = ShapParams(algorithm=args.algorithm, background_size=args.background_size)  # validate before loading
    model = spec.model(args.model or spec.default_model).name
    splits = scenarios.load_data(args.scenario, args.variant)
    test = splits["test"]
    _check_index(args, len(test), "rows")
    loaded = scenarios.load_model(args.scenario, model, args.variant, progress=_stderr_progress(args.quiet))
    explanation = explain_tabular(loaded.adapter, test, [args.index], background_data(splits["train"], params), params,
                                  progress=_stderr_progress(args.quiet))
    target = int(explanation.target[0])
    names = explanation.feature_names
    result = {
        "scenario": args.scenario, "model": model, "index": args.index, "target": target,
        "target_name": loaded.adapter.class_names[target], "algorithm": explanation.method.split("/")[-1],
        "base_value": float(explanation.base_values[0]), "output": float(explanation.output[0]),
        "values": {f: float(v) for f, v in zip(names, explanation.values[0])},
        "feature_values": {f: float(v) for f, v in zip(names, explanation.data[0])},
        "additivity_error": float(explanation.additivity_error[0]),
    }
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"{args.scenario}/{model} test row {args.index}: P({result['target_name']}) = {result['output']:.4f} "
              f"(base {result['base_value']:.4f}, {result['algorithm']})")
        for f in sorted(names, key=lambda f: -abs(result["values"][f])):
            print(f"{f:<28} {result['feature_values'][f]:>12.4g} {result['values'][f]:>+10.4f}")
    return EXIT_OK


def cmd_lime(args: argparse.Namespace) -> int:
    from core import scenarios
    from core.errors import ParameterError
    from core.text.lime_text import LimeParams, explain_lime

    spec = _scenario_of_kind(args.scenario, "text", "LIME text explanations")
    params = LimeParams(num_samples=args.num_samples, num_features=args.num_features, seed=args.seed,
                        feature_selection=args.feature_selection)  # validate before loading anything
    model = spec.model(args.model or spec.default_model).name
    test = scenarios.load_data(args.scenario, args.variant)["test"]
    _check_index(args, len(test), "documents")
    loaded = scenarios.load_model(args.scenario, model, args.variant, progress=_stderr_progress(args.quiet))
    target = "predicted" if args.label is None else args.label
    if args.label is not None and not 0 <= args.label < len(spec.class_names):
        raise ParameterError(f"--label must be a class index in 0..{len(spec.class_names) - 1} "
                             f"({', '.join(spec.class_names)}); got {args.label}.")
    started = time.perf_counter()
    e = explain_lime(loaded.adapter, str(test.x[args.index]), params, target, progress=_stderr_progress(args.quiet))
    result = {
        "scenario": args.scenario, "variant": loaded.variant, "model": model, "index": args.index,
        "true_class": spec.class_names[int(test.y[args.index])],
        "predicted_class": e.class_names[e.predicted], "explained_class": e.target_name,
        "probabilities": {c: float(p) for c, p in zip(e.class_names, e.proba)},
        "words": [{"word": w, "weight": v} for w, v in e.top()],
        "intercept": e.intercept, "local_r2": e.score, "local_prediction": e.local_pred,
        "num_samples": params.num_samples, "seed": params.seed, "path": e.path,
        "seconds": round(time.perf_counter() - started, 3),
    }
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"{args.scenario}[{loaded.variant}]/{model} test document {args.index} (true: {result['true_class']}): "
              f"predicted {result['predicted_class']} (P = {e.proba[e.predicted]:.3f}); "
              f"explaining P({e.target_name})")
        for w, v in e.top():
            print(f"  {w:<24} {v:+.4f}")
        print(f"intercept {e.intercept:.4f}, local R^2 {e.score:.3f}, {params.num_samples} samples, seed {params.seed}")
    return EXIT_OK


def parse_indices(spec: str, n: int, flag: str = "--index") -> list[int]:
    """``"3"``, ``"0-49"`` (inclusive), ``"3,7,9"`` or a mix (``"0-4,9"``) -> indices in order, duplicates dropped.

    Every index must lie in 0..n-1 (the test split's size).
    """
    from core.errors import ParameterError

    out: list[int] = []
    for part in str(spec).replace(" ", "").split(","):
        low, dash, high = part.partition("-")
        if not low.isdigit() or (dash and not high.isdigit()):
            raise ParameterError(f"{flag} {spec!r}: {part!r} is not an index or a range.",
                                 hint="write one index (3), a range (0-49, both ends included) or a list (3,7,9).")
        first, last = int(low), int(high) if dash else int(low)
        if last < first:
            raise ParameterError(f"{flag} {spec!r}: the range {part!r} runs backwards.", hint=f"write {last}-{first}.")
        if last >= n:
            raise ParameterError(f"{flag} {spec!r} is out of range: the test split has {n} samples, so valid indices "
                                 f"are 0 to {n - 1}.")
        out.extend(i for i in range(first, last + 1) if i not in out)
    return out


def _test_image(args: argparse.Namespace, what: str, many: bool = False):
    """(model name, splits, adapter, x (k, C, H, W), y (k,), indices) of the test images ``args.index``.

    ``many``: ``args.index`` is an index spec (:func:`parse_indices`), checked before the model loads.
    """
    import numpy as np

    from core import scenarios

    spec = _scenario_of_kind(args.scenario, "image", what)
    model = spec.model(args.model or spec.default_model).name
    splits = scenarios.load_data(args.scenario, args.variant)
    test = splits["test"]
    if many:
        indices = parse_indices(args.index, len(test))
    else:
        _check_index(args, len(test), "images")
        indices = [args.index]
    loaded = scenarios.load_model(args.scenario, model, args.variant, progress=_stderr_progress(args.quiet))
    rows = np.asarray(indices, dtype=np.int64)
    return model, splits, loaded.adapter, np.asarray(test.x[rows], dtype=np.float32), np.asarray(test.y[rows]), indices


def cmd_explain(args: argparse.Namespace) -> int:
    from pathlib import Path

    import numpy as np

    from core.attribution import explain_images, get_method, image_context, resolve_targets
    from core.errors import ParameterError

    _scenario_of_kind(args.scenario, "image", "Image attributions")
    method = get_method(args.method)  # unknown names fail before loading anything
    out = Path(args.out)
    if out.suffix != ".npz":
        raise ParameterError(f"--out must name a .npz file; got {args.out!r}.", hint="e.g. --out maps.npz")
    if not out.parent.is_dir():
        raise ParameterError(f"--out {args.out!r}: the folder {str(out.parent)!r} does not exist.")
    model, splits, adapter, x, y, indices = _test_image(args, "Image attributions", many=True)
    target_arg: Any = args.target
    if target_arg not in ("predicted", "true") and target_arg.lstrip("-").isdigit():
        target_arg = int(target_arg)
    target = resolve_targets(adapter, x, target_arg, y=y, batch_size=args.batch_size)
    proba = adapter.predict_proba(x, args.batch_size)
    started = time.perf_counter()
    result = explain_images(adapter, x, target, args.method, batch_size=args.batch_size,
                            context=image_context(splits["train"]), progress=_stderr_progress(args.quiet))
    seconds = time.perf_counter() - started
    predicted = proba.argmax(axis=1)
    names = adapter.class_names
    degenerate = result.degenerate
    np.savez_compressed(
        out, **result.to_arrays(), image=x, probabilities=proba, predicted=predicted.astype(np.int64),
        true=np.asarray(y, dtype=np.int64), method=np.array(args.method), params=np.array(json.dumps(result.params)),
        scenario=np.array(args.scenario), model=np.array(model), index=np.asarray(indices, dtype=np.int64),
        output=np.array(result.output), signed=np.array(result.signed),
    )
    entries = []
    for k, index in enumerate(indices):
        p, t, true = int(predicted[k]), int(target[k]), int(y[k])
        entries.append({
            "index": index, "predicted": p, "predicted_name": names[p], "target": t, "target_name": names[t],
            "true": true, "true_name": names[true], "probabilities": {c: float(v) for c, v in zip(names, proba[k])},
            "degenerate": bool(degenerate[k]), "degenerate_reason": result.degenerate_reason(k, method.title),
            "extras": {key: float(a[k]) for key, a in result.extras.items() if np.ndim(a) == 1},
        })
    report = {
        "scenario": args.scenario, "model": model, "method": args.method, "title": method.title,
        "indices": indices, "output": result.output, "signed": result.signed, "params": result.params,
        "shape": list(result.maps.shape[1:]), "degenerate_count": int(degenerate.sum()), "out": str(out),
        "seconds": round(seconds, 3), "entries": entries,
    }
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        heats = result.heatmap()
        for k, entry in enumerate(entries):
            print(f"{args.scenario}/{model} test image {entry['index']} (true {entry['true_name']}): predicted "
                  f"{entry['predicted_name']} (P = {proba[k, entry['predicted']]:.3f}); {method.title} toward "
                  f"{entry['target_name']} ({result.output})")
            print(f"  map {result.maps.shape[1:]}, min {heats[k].min():+.4g}, max {heats[k].max():+.4g}"
                  + (f"; BLANK: {entry['degenerate_reason']}" if entry["degenerate"] else ""))
            if "completeness_gap" in result.extras:
                e = result.extras
                print(f"  completeness: sum of attributions {e['attribution_sum'][k]:+.4f} vs f(x) - f(baseline) "
                      f"{e['output_delta'][k]:+.4f} (gap {e['completeness_gap'][k]:+.2e})")
        print(f"params {result.params}")
        print(f"{int(degenerate.sum())} of {len(indices)} maps are degenerate (blank, constant or non-finite)")
        print(f"wrote {out} in {seconds:.2f} s")
    return EXIT_OK


def cmd_sanity(args: argparse.Namespace) -> int:
    from core.attribution import explain_images, get_method, image_context, resolve_targets
    from core.trust.sanity import faithfulness_curves, randomization_test

    from core import scenarios

    if scenarios.get_spec(args.scenario).kind == "text":
        return _sanity_text(args)
    _scenario_of_kind(args.scenario, "image", "Sanity checks")
    args.steps = 20 if args.steps is None else args.steps
    method = get_method(args.method)
    model, splits, adapter, x, _y, _indices = _test_image(args, "Sanity checks")
    target = resolve_targets(adapter, x, "predicted")
    context = image_context(splits["train"])
    started = time.perf_counter()
    randomization = randomization_test(adapter, x, target, {args.method: None}, mode=args.mode, context=context,
                                       progress=_stderr_progress(args.quiet))[args.method]
    heat = explain_images(adapter, x, target, args.method, context=context).heatmap()
    curves = faithfulness_curves(adapter, x, target, heat, method=args.method, steps=args.steps, fill=args.fill,
                                 context=context)
    report = {
        "scenario": args.scenario, "model": model, "index": args.index, "method": args.method,
        "target": int(target[0]), "target_name": adapter.class_names[int(target[0])], "mode": args.mode,
        "randomization": [{"stage": stage, **{k: float(v[s, 0]) for k, v in randomization.similarity.items()}}
                          for s, stage in enumerate(randomization.stages)],
        "randomization_verdict": randomization.verdict(),
        "degenerate": bool(curves.degenerate[0]),
        "faithfulness": {"steps": args.steps, "fill": args.fill, "areas": _finite_or_none(curves.areas())},
        "faithfulness_verdict": curves.verdict(),
        "seconds": round(time.perf_counter() - started, 3),
    }
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(f"{args.scenario}/{model} test image {args.index}: {method.title} toward {report['target_name']}")
        print(f"{args.mode} randomisation: similarity to the original map (Spearman |values|, SSIM, top-10 % overlap)")
        for row in report["randomization"]:
            print(f"  {row['stage']:<18} {row['spearman']:+.3f}  {row['ssim']:+.3f}  {row['top_k']:.2f}")
        print(f"  -> {report['randomization_verdict']}")
        print(f"deletion / insertion ({args.steps} steps, {args.fill} fill): areas "
              + ", ".join(f"{k} {'n/a' if v is None else f'{v:.3f}'}" for k, v in report["faithfulness"]["areas"].items()))
        print(f"  -> {report['faithfulness_verdict']}")
    return EXIT_OK


def _finite_or_none(values: dict[str, float]) -> dict[str, float | None]:
    """NaN (an area over degenerate maps only) as None, so --json prints valid JSON (null)."""
    return {k: (None if v != v else v) for k, v in values.items()}


def _sanity_text(args: argparse.Namespace) -> int:
    """``sanity`` on a text scenario: word weights instead of maps (no fill, no SSIM)."""
    from core import scenarios
    from core.errors import ParameterError
    from core.trust.sanity_text import predicted_classes, text_explanations, text_faithfulness_curves, text_randomization_test
    from core.text.text_methods import METHOD_TITLES, supported_methods

    spec = scenarios.get_spec(args.scenario)
    if args.method not in METHOD_TITLES:
        raise ParameterError(f"Unknown text method {args.method!r} for {args.scenario}; choose from "
                             f"{', '.join(METHOD_TITLES)}.")
    steps = 10 if args.steps is None else args.steps
    model = spec.model(args.model or spec.default_model).name
    test = scenarios.load_data(args.scenario, args.variant)["test"]
    _check_index(args, len(test), "documents")
    loaded = scenarios.load_model(args.scenario, model, args.variant, progress=_stderr_progress(args.quiet))
    adapter = loaded.adapter
    reason = supported_methods(adapter)[args.method]
    if reason:
        raise ParameterError(f"{METHOD_TITLES[args.method]} does not support {model!r}: {reason}",
                             hint="use lime or occlusion, which work for any text model.")
    text = [str(test.x[args.index])]
    target = predicted_classes(adapter, text)
    started = time.perf_counter()
    report: dict[str, Any] = {"scenario": args.scenario, "variant": loaded.variant, "model": model,
                              "index": args.index, "method": args.method, "target": int(target[0]),
                              "target_name": adapter.class_names[int(target[0])], "mode": args.mode}
    if adapter.torch_module() is None:
        report["randomization"] = None
        report["randomization_verdict"] = (f"not run: the randomisation test re-initialises weights, which needs a "
                                           f"torch model; {model!r} is {adapter.info.framework} (try --model bag)")
    else:
        result = text_randomization_test(adapter, text, [args.method], mode=args.mode,
                                         progress=_stderr_progress(args.quiet))[args.method]
        report["randomization"] = [{"stage": stage, **{k: float(v[s, 0]) for k, v in result.similarity.items()}}
                                   for s, stage in enumerate(result.stages)]
        report["randomization_verdict"] = result.verdict()
    weights = text_explanations(adapter, text, [args.method], target)[args.method][0].weights
    curves = text_faithfulness_curves(adapter, text, target, [weights], method=args.method, steps=steps)
    report["degenerate"] = bool(curves.degenerate[0])
    report["faithfulness"] = {"steps": steps, "areas": _finite_or_none(curves.areas())}
    report["faithfulness_verdict"] = curves.verdict()
    report["seconds"] = round(time.perf_counter() - started, 3)
    if args.json:
        print(json.dumps(report, indent=2))
        return EXIT_OK
    print(f"{args.scenario}/{model} test document {args.index}: {METHOD_TITLES[args.method]} toward "
          f"{report['target_name']}")
    if report["randomization"] is not None:
        print(f"{args.mode} randomisation: similarity to the original word weights (Spearman |weights|, top-10 words)")
        for row in report["randomization"]:
            print(f"  {row['stage']:<22} {row['spearman']:+.3f}  {row['top_k']:.2f}")
    print(f"  -> {report['randomization_verdict']}")
    print(f"deletion / insertion ({steps} steps): areas " + ", ".join(f"{k} {v:.3f}" for k, v in curves.areas().items()))
    print(f"  -> {report['faithfulness_verdict']}")
    return EXIT_OK


def cmd_embed(args: argparse.Namespace) -> int:
    """Map every sample of a scenario (all splits, or one) by a layer's activations; write the coordinates."""
    import numpy as np

    from core import scenarios
    from core.embeddings import EmbeddingParams, combine_splits, default_layer, embed
    from core.embeddings.export import map_table
    from core.errors import ParameterError, check_int
    from core.inference import predict_proba_cached

    if not args.out.lower().endswith((".csv", ".parquet")):
        raise ParameterError(f"--out must name a .csv or .parquet file; got {args.out!r}.",
                             hint="e.g. --out map.csv")
    params = EmbeddingParams(method=args.method, perplexity=args.perplexity, n_neighbors=args.neighbors,
                             min_dist=args.min_dist, standardize=args.standardize, seed=args.seed).validated()
    spec = scenarios.get_spec(args.scenario)
    model = spec.model(args.model or spec.default_model).name
    progress = _stderr_progress(args.quiet)
    loaded = scenarios.load_model(args.scenario, model, args.variant, progress=progress)
    adapter = loaded.adapter
    layer = args.layer or default_layer(adapter)
    bundle, split_of, position = combine_splits(scenarios.load_data(args.scenario, args.variant), args.split)
    if args.n is not None:
        n = check_int("n", args.n, "embed")
        if n < len(bundle):  # a fixed random subset, the same for every method
            keep = np.sort(np.random.default_rng(args.seed).choice(len(bundle), size=n, replace=False))
            bundle, split_of, position = bundle[keep], split_of[keep], position[keep]
    started = time.perf_counter()
    embedding = embed(adapter, bundle, layer, params, batch_size=args.batch_size, progress=progress)
    seconds = time.perf_counter() - started
    proba = predict_proba_cached(adapter, bundle)
    table = map_table(embedding.coords, bundle.y, proba, adapter.class_names, split_of, position)
    if args.out.lower().endswith(".parquet"):
        table.to_parquet(args.out, index=False)
    else:
        table.to_csv(args.out, index=False)
    report = {"scenario": args.scenario, "model": model, "layer": layer, "method": args.method, "n": len(bundle),
              "split": args.split, "out": args.out, **embedding.quality.as_dict(),
              "projection_seconds": round(embedding.seconds, 3), "seconds": round(seconds, 3)}
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        q = embedding.quality
        print(f"{args.scenario}/{model} {layer}: {args.method} map of {len(bundle):,} points written to {args.out}")
        print(f"  trustworthiness {q.trustworthiness:.4f} (k={q.k}, {q.n_queries:,} query points); kNN accuracy "
              f"{q.knn_accuracy_map:.4f} in the map vs {q.knn_accuracy_original:.4f} in the original space")
    return EXIT_OK


def cmd_uncertainty(args: argparse.Namespace) -> int:
    from core import scenarios
    from core.errors import check_int
    from core.uncertainty.report import SCORE_TITLES, uncertainty_report
    from core.uncertainty.sources import SOURCES, load_source

    _scenario_of_kind(args.scenario, "image", "The uncertainty stress sets")
    members = check_int("members", 5 if args.members is None else args.members, "uncertainty")
    samples = check_int("mc_samples", 30 if args.mc_samples is None else args.mc_samples, "uncertainty")
    only_mc = args.mc_samples is not None and args.members is None
    kinds = list(dict.fromkeys(args.source or ([] if only_mc else ["deep"])))
    if args.mc_samples is not None and "mc_dropout" not in kinds:
        kinds.append("mc_dropout")
    model = scenarios.get_spec(args.scenario).model(args.model or scenarios.get_spec(args.scenario).default_model).name
    progress = _stderr_progress(args.quiet)
    reports = []
    started = time.perf_counter()
    for kind in kinds:
        n = members if kind in ("deep", "bootstrap") else samples
        source = load_source(args.scenario, model, args.variant, kind, n, progress=progress)
        report = uncertainty_report(source, epsilon=args.epsilon, n_ood=args.n_ood, autoencoder=not args.no_autoencoder,
                                    progress=progress)
        reports.append({"source": kind, "title": SOURCES[kind], "n_members": n,
                        "member_accuracy": [round(a, 4) for a in source.member_accuracy],
                        "train_seconds": round(source.train_seconds, 2), "sets": report.rows()})
    out = {"scenario": args.scenario, "model": model, "variant": args.variant, "epsilon": args.epsilon,
           "n_ood": args.n_ood, "reports": reports, "seconds": round(time.perf_counter() - started, 2)}
    if args.json:
        print(json.dumps(out, indent=2, ensure_ascii=False))
        return EXIT_OK

    def cell(value: Any) -> str:
        return "   -  " if value is None else f"{value:6.3f}"

    for rep in reports:
        print(f"{args.scenario}/{model}: {rep['title']}, {rep['n_members']} "
              f"{'members' if rep['source'] in ('deep', 'bootstrap') else 'samples'}; FGSM epsilon {args.epsilon:g}")
        names = list(rep["sets"][0]["error_auroc"])
        print(f"  {'set':<20} {'n':>6} {'acc mean':>8} {'acc max':>8}   AUROC for errors / for OOD vs clean")
        for row in rep["sets"]:
            print(f"  {row['title']:<20} {row['n']:>6} {cell(row['accuracy_mean']):>8} {cell(row['accuracy_max']):>8}")
            for name in names:
                print(f"      {SCORE_TITLES[name]:<46} {cell(row['error_auroc'][name])}  {cell(row['ood_auroc'][name])}")
    return EXIT_OK


def _add_sample_arguments(p: argparse.ArgumentParser, scenario_help: str, noun: str, variant_help: str,
                          many: bool = False) -> None:
    """The arguments every sample verb takes: SCENARIO, --index (one, or ``many``), --model, --variant."""
    p.add_argument("scenario", help=scenario_help)
    p.add_argument("--model", default=None, metavar="M", help="model name (default: the scenario's first)")
    if many:
        p.add_argument("--index", required=True, metavar="I",
                       help=f"{noun}(s) of the test split: one (3), a range (0-49, both ends included) or a list (3,7,9)")
    else:
        p.add_argument("--index", type=int, required=True, metavar="I", help=f"{noun} of the test split")
    p.add_argument("--variant", default=None, help=variant_help)


def cmd_inspect_model(args: argparse.Namespace) -> int:
    """Detected format, inferred spec and refusal reason of a model file (exit 1 when refused); runs nothing in it.

    With ``--data``: the upload page's whole dry run on that data (see :func:`_inspect_upload`)."""
    from pathlib import Path

    from core.upload.model_upload import inspect_model

    path = Path(args.path)
    if not path.is_file():
        raise TrustLensError(f"Model file {args.path!r} does not exist.", hint="give the path to a .pt, .pt2, .onnx or .skops file.")
    inspection = inspect_model(path.read_bytes(), path.name, allow_pickle=args.allow_pickle or None)
    if args.trust_types and inspection.untrusted_types and not inspection.refused:  # as the page's "I trust these types"
        inspection = inspect_model(path.read_bytes(), path.name, allow_pickle=args.allow_pickle or None,
                                   trusted_types=inspection.untrusted_types)
    if args.data is not None:
        return _inspect_upload(args, path, inspection)
    if args.spec is not None:
        raise TrustLensError("--spec applies to the dry run on data.", hint="add --data PATH, or drop --spec.")
    if args.json:
        print(json.dumps(inspection.to_json(), indent=2, default=str))
    else:
        print(f"{path.name}: {inspection.format_title} ({inspection.size} bytes, sha256 {inspection.sha256[:16]})")
        for key, value in inspection.inferred.items():
            print(f"  {key}: {value}")
        for name in inspection.untrusted_types:
            print(f"  untrusted type (must be accepted): {name}")
        if inspection.refused:
            print(f"refused: {inspection.refused}")
    return EXIT_ERROR if inspection.refused else EXIT_OK


def _inspect_upload(args: argparse.Namespace, path: Any, inspection: Any) -> int:
    """``inspect-model MODEL --data DATA``: the upload page's dry run (core.upload.byom.open_files), headless."""
    from core.upload.byom import open_files

    refused = inspection.refused
    if not refused and inspection.needs_pickle_confirmation and not args.allow_pickle:
        refused = (f"{path.name!r} is a {inspection.format_title}: loading it runs code from the file.\n"
                   "Try: pass --allow-pickle if you made this file yourself.")
    if not refused and inspection.untrusted_types and not args.trust_types:
        refused = (f"{path.name!r} needs {len(inspection.untrusted_types)} type(s) outside skops' trusted set: "
                   f"{', '.join(inspection.untrusted_types)}. They could run code when loaded.\n"
                   "Try: pass --trust-types if you know where the file comes from.")
    report: dict[str, Any] = {"model": path.name, "data": args.data, "format": inspection.format,
                              "format_title": inspection.format_title, "refused": refused}
    if not refused:
        try:
            uploaded = open_files(str(path), args.data, args.spec, allow_pickle=args.allow_pickle,
                                  trusted_types=inspection.untrusted_types if args.trust_types else (),
                                  progress=_stderr_progress(args.quiet))
            report = {"model": path.name, "data": args.data, **uploaded.report()}
        except TrustLensError as exc:
            report["refused"] = str(exc)
    if args.json:
        print(json.dumps(report, indent=2, default=str))
    elif report["refused"]:
        print(f"{path.name} + {args.data}: {report['format_title']}")
        print(f"refused: {report['refused']}")
    else:
        accuracy = report["accuracy"]
        print(f"{path.name} + {args.data}: {report['format_title']}, {report['n_samples']} samples "
              + (f"(accuracy {accuracy:.1%} on the test split)" if report["labelled"] else "(no labels)"))
        spec = report["spec"]
        shape = f" {spec['channels']}x{spec['height']}x{spec['width']}" if spec["input_kind"] == "image" else ""
        print(f"  input: {spec['input_kind']}{shape}, outputs: {spec['outputs']}")
        print(f"  classes ({len(report['class_names'])}): {', '.join(report['class_names'])}")
        print(f"  methods offered: {', '.join(report['methods_offered']) or 'none'}")
        for name, reason in report["methods_refused"].items():
            print(f"  not offered: {name}: {reason}")
        for note in report["notes"]:
            print(f"  note: {note}")
    return EXIT_ERROR if report["refused"] else EXIT_OK


def cmd_serve(args: argparse.Namespace) -> int:
    """Start the app with the model and data preloaded (pickle-based files allowed: the launcher chose them)."""
    from core.upload.byom import launch

    options = {k: v for k, v in (("text_column", args.text_column), ("label_column", args.label_column)) if v}
    if args.target is not None:
        options["target"] = None if args.target == "" else args.target
    launch(args.model, args.data, args.spec, port=args.port, address=args.address, block=True, **options)
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m core",
        description="TrustLens engine: list scenarios, train/load their models, precompute caches.",
        epilog="Environment: TRUSTLENS_DATA_DIR (offline datasets), TRUSTLENS_CACHE_DIR (artifact cache), "
        "TRUSTLENS_DEVICE (cpu, cuda, mps).",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser("scenarios", help="list the built-in scenarios and whether their data is available")
    p.add_argument("--json", action="store_true", help="print JSON (name, kind, models, classes, data availability)")
    p.set_defaults(func=cmd_scenarios)

    p = sub.add_parser("warm", help="train (or load from cache) every model of a scenario and report accuracies; "
                       "--all: precompute every built-in scenario's default views before a lecture")
    p.add_argument("scenario", nargs="?", help="scenario name, see 'scenarios' (optional with --all: only this one)")
    p.add_argument("--all", action="store_true", help="precompute what every page's default view and curated "
                   "examples need (models, predictions, explanations, maps, uncertainty) for every built-in scenario "
                   "whose data is available")
    p.add_argument("--no-umap", action="store_true", help="with --all: skip compiling UMAP's numba code")
    p.add_argument("--model", action="append", metavar="M", help="only this model (repeatable)")
    p.add_argument("--variant", default=None, help="dataset variant (newsgroups: headers, no-headers)")
    p.add_argument("--all-variants", action="store_true", help="warm every variant of the scenario")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--check", action="store_true", help="exit with status 3 if a model misses its accuracy target")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    p.set_defaults(func=cmd_warm, warm_parser=p)

    p = sub.add_parser("calibration", help="calibration metrics on the test split, before and after temperature scaling")
    p.add_argument("scenario", help="scenario name, see 'scenarios'")
    p.add_argument("--model", action="append", metavar="M", help="only this model (repeatable; default: all)")
    p.add_argument("--variant", default=None, help="dataset variant (newsgroups: headers, no-headers)")
    p.add_argument("--bins", type=int, default=15, help="equal-width bins for ECE / MCE (default 15)")
    p.add_argument("--json", action="store_true", help="print JSON: accuracy, ece, mce, brier, nll, temperature, "
                   "ece_after_temperature, nll_after_temperature")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    p.set_defaults(func=cmd_calibration)

    p = sub.add_parser("shapley-game", help="exact Shapley values of a cooperative game (default: the lecture's restaurant bill)")
    p.add_argument("--values", default=None, metavar="JSON",
                   help='coalition values as a JSON object (or a path to a JSON file), coalitions keyed like "A", '
                        '"A,B"; every non-empty coalition is needed. Default: the restaurant bill '
                        '(Alice 400, Bob 560, Carol 720, ..., all three 1000)')
    p.add_argument("--json", action="store_true", help="print players, shapley_values, efficiency_gap as JSON")
    p.set_defaults(func=cmd_shapley_game)

    p = sub.add_parser("shap", help="SHAP values of one test row of a tabular scenario (background: the train split)")
    _add_sample_arguments(p, "a tabular scenario (breast-cancer, titanic)", "row to explain", "dataset variant")
    p.add_argument("--algorithm", default="auto", help="auto, tree, exact, permutation or kernel (default auto)")
    p.add_argument("--background-size", type=int, default=100, help="background rows sampled from train (default 100)")
    p.add_argument("--json", action="store_true", help="print scenario, model, index, target, target_name, algorithm, "
                   "base_value, output, values, feature_values, additivity_error as JSON")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    p.set_defaults(func=cmd_shap)

    p = sub.add_parser("lime", help="LIME word weights for one test document of a text scenario")
    _add_sample_arguments(p, "a text scenario (newsgroups)", "document to explain",
                          "dataset variant (newsgroups: headers, no-headers)")
    p.add_argument("--num-samples", type=int, default=5000, metavar="N", help="perturbed documents (default 5000)")
    p.add_argument("--num-features", type=int, default=10, metavar="K", help="words in the explanation (default 10)")
    p.add_argument("--feature-selection", default="auto", help="auto, forward_selection, highest_weights or none")
    p.add_argument("--seed", type=int, default=0, metavar="S", help="sampling seed (default 0)")
    p.add_argument("--label", type=int, default=None, metavar="K", help="explain this class index (default: predicted)")
    p.add_argument("--json", action="store_true", help="print words (word, weight), predicted_class, explained_class, "
                   "probabilities, intercept, local_r2 as JSON")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    p.set_defaults(func=cmd_lime)

    p = sub.add_parser("explain", help="attribution maps of test images of an image scenario, written to .npz")
    _add_sample_arguments(p, "an image scenario (digits, mnist)", "image to explain", "dataset variant", many=True)
    p.add_argument("--method", required=True, metavar="M",
                   help="occlusion, gradient, gradient_x_input, smoothgrad, guided_backprop, integrated_gradients, "
                        "expected_gradients, grad_cam, guided_grad_cam or lrp (default parameters)")
    p.add_argument("--target", default="predicted", metavar="T",
                   help="class to explain: predicted (default), true, a class index or a class name")
    p.add_argument("--out", required=True, metavar="FILE.npz", help="where to write maps, heatmap, target, predicted...")
    p.add_argument("--batch-size", type=int, default=256, metavar="B", help="rows per forward/backward pass (default 256)")
    p.add_argument("--json", action="store_true", help="print scenario, model, method, params, indices, "
                   "degenerate_count and one entry per index (index, predicted, target, true, probabilities, "
                   "degenerate, degenerate_reason, extras) as JSON")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    p.set_defaults(func=cmd_explain)

    p = sub.add_parser("sanity", help="randomisation test and deletion / insertion curves of one test image's map "
                       "or one test document's word weights")
    _add_sample_arguments(p, "an image (digits, mnist) or text (newsgroups) scenario", "image or document",
                          "dataset variant")
    p.add_argument("--method", required=True, metavar="M",
                   help="an image attribution method (see 'explain') or, for text, lime, occlusion, "
                        "gradient_x_embedding or shap_partition")
    p.add_argument("--mode", choices=("cascading", "independent"), default="cascading",
                   help="randomise layers from the output down, cumulatively (default), or one at a time")
    p.add_argument("--steps", type=int, default=None,
                   help="points of the deletion / insertion curves (default 20 for images, 10 for text)")
    p.add_argument("--fill", choices=("zero", "mean", "blur"), default="zero",
                   help="what a deleted pixel becomes (images only; a deleted word is removed)")
    p.add_argument("--json", action="store_true", help="print randomization (stage, spearman, ssim, top_k), "
                   "faithfulness areas and verdicts as JSON")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    p.set_defaults(func=cmd_sanity)

    p = sub.add_parser("embed", help="2-D map (t-SNE, UMAP, PCA) of a layer's activations, written to CSV / Parquet")
    p.add_argument("scenario", help="scenario name, see 'scenarios'")
    p.add_argument("--layer", default=None, metavar="NAME", help="layer to map (default: the last hidden layer)")
    p.add_argument("--method", choices=("tsne", "umap", "pca"), default="tsne", help="projection (default tsne)")
    p.add_argument("--n", type=int, default=None, metavar="N", help="map a random subset of N points (default: all)")
    p.add_argument("--out", required=True, metavar="FILE.csv", help="where to write index, split, position, x, y, "
                   "label, prediction, confidence per point (.csv or .parquet)")
    p.add_argument("--model", default=None, metavar="M", help="model name (default: the scenario's first)")
    p.add_argument("--variant", default=None, help="dataset variant (newsgroups: headers, no-headers)")
    p.add_argument("--split", default="all", choices=("all", "train", "val", "test"), help="points to map (default all)")
    p.add_argument("--perplexity", type=float, default=30.0, help="t-SNE perplexity (default 30)")
    p.add_argument("--neighbors", type=int, default=15, help="UMAP n_neighbors (default 15)")
    p.add_argument("--min-dist", type=float, default=0.1, help="UMAP min_dist (default 0.1)")
    p.add_argument("--standardize", action="store_true", help="scale every unit to unit variance first")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch-size", type=int, default=256, help="samples per forward pass (default 256)")
    p.add_argument("--json", action="store_true", help="print the quality metrics as JSON")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    p.set_defaults(func=cmd_embed)
    p = sub.add_parser("inspect-model", help="detect a model file's format and spec without running it; "
                       "with --data, the upload's whole dry run (class names, accuracy, methods); exit 1 if refused")
    p.add_argument("path", help="model file (.pt/.pth TorchScript, .pt2 torch.export, .onnx, .skops, or a pickle)")
    p.add_argument("--json", action="store_true", help="print format, inferred spec and refusal reason as JSON")
    p.add_argument("--allow-pickle", action="store_true", help="report pickles as loadable (as with TRUSTLENS_ALLOW_PICKLE=1); "
                   "with --data, also load this pickle-based file (you made it)")
    p.add_argument("--trust-types", action="store_true", help="accept the skops types outside skops' trusted set "
                   "(the page's 'I trust these types')")
    p.add_argument("--data", default=None, metavar="PATH", help="also run the upload page's dry run on this data (ZIP of "
                   "class folders, an image, a CSV or Parquet table) and print format, class names, test accuracy and "
                   "the methods offered or refused with their reasons; exit 1 if the upload is refused")
    p.add_argument("--spec", default=None, metavar="FILE", help="with --data: JSON spec, as for 'serve'")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    p.set_defaults(func=cmd_inspect_model)

    p = sub.add_parser("serve", help="start the app with your model and data preloaded as a scenario")
    p.add_argument("--model", required=True, metavar="PATH", help="model file (TorchScript, .pt2, ONNX, skops; pickles allowed here)")
    p.add_argument("--data", required=True, metavar="PATH", help="ZIP of class folders, an image, a CSV or Parquet table")
    p.add_argument("--spec", default=None, metavar="FILE", help="JSON spec: input_kind, channels, height, width, mean, std, "
                   "outputs, class_names (and text_column, label_column, target for the data)")
    p.add_argument("--target", default=None, help="target column of a table (default 'target'; '' for no labels)")
    p.add_argument("--text-column", default=None, help="text column of a CSV of texts (makes the CSV text data)")
    p.add_argument("--label-column", default=None, help="label column of a CSV of texts")
    p.add_argument("--port", type=int, default=8501)
    p.add_argument("--address", default="127.0.0.1")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("uncertainty", help="ensemble / MC dropout uncertainty on the stress sets of an image scenario: "
                                           "accuracy of mean and max ensembling, AUROC of every score")
    p.add_argument("scenario", help="an image scenario (digits, mnist)")
    p.add_argument("--model", default=None, metavar="M", help="model name (default: the scenario's first)")
    p.add_argument("--variant", default=None, help="dataset variant")
    p.add_argument("--members", type=int, default=None, metavar="K", help="ensemble members (default 5)")
    p.add_argument("--mc-samples", type=int, default=None, metavar="T",
                   help="also (or only, without --members) MC dropout with T passes (default 30 when --source mc_dropout)")
    p.add_argument("--source", action="append", choices=("deep", "bootstrap", "mc_dropout", "bayes"),
                   help="uncertainty source (repeatable; default: deep, plus mc_dropout with --mc-samples)")
    p.add_argument("--epsilon", type=float, default=0.1, help="FGSM step per pixel (default 0.1)")
    p.add_argument("--n-ood", type=int, default=1000, metavar="N", help="images per out-of-distribution set (default 1000)")
    p.add_argument("--no-autoencoder", action="store_true", help="skip the autoencoder's reconstruction-error score")
    p.add_argument("--json", action="store_true", help="print per source and stress set: n, accuracy_mean, "
                   "accuracy_max, mean_scores, error_auroc and ood_auroc of every score, as JSON")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    p.set_defaults(func=cmd_uncertainty)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except TrustLensError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR
