"""Checks of whether a model or an explanation can be trusted: ``sanity``, ``calibration``, ``uncertainty``."""

from __future__ import annotations

import argparse
import time
from typing import Any

from core.cli.common import EXIT_OK, Parents, Source, batch_size, check_index, check_out, emit, progress, resolve_source
from core.errors import ParameterError, check_int


# -- sanity -------------------------------------------------------------------------------------------
def cell(value: float | None, spec: str) -> str:
    """``value`` formatted, or "n/a" for None or NaN (an area over blank maps, the Spearman of a constant map;
    --json prints them as null)."""
    return "n/a" if value is None or value != value else format(value, spec)


def cmd_sanity(args: argparse.Namespace) -> int:
    check_out(args)
    source = resolve_source(args)
    source.require(("image", "text"), "Sanity checks need")
    if source.kind == "text":
        return _sanity_text(args, source)
    import numpy as np

    from core.attribution import explain_images, get_method, image_context, resolve_targets
    from core.trust.sanity import faithfulness_curves, randomization_test

    steps = 20 if args.steps is None else args.steps
    method = get_method(args.method)
    model = source.model_name(args.model)
    splits = source.splits()
    test = splits["test"]
    check_index(args.index, len(test), source, "images")
    adapter = source.trained(model, args).adapter
    x = np.asarray(test.x[args.index : args.index + 1], dtype=np.float32)
    size = batch_size(args, 256)
    target = resolve_targets(adapter, x, "predicted")
    context = image_context(splits["train"])
    started = time.perf_counter()
    randomization = randomization_test(
        adapter,
        x,
        target,
        {args.method: None},
        mode=args.mode,
        context=context,
        batch_size=size,
        progress=progress(args),
    )[args.method]
    heat = explain_images(adapter, x, target, args.method, context=context, batch_size=size).heatmap()
    curves = faithfulness_curves(
        adapter, x, target, heat, method=args.method, steps=steps, fill=args.fill, context=context, batch_size=size
    )
    report = {
        "scenario": source.name,
        "model": model,
        "index": args.index,
        "method": args.method,
        "target": int(target[0]),
        "target_name": adapter.class_names[int(target[0])],
        "mode": args.mode,
        "randomization": [
            {"stage": stage, **{k: float(v[s, 0]) for k, v in randomization.similarity.items()}}
            for s, stage in enumerate(randomization.stages)
        ],
        "randomization_verdict": randomization.verdict(),
        "degenerate": bool(curves.degenerate[0]),
        "faithfulness": {"steps": steps, "fill": args.fill, "areas": curves.areas()},
        "faithfulness_verdict": curves.verdict(),
        "seconds": round(time.perf_counter() - started, 3),
    }

    def table() -> None:
        print(f"{source.name}/{model} test image {args.index}: {method.title} toward {report['target_name']}")
        print(f"{args.mode} randomisation: similarity to the original map (Spearman |values|, SSIM, top-10 % overlap)")
        for row in report["randomization"]:
            print(
                f"  {row['stage']:<18} {cell(row['spearman'], '+.3f')}  {cell(row['ssim'], '+.3f')}  "
                f"{cell(row['top_k'], '.2f')}"
            )
        print(f"  -> {report['randomization_verdict']}")
        print(
            f"deletion / insertion ({steps} steps, {args.fill} fill): areas "
            + ", ".join(f"{k} {cell(v, '.3f')}" for k, v in report["faithfulness"]["areas"].items())
        )
        print(f"  -> {report['faithfulness_verdict']}")

    emit(args, report, table)
    return EXIT_OK


