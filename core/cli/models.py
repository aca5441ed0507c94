"""Models and data: ``scenarios``, ``warm``, ``inspect-model`` (a user's file, with ``--data`` the
upload page's dry run) and ``serve`` (the app with a user's model preloaded)."""

from __future__ import annotations

import argparse
from typing import Any

from core.cli.common import (
    EXIT_BELOW_TARGET,
    EXIT_ERROR,
    EXIT_OK,
    Parents,
    Source,
    check_out,
    data_options,
    emit,
    inspect_file,
    open_upload,
    progress,
    resolve_source,
    upload_refusal,
)
from core.errors import TrustLensError


def cmd_scenarios(args: argparse.Namespace) -> int:
    from core import scenarios

    check_out(args)
    rows = [scenarios.summary(name) for name in scenarios.SCENARIOS]

    def table() -> None:
        for row in rows:
            data = "available" if row["data_available"] else "download needed"
            variants = f"  variants: {', '.join(row['variants'])}" if row["variants"] else ""
            print(f"{row['name']:<14} {row['kind']:<8} models: {', '.join(row['models']):<22} data: {data}{variants}")

    emit(args, rows, table)
    return EXIT_OK


# -- warm -----------------------------------------------------------------------------------------------
def _warm_everything(args: argparse.Namespace) -> int:
    """``warm --all``: every built-in scenario's default views (core/lecture/warmup.py), one line per step."""
    from core.lecture.warmup import warm_all

    def line(item: Any) -> None:
        if not args.json:
            print(
                f"{item.scenario:<14} {item.item:<18} {item.status:<9} {item.seconds:8.1f} s  {item.detail}", flush=True
            )

    result = warm_all(
        names=[args.scenario] if args.scenario else None, progress=progress(args), umap=not args.no_umap, on_item=line
    )

    def table() -> None:
        for skipped in result["skipped"]:
            print(f"{skipped['scenario']:<14} skipped: {skipped['reason']}")
        per_scenario: dict[str, float] = {}
        for item in result["items"]:
            per_scenario[item["scenario"]] = per_scenario.get(item["scenario"], 0.0) + item["seconds"]
        print(
            "total: "
            + ", ".join(f"{name} {s:.1f} s" for name, s in per_scenario.items())
            + f"; {result['seconds']:.1f} s"
        )

    emit(args, result, table)
    if args.json:
        return EXIT_OK
    return EXIT_ERROR if any(i["status"] == "failed" for i in result["items"]) else EXIT_OK


def _warm_upload(source: Source) -> list[dict[str, Any]]:
    """An upload is never trained: its dry run (done when it opened) and accuracies, in warm's report shape."""
    trained = source.upload.trained
    metrics = trained.metrics
    return [
        {
            "scenario": source.name,
            "variant": None,
            "model": trained.spec.name,
            "framework": trained.spec.framework,
            "test_accuracy": round(metrics["test_accuracy"], 4),
            "val_accuracy": round(metrics["val_accuracy"], 4),
            "accuracy_target": None,
            "meets_target": None,
            "train_seconds": 0.0,
            "trained_now": False,
            "seconds": 0.0,
            "device": trained.adapter.info.device,
            "fingerprint": trained.adapter.fingerprint[:16],
        }
    ]


def cmd_warm(args: argparse.Namespace) -> int:
    from core import scenarios

    check_out(args)
    if args.all:
        return _warm_everything(args)
    source = resolve_source(args)
    if source.upload is not None:
        reports = _warm_upload(source)
    else:
        variants = list(source.spec.variants) if args.all_variants and source.spec.variants else [args.variant]
        models = source.model_names(args.model) if args.model else None
        reports = []
        for variant in variants:
            reports += scenarios.warm(source.name, variant, models, progress=progress(args))

    def table() -> None:
        for r in reports:
            target = "" if r["accuracy_target"] is None else f" (target {r['accuracy_target']:.2f})"
            how = (
                f"trained in {r['train_seconds']:.1f} s"
                if r["trained_now"]
                else ("uploaded (never trained here)" if source.upload is not None else "loaded from cache")
            )
            variant = f"[{r['variant']}]" if r["variant"] else ""
            accuracy = "n/a (no labels)" if r["test_accuracy"] != r["test_accuracy"] else f"{r['test_accuracy']:.4f}"
            print(
                f"{r['scenario']}{variant}/{r['model']}: test accuracy {accuracy}{target}, {how}, device {r['device']}"
            )

    emit(args, reports, table)
    if args.check and any(r["meets_target"] is False for r in reports):
        return EXIT_BELOW_TARGET
    return EXIT_OK


# -- inspect-model ----------------------------------------------------------------------------------------
def cmd_inspect_model(args: argparse.Namespace) -> int:
    """Detected format, inferred spec and refusal reason of a model file (exit 1 when refused); runs nothing in it.

    With ``--data``: the upload page's whole dry run on that data (see :func:`_inspect_upload`)."""
    check_out(args)
    path, inspection = inspect_file(args.path, args)
    if args.data is not None:
        return _inspect_upload(args, path, inspection)
    if args.spec is not None:
        raise TrustLensError("--spec applies to the dry run on data.", hint="add --data PATH, or drop --spec.")

    def table() -> None:
        print(f"{path.name}: {inspection.format_title} ({inspection.size} bytes, sha256 {inspection.sha256[:16]})")
        for key, value in inspection.inferred.items():
            print(f"  {key}: {value}")
        for name in inspection.untrusted_types:
            print(f"  untrusted type (must be accepted): {name}")
        if inspection.refused:
            print(f"refused: {inspection.refused}")

    emit(args, inspection.to_json(), table)
    return EXIT_ERROR if inspection.refused else EXIT_OK


