"""``explain`` (every modality), its aliases ``lime`` and ``shap``, and ``shapley-game``.

``explain SCENARIO --method M --index I`` explains test samples of any scenario (or of
``--upload MODEL --data DATA``) with any registered method (:mod:`core.explanation`):

- images: attribution maps, written to ``--out FILE.npz``; ``--json`` prints the report with one
  entry per index (unchanged from before the verbs were merged);
- text (lime, occlusion, gradient_x_embedding, shap_partition) and tables (shap): one record per
  index, ``{"scenario", "model", "method", "index", "target", "predicted", "attributions":
  [{"feature", "value"}, ...], "details"}`` with the attributions sorted by |value| (largest
  first, :meth:`core.explanation.Attribution.records`), ``target`` and ``predicted`` as class
  names, ``feature`` the word or the column name; ``details`` holds what only that method has
  (LIME's surrogate, SHAP's base value...). ``--json`` prints JSON Lines: one record per line, so
  one index prints one JSON object.

Each method's parameters are flags made from its params dataclass (:mod:`core.params`:
``--ig-steps``, ``--lime-samples``, ``--shap-algorithm``...), so a new method's flags appear
without touching this file. ``lime`` is ``explain --method lime`` on text scenarios and ``shap`` is
``explain --method shap`` on tables, with the flags they always had (``--num-samples``,
``--algorithm``...: the same fields under their old names; ``lime --label K`` is ``--target K``).

The engine is reached in one place (the functions under "engine calls" below).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from typing import Any

from core.cli.common import (
    EXIT_OK,
    Parents,
    Source,
    batch_size,
    check_out,
    emit,
    parse_indices,
    progress,
    resolve_source,
)
from core.errors import InputShapeError, ParameterError

MODALITY = {"image": "image", "text": "text", "tabular": "table"}  # scenario kind -> registry modality


# -- engine calls: the only places this verb reaches into the explainers ---------------------------------
def methods_of(kind: str) -> list[str]:
    """Registered method names for a scenario of this kind."""
    from core.explanation import method_names

    return method_names(MODALITY[kind])


def get_method(kind: str, name: str) -> Any:
    from core.explanation import get_method as registered

    return registered(name, MODALITY[kind])


def all_methods() -> list[Any]:
    """Every registered method of every modality."""
    from core.explanation import MODALITIES, get_method as registered, method_names

    return [registered(name, modality) for modality in MODALITIES for name in method_names(modality)]


def method_params(method: Any, args: argparse.Namespace) -> Any:
    """The params the flags ask for (the method's defaults for flags not given); ``--batch-size`` too."""
    from core.params import from_flags

    params = from_flags(method.params_type, method.prefix, args)
    if getattr(args, "batch_size", None) is not None and "batch_size" in {f.name for f in dataclasses.fields(params)}:
        params = dataclasses.replace(params, batch_size=batch_size(args, 1))
    return params


def resolve_targets(target: str, class_names: tuple[str, ...], n: int, *, predicted: Any = None, y: Any = None) -> Any:
    """``--target`` (predicted, true, a class index or name) as a class index per sample."""
    from core.explanation import resolve_targets as resolve

    value: Any = int(target) if target.lstrip("-").isdigit() else target
    return resolve(value, class_names, n, predicted=predicted, y=y)


def run_images(
    adapter: Any, x: Any, target: Any, method: str, params: Any, size: int, train: Any, args: argparse.Namespace
) -> Any:
    from core.attribution import explain_images, image_context

    return explain_images(
        adapter, x, target, method, params, batch_size=size, context=image_context(train), progress=progress(args)
    )


def run_text(adapter: Any, text: str, method: str, params: Any, target: str | int, args: argparse.Namespace) -> Any:
    from core.text.text_methods import explain_text

    return explain_text(adapter, text, method, params, target, progress=progress(args))


def run_table(
    method: Any, adapter: Any, rows: Any, train: Any, params: Any, target: str | int, args: argparse.Namespace
) -> Any:
    return method.run(adapter, rows, target, params, progress(args), train=train)


# -- explain ------------------------------------------------------------------------------------------
def check_method(source: Source, method: str) -> None:
    """Refuse a method of another modality (naming the scenarios it explains) or an unknown one."""
    from core import scenarios

    own = methods_of(source.kind)
    if method in own:
        return
    for other in ("image", "text", "tabular"):
        if other != source.kind and method in methods_of(other):
            fitting = [n for n, s in scenarios.SCENARIOS.items() if s.kind == other]
            raise InputShapeError(
                f"The {other} method {method!r} needs a{'n' if other == 'image' else ''} {other} "
                f"scenario; {source.label} is {source.kind}.",
                hint=f"use one of: {', '.join(fitting)}; or a {source.kind} method: {', '.join(own)}.",
            )
    get_method(source.kind, method)  # raises the registry's "Unknown ... method ..., use one of: ..."


def cmd_explain(args: argparse.Namespace) -> int:
    return explain(args, resolve_source(args))


def explain(args: argparse.Namespace, source: Source) -> int:
    check_method(source, args.method)
    method = get_method(source.kind, args.method)
    params = method_params(method, args)  # invalid values fail before anything loads
    if source.kind == "image":
        return explain_images_verb(args, source, method, params)
    if check_out(args) is not None and args.out.lower().endswith(".npz"):
        raise ParameterError(
            f"--out {args.out!r}: .npz files hold image maps; {source.kind} explanations are written as JSON Lines.",
            hint="e.g. --out explanations.jsonl",
        )
    if source.kind == "text":
        records = explain_text_verb(args, source, method, params)
    else:
        records = explain_table_verb(args, source, method, params)

    def table() -> None:
        for record in records:
            print_record(record, source.kind)

    emit(args, records, table, lines=True)
    return EXIT_OK


def _loaded(args: argparse.Namespace, source: Source) -> tuple[str, Any, Any, list[int]]:
    """(model name, test split, TrainedModel, indices), the indices checked before the model loads."""
    model = source.model_name(args.model)
    test = source.splits()["test"]
    indices = parse_indices(args.index, len(test))
    return model, test, source.trained(model, args), indices


def _targets(args: argparse.Namespace, source: Source, test: Any, indices: list[int], names: tuple[str, ...]) -> list:
    """Per index: "predicted" (kept as such: the pages' cache keys say it so) or a class index."""
    if args.target == "predicted":
        return ["predicted"] * len(indices)
    y = test.y[indices] if source.labelled else None
    return [int(t) for t in resolve_targets(args.target, names, len(indices), y=y)]


def _true_name(source: Source, test: Any, i: int, names: tuple[str, ...]) -> str | None:
    return names[int(test.y[i])] if source.labelled else None


def explain_text_verb(args: argparse.Namespace, source: Source, method: Any, params: Any) -> list[dict[str, Any]]:
    model, test, loaded, indices = _loaded(args, source)
    adapter = loaded.adapter
    names = tuple(adapter.class_names)
    records = []
    for i, target in zip(indices, _targets(args, source, test, indices, names)):
        e = run_text(adapter, str(test.x[i]), method.name, params, target, args)
        details: dict[str, Any] = {
            "title": method.title,
            "variant": loaded.variant,
            "true": _true_name(source, test, i, names),
            "probabilities": {c: float(p) for c, p in zip(names, e.proba)},
            "path": e.path,
            "params": e.params,
        }
        if e.intercept is not None:
            details.update(intercept=e.intercept, local_r2=e.score, local_prediction=e.local_pred)
        records.append(
            {
                "scenario": source.name,
                "model": model,
                "method": method.name,
                "index": i,
                "target": names[int(e.target)],
                "predicted": names[e.predicted],
                "attributions": e.records(0, len(e.selected)),
                "details": details,
            }
        )
    return records


def explain_table_verb(args: argparse.Namespace, source: Source, method: Any, params: Any) -> list[dict[str, Any]]:
    import numpy as np

    model, test, loaded, indices = _loaded(args, source)
    adapter = loaded.adapter
    names = tuple(adapter.class_names)
    train = source.splits()["train"]
    targets = _targets(args, source, test, indices, names)
    # One call for the rows that share a target (the page explains its rows so); per class otherwise.
    explained: dict[int, tuple[Any, int]] = {}
    for target in dict.fromkeys(targets):
        rows = [i for i, t in zip(indices, targets) if t == target]
        result = run_table(method, adapter, test[np.asarray(rows)], train, params, target, args)
        explained.update({i: (result, k) for k, i in enumerate(rows)})
    proba = adapter.predict_proba(np.asarray(test.x[np.asarray(indices)], dtype=np.float32))
    records = []
    for n, i in enumerate(indices):
        e, k = explained[i]
        details = {
            "title": method.title,
            "variant": loaded.variant,
            "algorithm": e.method.split("/")[-1],
            "true": _true_name(source, test, i, names),
            "probabilities": {c: float(p) for c, p in zip(names, proba[n])},
            "base_value": float(e.base_values[k]),
            "output": float(e.output[k]),
            "additivity_error": float(e.additivity_error[k]),
            "feature_values": {f: _number(v) for f, v in zip(e.feature_names, e.data[k])},
        }
        records.append(
            {
                "scenario": source.name,
                "model": model,
                "method": method.name,
                "index": i,
                "target": names[int(e.target[k])],
                "predicted": names[int(proba[n].argmax())],
                "attributions": e.records(k),
                "details": details,
            }
        )
    return records


def _number(value: Any) -> float:
    """A feature value as the shortest float that reads back the same (float32 12.46, not 12.460000038146973)."""
    return float(str(value)) if hasattr(value, "dtype") else float(value)


def print_record(record: dict[str, Any], kind: str) -> None:
    d = record["details"]
    where = f"{record['scenario']}" + (f"[{d['variant']}]" if d.get("variant") else "") + f"/{record['model']}"
    noun = "document" if kind == "text" else "row"
    true = f" (true: {d['true']})" if d.get("true") is not None else ""
    p = d["probabilities"][record["predicted"]]
    if kind == "text":
        print(
            f"{where} test {noun} {record['index']}{true}: predicted {record['predicted']} (P = {p:.3f}); "
            f"{d['title']} toward {record['target']}"
        )
        for a in record["attributions"]:
            print(f"  {a['feature']:<24} {a['value']:+.4f}")
        if "intercept" in d:
            print(
                f"  intercept {d['intercept']:.4f}, local R^2 {d['local_r2']:.3f}, "
                f"{d['params'].get('num_samples')} samples, seed {d['params'].get('seed')}"
            )
        return
    print(
        f"{where} test {noun} {record['index']}{true}: predicted {record['predicted']} (P = {p:.3f}); "
        f"SHAP ({d['algorithm']}) of P({record['target']}) = {d['output']:.4f} (base {d['base_value']:.4f})"
    )
    for a in record["attributions"]:
        print(f"  {a['feature']:<28} {d['feature_values'][a['feature']]:>12.4g} {a['value']:>+10.4f}")


def explain_images_verb(args: argparse.Namespace, source: Source, method: Any, params: Any) -> int:
    import numpy as np

    out = check_out(args, (".npz",), " for image maps")
    model, test, loaded, indices = _loaded(args, source)
    adapter = loaded.adapter
    rows = np.asarray(indices, dtype=np.int64)
    x, y = np.asarray(test.x[rows], dtype=np.float32), np.asarray(test.y[rows])
    size = batch_size(args, 256)
    proba = adapter.predict_proba(x, size)
    target = resolve_targets(
        args.target,
        tuple(adapter.class_names),
        len(x),
        predicted=proba.argmax(axis=1),
        y=y if source.labelled else None,
    )
    started = time.perf_counter()
    result = run_images(adapter, x, target, method.name, params, size, source.splits()["train"], args)
    seconds = time.perf_counter() - started
    predicted = proba.argmax(axis=1)
    names = adapter.class_names
    degenerate = result.degenerate
    if out is not None:
        np.savez_compressed(
            out,
            **result.to_arrays(),
            image=x,
            probabilities=proba,
            predicted=predicted.astype(np.int64),
            true=np.asarray(y, dtype=np.int64),
            method=np.array(args.method),
            params=np.array(json.dumps(result.params)),
            scenario=np.array(source.name),
            model=np.array(model),
            index=np.asarray(indices, dtype=np.int64),
            output=np.array(result.output),
            signed=np.array(result.signed),
        )
    entries = []
    for k, index in enumerate(indices):
        p, t, true = int(predicted[k]), int(target[k]), int(y[k])
        entries.append(
            {
                "index": index,
                "predicted": p,
                "predicted_name": names[p],
                "target": t,
                "target_name": names[t],
                "true": true,
                "true_name": names[true],
                "probabilities": {c: float(v) for c, v in zip(names, proba[k])},
                "degenerate": bool(degenerate[k]),
                "degenerate_reason": result.degenerate_reason(k, method.title),
                "extras": {key: float(a[k]) for key, a in result.extras.items() if np.ndim(a) == 1},
            }
        )
    report = {
        "scenario": source.name,
        "model": model,
        "method": args.method,
        "title": method.title,
        "indices": indices,
        "output": result.output,
        "signed": result.signed,
        "params": result.params,
        "shape": list(result.maps.shape[1:]),
        "degenerate_count": int(degenerate.sum()),
        "out": None if out is None else str(out),
        "seconds": round(seconds, 3),
        "entries": entries,
    }

    def table() -> None:
        heats = result.heatmap()
        for k, entry in enumerate(entries):
            print(
                f"{source.name}/{model} test image {entry['index']} (true {entry['true_name']}): predicted "
                f"{entry['predicted_name']} (P = {proba[k, entry['predicted']]:.3f}); {method.title} toward "
                f"{entry['target_name']} ({result.output})"
            )
            print(
                f"  map {result.maps.shape[1:]}, min {heats[k].min():+.4g}, max {heats[k].max():+.4g}"
                + (f"; BLANK: {entry['degenerate_reason']}" if entry["degenerate"] else "")
            )
            if "completeness_gap" in result.extras:
                e = result.extras
                print(
                    f"  completeness: sum of attributions {e['attribution_sum'][k]:+.4f} vs f(x) - f(baseline) "
                    f"{e['output_delta'][k]:+.4f} (gap {e['completeness_gap'][k]:+.2e})"
                )
        print(f"params {result.params}")
        print(f"{int(degenerate.sum())} of {len(indices)} maps are degenerate (blank, constant or non-finite)")
        print(
            f"wrote {out} in {seconds:.2f} s"
            if out is not None
            else f"computed in {seconds:.2f} s; maps not written (give --out FILE.npz to keep them)"
        )

    emit(args, report, table, out_written=True)
    return EXIT_OK


# -- aliases --------------------------------------------------------------------------------------------
def cmd_lime(args: argparse.Namespace) -> int:
    """``explain --method lime`` on a text scenario (images have their own LIME: ``explain --method lime``)."""
    source = resolve_source(args)
    source.require("text", "LIME text explanations need")
    args.method = "lime"
    if args.label is not None:
        args.target = str(args.label)
    return explain(args, source)


def cmd_shap(args: argparse.Namespace) -> int:
    """``explain --method shap`` (tables)."""
    source = resolve_source(args)
    source.require("tabular", "SHAP tabular explanations need")
    args.method = "shap"
    return explain(args, source)


# -- shapley-game ---------------------------------------------------------------------------------------
def cmd_shapley_game(args: argparse.Namespace) -> int:
    from pathlib import Path

    from core.tabular import shapley

    if args.values is None:
        mapping = shapley.RESTAURANT_BILL
    else:
        text = Path(args.values).read_text() if Path(args.values).is_file() else args.values
        try:
            mapping = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InputShapeError(
                f"--values is not valid JSON ({exc.msg} at character {exc.pos}).",
                hint='give an object like \'{"A": 400, "B": 560, "A,B": 740}\' or a path to one.',
            ) from None
        if not isinstance(mapping, dict):
            raise InputShapeError(
                f"--values must be a JSON object of coalition -> value; got a {type(mapping).__name__}."
            )
    check_out(args)
    game = shapley.Game.from_mapping(mapping)
    phi = shapley.shapley_values(game)
    result = {
        "players": list(game.players),
        "shapley_values": {p: float(v) for p, v in zip(game.players, phi)},
        "grand_coalition_value": float(game.values[-1]),
        "empty_coalition_value": float(game.values[0]),
        "efficiency_gap": shapley.efficiency_gap(game, phi),
    }

    def table() -> None:
        for player, value in result["shapley_values"].items():
            print(f"{player:<16} {value:12.4f}")
        print(
            f"{'sum':<16} {sum(result['shapley_values'].values()):12.4f}  "
            f"(grand coalition {result['grand_coalition_value']:.4f}, gap {result['efficiency_gap']:.2e})"
        )

    emit(args, result, table)
    return EXIT_OK


# -- parsers --------------------------------------------------------------------------------------------
INDEX_HELP = (
    "sample(s) of the test split: one (3), a range (0-49, both ends included) or a list (3,7,9); "
    "text and tables print one JSON object per index, one per line (JSON Lines)"
)
TARGET_HELP = (
    "class to explain: predicted (default), true, a class index or a class name; the JSON's "
    "'target' and 'predicted' are class names"
)
# The lime and shap verbs' flags before params drove the flags: the same fields under their old names.
OLD_NAMES = {
    "lime": (
        ("--num-samples", "lime_samples", int),
        ("--num-features", "lime_features", int),
        ("--feature-selection", "lime_selection", str),
        ("--seed", "lime_seed", int),
    ),
    "shap": (
        ("--algorithm", "shap_algorithm", str),
        ("--background-size", "shap_background_size", int),
        ("--background", "shap_background", str),
    ),
}


def _add_sample_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--index", required=True, metavar="I", help=INDEX_HELP)
    p.add_argument("--target", default="predicted", metavar="T", help=TARGET_HELP)


def add_method_flags(p: argparse.ArgumentParser, methods: list[Any], old_names: tuple[str, ...] = ()) -> None:
    """One flag per spec'd parameter of each method, made from its params dataclass (:mod:`core.params`: the
    widget key with dashes, read back by ``core.params.from_flags``), grouped by method.

    Two methods may share a flag (``--lime-samples``: LIME on images and on text): it is one flag, read by
    whichever method runs, and left to the params dataclass to validate. ``old_names`` (keys of
    :data:`OLD_NAMES`) add the lime / shap verbs' old flag names for the same fields.
    """
    from core.params import add_flags

    add_flags(p, methods)
    for name in old_names:
        group = p.add_argument_group(f"the {name} verb's flags (older names of the same parameters)")
        for flag, dest, kind in OLD_NAMES[name]:
            group.add_argument(flag, dest=dest, type=kind, default=None, help=f"= --{dest.replace('_', '-')}")


def add_parsers(sub: Any, parents: Parents) -> None:
    shared = parents.scenario_verb
    methods = all_methods()

    p = sub.add_parser(
        "explain",
        parents=shared,
        help="explain test samples of any scenario: image maps (.npz), or word / feature attributions "
        "of text and tables (JSON)",
        description="Explain test samples. Images: attribution maps written to --out FILE.npz. Text and "
        "tables: one record per index, {scenario, model, method, index, target, predicted, "
        "attributions: [{feature, value}] sorted by |value|, details}; --json prints them "
        "as JSON Lines (one object per line). Each method's parameters have a flag "
        "(default: the method's own).",
    )
    p.add_argument(
        "--method",
        required=True,
        metavar="M",
        help="; ".join(f"{kind}: {', '.join(methods_of(kind))}" for kind in ("image", "text", "tabular")),
    )
    _add_sample_flags(p)
    add_method_flags(p, methods, ("lime", "shap"))
    p.set_defaults(func=cmd_explain, parser=p)

    p = sub.add_parser(
        "lime", parents=shared, help="LIME word weights for test documents of a text scenario (= explain --method lime)"
    )
    _add_sample_flags(p)
    p.add_argument("--label", type=int, default=None, metavar="K", help="explain this class index (= --target K)")
    add_method_flags(p, [get_method("text", "lime")], ("lime",))
    p.set_defaults(func=cmd_lime, parser=p)

    p = sub.add_parser(
        "shap",
        parents=shared,
        help="SHAP values of test rows of a tabular scenario, background from "
        "the train split (= explain --method shap)",
    )
    _add_sample_flags(p)
    add_method_flags(p, [get_method("tabular", "shap")], ("shap",))
    p.set_defaults(func=cmd_shap, parser=p)

    p = sub.add_parser(
        "shapley-game",
        parents=[parents.output],
        help="exact Shapley values of a cooperative game (default: the lecture's restaurant bill)",
    )
    p.add_argument(
        "--values",
        default=None,
        metavar="JSON",
        help='coalition values as a JSON object (or a path to a JSON file), coalitions keyed like "A", '
        '"A,B"; every non-empty coalition is needed. Default: the restaurant bill '
        "(Alice 400, Bob 560, Carol 720, ..., all three 1000)",
    )
    p.set_defaults(func=cmd_shapley_game, parser=p)