def _sanity_text(args: argparse.Namespace, source: Source) -> int:
    """``sanity`` on text: word weights instead of maps (no fill, no SSIM)."""
    from core.text.text_methods import METHOD_TITLES, supported_methods
    from core.trust.sanity_text import (
        predicted_classes,
        text_explanations,
        text_faithfulness_curves,
        text_randomization_test,
    )

    if args.method not in METHOD_TITLES:
        raise ParameterError(
            f"Unknown text method {args.method!r} for {source.label}; choose from {', '.join(METHOD_TITLES)}."
        )
    steps = 10 if args.steps is None else args.steps
    model = source.model_name(args.model)
    test = source.splits()["test"]
    check_index(args.index, len(test), source, "documents")
    loaded = source.trained(model, args)
    adapter = loaded.adapter
    reason = supported_methods(adapter)[args.method]
    if reason:
        raise ParameterError(
            f"{METHOD_TITLES[args.method]} does not support {model!r}: {reason}",
            hint="use lime or occlusion, which work for any text model.",
        )
    text = [str(test.x[args.index])]
    target = predicted_classes(adapter, text)
    started = time.perf_counter()
    report: dict[str, Any] = {
        "scenario": source.name,
        "variant": loaded.variant,
        "model": model,
        "index": args.index,
        "method": args.method,
        "target": int(target[0]),
        "target_name": adapter.class_names[int(target[0])],
        "mode": args.mode,
    }
    if adapter.torch_module() is None:
        report["randomization"] = None
        report["randomization_verdict"] = (
            f"not run: the randomisation test re-initialises weights, which needs a "
            f"torch model; {model!r} is {adapter.info.framework}"
            + (" (try --model bag)" if source.upload is None else "")
        )
    else:
        result = text_randomization_test(adapter, text, [args.method], mode=args.mode, progress=progress(args))[
            args.method
        ]
        report["randomization"] = [
            {"stage": stage, **{k: float(v[s, 0]) for k, v in result.similarity.items()}}
            for s, stage in enumerate(result.stages)
        ]
        report["randomization_verdict"] = result.verdict()
    weights = text_explanations(adapter, text, [args.method], target)[args.method][0].weights
    curves = text_faithfulness_curves(
        adapter, text, target, [weights], method=args.method, steps=steps, batch_size=batch_size(args, 8192)
    )
    report["degenerate"] = bool(curves.degenerate[0])
    report["faithfulness"] = {"steps": steps, "areas": curves.areas()}
    report["faithfulness_verdict"] = curves.verdict()
    report["seconds"] = round(time.perf_counter() - started, 3)

    def table() -> None:
        print(
            f"{source.name}/{model} test document {args.index}: {METHOD_TITLES[args.method]} toward "
            f"{report['target_name']}"
        )
        if report["randomization"] is not None:
            print(
                f"{args.mode} randomisation: similarity to the original word weights (Spearman |weights|, top-10 words)"
            )
            for row in report["randomization"]:
                print(f"  {row['stage']:<22} {cell(row['spearman'], '+.3f')}  {cell(row['top_k'], '.2f')}")
        print(f"  -> {report['randomization_verdict']}")
        print(
            f"deletion / insertion ({steps} steps): areas "
            + ", ".join(f"{k} {cell(v, '.3f')}" for k, v in curves.areas().items())
        )
        print(f"  -> {report['faithfulness_verdict']}")

    emit(args, report, table)
    return EXIT_OK


# -- calibration --------------------------------------------------------------------------------------
def cmd_calibration(args: argparse.Namespace) -> int:
    from core import calibration
    from core.inference import predict_proba_cached

    check_int("n_bins", args.bins, "calibration")  # fail before loading or training anything
    check_out(args)
    source = resolve_source(args)
    if not source.labelled:
        raise ParameterError(
            "Calibration compares the model's confidence with the true labels; your data has none.",
            hint="upload labelled data (class folders, a label column or a 'target' column).",
        )
    size = batch_size(args, 256)
    rows = []
    for name in source.model_names(args.model):
        loaded = source.trained(name, args)
        splits = source.splits()
        val, test = splits["val"], splits["test"]
        report = calibration.calibration_report(
            name,
            predict_proba_cached(loaded.adapter, val, size),
            val.y,
            predict_proba_cached(loaded.adapter, test, size),
            test.y,
            n_bins=args.bins,
            methods=("temperature",),
        )
        s = report.summary()
        rows.append(
            {
                "scenario": source.name,
                "variant": loaded.variant,
                "model": name,
                "n": s["n"],
                "n_bins": args.bins,
                "accuracy": s["accuracy"],
                "ece": s["ece"],
                "ece_low": s["ece_low"],
                "ece_high": s["ece_high"],
                "ace": s["ace"],
                "mce": s["mce"],
                "brier": s["brier"],
                "nll": s["nll"],
                "temperature": s["temperature"],
                "ece_after_temperature": s["temperature_ece"],
                "nll_after_temperature": s["temperature_nll"],
            }
        )

    def table() -> None:
        print(
            f"{'model':<10} {'acc':>7} {'ECE':>7} {'MCE':>7} {'Brier':>7} {'NLL':>7} {'T':>6} {'ECE(T)':>7} {'NLL(T)':>7}"
        )
        for r in rows:
            print(
                f"{r['model']:<10} {r['accuracy']:7.4f} {r['ece']:7.4f} {r['mce']:7.4f} {r['brier']:7.4f} "
                f"{r['nll']:7.4f} {r['temperature']:6.3f} {r['ece_after_temperature']:7.4f} "
                f"{r['nll_after_temperature']:7.4f}"
            )

    emit(args, rows, table)
    return EXIT_OK