def _inspect_upload(args: argparse.Namespace, path: Any, inspection: Any) -> int:
    """``inspect-model MODEL --data DATA``: the upload page's dry run (the same as every verb's --upload)."""
    refused = upload_refusal(path, inspection, args)
    report: dict[str, Any] = {
        "model": path.name,
        "data": args.data,
        "format": inspection.format,
        "format_title": inspection.format_title,
        "refused": refused,
    }
    if not refused:
        try:
            uploaded = open_upload(str(path), args, (path, inspection))
            report = {"model": path.name, "data": args.data, **uploaded.report()}
        except TrustLensError as exc:
            report["refused"] = str(exc)

    def table() -> None:
        if report["refused"]:
            print(f"{path.name} + {args.data}: {report['format_title']}")
            print(f"refused: {report['refused']}")
            return
        accuracy = report["accuracy"]
        print(
            f"{path.name} + {args.data}: {report['format_title']}, {report['n_samples']} samples "
            + (f"(accuracy {accuracy:.1%} on the test split)" if report["labelled"] else "(no labels)")
        )
        spec = report["spec"]
        shape = f" {spec['channels']}x{spec['height']}x{spec['width']}" if spec["input_kind"] == "image" else ""
        print(f"  input: {spec['input_kind']}{shape}, outputs: {spec['outputs']}")
        print(f"  classes ({len(report['class_names'])}): {', '.join(report['class_names'])}")
        print(f"  methods offered: {', '.join(report['methods_offered']) or 'none'}")
        for name, reason in report["methods_refused"].items():
            print(f"  not offered: {name}: {reason}")
        for note in report["notes"]:
            print(f"  note: {note}")

    emit(args, report, table)
    return EXIT_ERROR if report["refused"] else EXIT_OK


# -- serve ------------------------------------------------------------------------------------------------
def cmd_serve(args: argparse.Namespace) -> int:
    """Start the app with the model and data preloaded (pickle-based files allowed: the launcher chose them)."""
    from core.upload.byom import launch

    if args.data is None:
        args.parser.error("serve needs --data DATA (the samples the pages show)")
    launch(args.model, args.data, args.spec, port=args.port, address=args.address, block=True, **data_options(args))
    return EXIT_OK


# -- parsers --------------------------------------------------------------------------------------------
def add_parsers(sub: Any, parents: Parents) -> None:
    p = sub.add_parser(
        "scenarios", parents=[parents.output], help="list the built-in scenarios and whether their data is available"
    )
    p.set_defaults(func=cmd_scenarios, parser=p)

    p = sub.add_parser(
        "warm",
        parents=parents.scenario_verb,
        help="train (or load from cache) every model of a scenario and report accuracies (an upload: "
        "its dry run); --all: precompute every built-in scenario's default views before a lecture",
    )
    p.add_argument(
        "--all",
        action="store_true",
        help="precompute what every page's default view and curated "
        "examples need (models, predictions, explanations, maps, uncertainty) for every built-in scenario "
        "whose data is available (with SCENARIO: only this one)",
    )
    p.add_argument("--no-umap", action="store_true", help="with --all: skip compiling UMAP's numba code")
    p.add_argument("--all-variants", action="store_true", help="warm every variant of the scenario")
    p.add_argument("--check", action="store_true", help="exit with status 3 if a model misses its accuracy target")
    p.set_defaults(func=cmd_warm, parser=p)

    p = sub.add_parser(
        "inspect-model",
        parents=[parents.upload, parents.trust, parents.output],
        help="detect a model file's format and spec without running it; with --data, the upload's "
        "whole dry run (class names, accuracy, methods); exit 1 if refused",
    )
    p.add_argument(
        "path",
        help="model file (.pt/.pth TorchScript, .pt2 torch.export, .onnx, .skops, a booster, a .zip of a Hugging "
        "Face classifier's save_pretrained folder or the folder itself, or a pickle)",
    )
    p.set_defaults(func=cmd_inspect_model, parser=p)

    p = sub.add_parser(
        "serve", parents=[parents.upload], help="start the app with your model and data preloaded as a scenario"
    )
    p.add_argument(
        "--model",
        required=True,
        metavar="PATH",
        help="model file (TorchScript, .pt2, ONNX, skops, XGBoost .json / .ubj, LightGBM .txt, CatBoost .cbm, a "
        ".zip of a Hugging Face classifier's save_pretrained folder or the folder itself; pickles allowed here)",
    )
    p.add_argument("--target", default=None, dest="target_column", help="= --target-column")
    p.add_argument("--port", type=int, default=8501)
    p.add_argument("--address", default="127.0.0.1")
    p.set_defaults(func=cmd_serve, parser=p)
