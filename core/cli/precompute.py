"""``precompute``: dataset-scale work (probabilities, activations, attributions, uncertainty, SHAP, LIME) written
to a store, on the local engine or on Ray.

``python -m core precompute SCENARIO|--upload ... --ops predictions,activations,attributions,uncertainty,shap,lime
[--layer L] [--method M ...] [--split test] [--engine local|ray] [--address ADDR] [--workers N]
[--gpus-per-worker G] --store URL [--json]`` runs :func:`core.precompute.run.precompute`; the results go
under ``<store>/precomputed/<key>/`` (shards, then a manifest written last), and a second run with the
same inputs finds them and skips. ``--json`` prints ``{"scenario", "model", "split", "engine", "workers",
"store", "ops": [{"op", "key", "rows", "columns", "sum", "abs_sum", "seconds", "skipped"}, ...]}``; ``sum``
and ``abs_sum`` are over each op's main array, the same on every engine and worker count.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from typing import Any

from core.cli.common import EXIT_OK, Parents, batch_size, emit, progress

OPS_HELP = "comma-separated: predictions, activations, attributions, uncertainty, shap, lime"


def _ops(text: str) -> list[str]:
    from core.precompute.ops import get_op

    names = [part.strip() for part in str(text).split(",") if part.strip()]
    for name in names:
        get_op(name)  # an unknown name is refused listing the operations
    return names


def _method_params(methods: list[str], kind: str, args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """The params of each ``--method`` from its flags (``--ig-steps``...; the method's defaults otherwise)."""
    from core.cli.explain import MODALITY, method_params
    from core.explanation import get_method, method_names

    out = {}
    for name in methods:
        if name in method_names(MODALITY[kind]):  # another modality's method is refused by the plan, with the reason
            out[name] = dataclasses.asdict(method_params(get_method(name, MODALITY[kind]), args))
    return out


def _op_methods(ops: list[str], kind: str) -> list[str]:
    """The methods that ``shap`` / ``lime`` run on data of ``kind``: their flags (``--lime-samples``...) count too,
    as for ``--method`` (without this, ``--ops lime --lime-samples 500`` ran LIME's defaults)."""
    from core.precompute.ops import MODALITY, OP_METHODS

    return [m for op in ops if op in OP_METHODS for m in [OP_METHODS[op][MODALITY[kind]]] if m is not None]


def cmd_precompute(args: argparse.Namespace) -> int:
    from core.precompute.engines import ADDRESS_ENV_VAR, import_ray
    from core.precompute.plan import SourceSpec, open_context
    from core.jobs import run_in_foreground

    ops = _ops(args.ops)
    methods = [m.strip() for chunk in (args.method or []) for m in chunk.split(",") if m.strip()]
    if args.engine == "local" and (args.address or args.gpus_per_worker):
        args.parser.error("--address and --gpus-per-worker go with --engine ray")
    address = args.address
    if args.engine == "ray":
        import_ray()  # Ray missing: said before the model loads
        address = address or os.environ.get(ADDRESS_ENV_VAR, "").strip() or None
    spec = SourceSpec.from_args(args)
    # the model and rows, opened once (precompute() finds them again): the data's kind decides the methods' flags
    kind = open_context(spec, args.split, args.limit).kind
    op_params: dict[str, dict[str, Any]] = {"activations": {"layer": args.layer},
                                            "uncertainty": {"passes": args.mc_samples, "seed": args.mc_seed}}
    source = dataclasses.asdict(spec)
    where = ({"upload": source} if spec.upload else
             {"scenario": spec.scenario, "model": spec.model, "variant": spec.variant})
    # The same job a page would start (core/jobs/kinds.py), run here to its end: Ctrl-C cancels it between two
    # batches and nothing half-written is published.
    result = run_in_foreground("precompute", {
        "ops": ops, **where, "split": args.split, "limit": args.limit, "methods": methods,
        "method_params": _method_params(methods + _op_methods(ops, kind), kind, args), "op_params": op_params,
        "store": args.store,
        "engine": args.engine, "address": address, "workers": args.workers, "gpus_per_worker": args.gpus_per_worker,
        "batch_size": None if args.batch_size is None else batch_size(args, 1)}, progress=progress(args))

    def human() -> None:
        print(f"{result['scenario']}/{result['model']} {result['split']}: {result['rows']:,} rows, {result['engine']} "
              f"engine, {result['workers']} worker{'s' if result['workers'] > 1 else ''}, store {result['store']}")
        for r in result["ops"]:
            what = r["op"] + (f" ({r['method']})" if r["method"] else "")
            state = "skipped (already precomputed)" if r["skipped"] else f"{r['seconds']:.1f} s, {r['shards']} shards"
            print(f"  {what:<34} {r['rows']:>9,} rows  sum {r['sum']:.6g}  |sum| {r['abs_sum']:.6g}  key {r['key'][:12]}"
                  f"  {state}")

    emit(args, result, human)
    return EXIT_OK


def add_parsers(sub: Any, parents: Parents) -> None:
    from core.cli.explain import add_method_flags, all_methods

    p = sub.add_parser(
        "precompute",
        parents=parents.scenario_verb,
        help="dataset-scale precompute (predictions, activations, attributions, uncertainty, shap, lime) into "
        "--store URL, on the local engine or Ray",
        description="Run operations over every row of a split and write the results under "
        "<store>/precomputed/<key>/ (shards, then manifest.json last); a second run with the same inputs "
        "finds them and skips. The engine and the worker count never change a value.",
    )
    p.add_argument("--ops", required=True, metavar="OPS", help=OPS_HELP)
    p.add_argument("--layer", default=None, metavar="L",
                   help="activations: the layer (default: the last hidden layer, as the embeddings page)")
    p.add_argument("--method", action="extend", nargs="+", default=None, metavar="M",
                   help="attributions: a method of the data's modality (several: --method A B, repeated or comma-separated; default: "
                   "integrated_gradients for images, occlusion for text, shap for tables)")
    p.add_argument("--split", default="test", choices=("test", "train", "val", "all"),
                   help="rows to precompute (default test; all: train, val and test in that order)")
    p.add_argument("--limit", type=int, default=None, metavar="N", help="only the split's first N rows")
    p.add_argument("--engine", default="local", choices=("local", "ray"),
                   help="local: this process; ray: Ray Data actors (pip install -r requirements-scale.txt)")
    p.add_argument("--address", default=None, metavar="ADDR",
                   help="a running Ray cluster (host:port; default TRUSTLENS_RAY_ADDRESS, else a local cluster "
                   "of --workers CPUs started for this run)")
    p.add_argument("--workers", type=int, default=1, metavar="N", help="threads (local) or actors (ray); default 1")
    p.add_argument("--gpus-per-worker", type=float, default=0.0, metavar="G",
                   help="ray: GPUs per actor (e.g. 1, or 0.5 to share one GPU between two actors)")
    p.add_argument("--store", required=True, metavar="URL", help="a folder, or s3://bucket/prefix (with s3fs)")
    p.add_argument("--mc-samples", type=int, default=None, metavar="T",
                   help="uncertainty: MC dropout passes (default 30)")
    p.add_argument("--mc-seed", type=int, default=0, metavar="S", help="uncertainty: seed of the dropout masks")
    add_method_flags(p, all_methods())
    p.set_defaults(func=cmd_precompute, parser=p)