# -- uncertainty --------------------------------------------------------------------------------------
BUILT_IN_SOURCES = ("deep", "bootstrap", "mc_dropout", "bayes")
UPLOAD_SOURCES = ("single", "mc_dropout")


def cmd_uncertainty(args: argparse.Namespace) -> int:
    from core.uncertainty.report import SCORE_TITLES

    members = check_int("members", 5 if args.members is None else args.members, "uncertainty")
    samples = check_int("mc_samples", 30 if args.mc_samples is None else args.mc_samples, "uncertainty")
    check_out(args)
    source = resolve_source(args)
    allowed = UPLOAD_SOURCES if source.upload is not None else BUILT_IN_SOURCES
    bad = [s for s in args.source or () if s not in allowed]
    if bad:
        raise ParameterError(
            f"--source {bad[0]} is not a source of {'an uploaded' if source.upload else 'a built-in'} model.",
            hint=f"use {', '.join(allowed)}"
            + (" (the others retrain members from a recipe an upload lacks)." if source.upload else "."),
        )
    if source.upload is None:
        source.require("image", "The uncertainty stress sets need")
    only_mc = args.mc_samples is not None and args.members is None
    default = "single" if source.upload is not None else "deep"
    kinds = list(dict.fromkeys(args.source or ([] if only_mc else [default])))
    if args.mc_samples is not None and "mc_dropout" not in kinds:
        kinds.append("mc_dropout")
    model = source.model_name(args.model)
    reports = []
    started = time.perf_counter()
    for kind in kinds:
        n = members if kind in ("deep", "bootstrap") else samples
        reports.append(
            _upload_uncertainty(args, source, kind, n)
            if source.upload is not None
            else _built_in_uncertainty(args, source, model, kind, n)
        )
    out = {
        "scenario": source.name,
        "model": model,
        "variant": source.variant,
        "epsilon": args.epsilon,
        "n_ood": args.n_ood,
        "reports": reports,
        "seconds": round(time.perf_counter() - started, 2),
    }

    def col(value: Any) -> str:
        return "   -  " if value is None or value != value else f"{value:6.3f}"

    def table() -> None:
        for rep in reports:
            count = (
                ""
                if rep["source"] == "single"
                else (f", {rep['n_members']} {'members' if rep['source'] in ('deep', 'bootstrap') else 'samples'}")
            )
            print(f"{source.name}/{model}: {rep['title']}{count}; FGSM epsilon {args.epsilon:g}")
            names = list(rep["sets"][0]["error_auroc"])
            print(f"  {'set':<20} {'n':>6} {'acc mean':>8} {'acc max':>8}   AUROC for errors / for OOD vs clean")
            for row in rep["sets"]:
                print(
                    f"  {row['title']:<20} {row['n']:>6} {col(row['accuracy_mean']):>8} {col(row['accuracy_max']):>8}"
                )
                for name in names:
                    print(
                        f"      {SCORE_TITLES[name]:<46} {col(row['error_auroc'][name])}  {col(row['ood_auroc'][name])}"
                    )

    emit(args, out, table)
    return EXIT_OK


def _built_in_uncertainty(args: argparse.Namespace, source: Source, model: str, kind: str, n: int) -> dict[str, Any]:
    from core.uncertainty.report import uncertainty_report
    from core.uncertainty.sources import SOURCES, load_source

    unc = load_source(source.name, model, source.variant, kind, n, progress=progress(args))
    report = uncertainty_report(
        unc,
        epsilon=args.epsilon,
        n_ood=args.n_ood,
        autoencoder=not args.no_autoencoder,
        batch_size=batch_size(args, 128),
        progress=progress(args),
    )
    return {
        "source": kind,
        "title": SOURCES[kind],
        "n_members": n,
        "member_accuracy": [round(a, 4) for a in unc.member_accuracy],
        "train_seconds": round(unc.train_seconds, 2),
        "sets": report.rows(),
    }


def _upload_uncertainty(args: argparse.Namespace, source: Source, kind: str, n: int) -> dict[str, Any]:
    """The uncertainty page's sources for an upload: its own probabilities, or MC dropout when its file allows."""
    from core.uncertainty.upload import UPLOAD_SOURCES as TITLES
    from core.uncertainty.upload import upload_report, upload_support

    reason = upload_support(source.upload).get(kind)
    if reason:
        raise ParameterError(f"{TITLES[kind]} is not available for your model: {reason}", hint="use --source single.")
    report = upload_report(
        source.upload, kind, n, epsilon=args.epsilon, batch_size=batch_size(args, 128), progress=progress(args)
    )
    return {
        "source": kind,
        "title": TITLES[kind],
        "n_members": 1 if kind == "single" else n,
        "member_accuracy": [],
        "train_seconds": 0.0,
        "sets": report.rows(),
    }


# -- parsers --------------------------------------------------------------------------------------------
def add_parsers(sub: Any, parents: Parents) -> None:
    shared = parents.scenario_verb

    p = sub.add_parser(
        "sanity",
        parents=shared,
        help="randomisation test and deletion / insertion curves of one "
        "test image's map or one test document's word weights",
    )
    p.add_argument("--index", type=int, required=True, metavar="I", help="image or document of the test split")
    p.add_argument(
        "--method",
        required=True,
        metavar="M",
        help="an image attribution method (see 'explain') or, for text, lime, occlusion, "
        "gradient_x_embedding or shap_partition",
    )
    p.add_argument(
        "--mode",
        choices=("cascading", "independent"),
        default="cascading",
        help="randomise layers from the output down, cumulatively (default), or one at a time",
    )
    p.add_argument(
        "--steps",
        type=int,
        default=None,
        help="points of the deletion / insertion curves (default 20 for images, 10 for text)",
    )
    p.add_argument(
        "--fill",
        choices=("zero", "mean", "blur"),
        default="zero",
        help="what a deleted pixel becomes (images only; a deleted word is removed)",
    )
    p.set_defaults(func=cmd_sanity, parser=p)

    p = sub.add_parser(
        "calibration",
        parents=shared,
        help="calibration metrics on the test split, before and after temperature scaling",
    )
    p.add_argument("--bins", type=int, default=15, help="equal-width bins for ECE / MCE (default 15)")
    p.set_defaults(func=cmd_calibration, parser=p)

    p = sub.add_parser(
        "uncertainty",
        parents=shared,
        help="ensemble / MC dropout uncertainty on stress sets: accuracy of mean and max ensembling, "
        "AUROC of every score (an upload: its own probabilities or MC dropout)",
    )
    p.add_argument("--members", type=int, default=None, metavar="K", help="ensemble members (default 5)")
    p.add_argument(
        "--mc-samples",
        type=int,
        default=None,
        metavar="T",
        help="also (or only, without --members) MC dropout with T passes (default 30 when --source mc_dropout)",
    )
    p.add_argument(
        "--source",
        action="append",
        choices=BUILT_IN_SOURCES + ("single",),
        help="uncertainty source (repeatable; default: deep, plus mc_dropout with --mc-samples); an upload "
        "has single (its own probabilities, the default) and mc_dropout",
    )
    p.add_argument("--epsilon", type=float, default=0.1, help="FGSM step per pixel (default 0.1)")
    p.add_argument(
        "--n-ood", type=int, default=1000, metavar="N", help="images per FGSM and out-of-distribution set (default 1000)"
    )
    p.add_argument("--no-autoencoder", action="store_true", help="skip the autoencoder's reconstruction-error score")
    p.set_defaults(func=cmd_uncertainty, parser=p)
