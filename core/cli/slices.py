"""Can the data be trusted: ``slices`` (metrics per slice and per group, disparities, weak slices) and
``data`` (missing values, balance, duplicates, drift, label errors)."""

from __future__ import annotations

import argparse
import time
from typing import Any

from core.cli.common import EXIT_OK, Parents, emit, progress, resolve_source


def _interval(row: dict[str, Any], name: str, spec: str = ".3f") -> str:
    value, interval = row.get(name), row.get(f"{name}_interval")
    if value is None:
        return "n/a"
    text = format(value, spec)
    return f"{text} [{format(interval[0], spec)}, {format(interval[1], spec)}]" if interval else text


def cmd_slices(args: argparse.Namespace) -> int:
    from core.slices.report import SliceParams, resolve_positive, slices_report

    source = resolve_source(args)
    model = source.model_name(args.model)
    adapter = source.trained(model, args).adapter
    bundle = source.splits()[args.split]
    sensitive = tuple(args.sensitive) if args.sensitive else tuple(getattr(source.spec, "sensitive", ()))
    params = SliceParams(
        sensitive=sensitive, slice=args.slice or "", positive=resolve_positive(adapter.class_names, args.positive),
        n_boot=args.boot, seed=args.seed, top=args.top, max_conditions=args.max_conditions, min_size=args.min_size,
    )
    started = time.perf_counter()
    result = slices_report(adapter, bundle, params, progress=progress(args))
    document = {"scenario": source.name, "variant": source.variant, "model": model, "split": args.split,
                **result.as_dict()}
    if args.compare:
        from core.inference import predict_proba_cached
        from core.slices.compare import compare_models, comparison_slices
        from core.slices.frame import slice_frame

        other = source.model_name([args.compare])
        if other == model:
            from core.errors import ParameterError

            raise ParameterError(f"--compare names the model itself ({model!r}).",
                                 hint=f"compare with another: {', '.join(m for m in source.spec.model_names if m != model)}.")
        proba_a = predict_proba_cached(adapter, bundle)
        proba_b = predict_proba_cached(source.trained(other, args).adapter, bundle)
        frame = slice_frame(bundle, proba_a)
        document["comparison"] = compare_models(frame, bundle.y, proba_a, proba_b, (model, other),
                                                comparison_slices(document, frame), params.positive, params.n_boot,
                                                params.seed)
    document["seconds"] = round(time.perf_counter() - started, 3)

    def table() -> None:
        print(f"{source.name}/{model}, {args.split} split: {result.n:,} samples"
              + (f", positive class {result.positive}" if result.positive else ""))
        head = f"  {'slice':<34} {'n':>7}  {'error rate':<24} {'selection rate':<24} {'TPR':<24} {'FPR':<24}"
        rows = [result.overall] + ([result.slice, result.rest] if result.slice else [])
        print(head)
        for row in rows:
            print(f"  {row['slice'][:34]:<34} {row['n']:>7,}  {_interval(row, 'error_rate'):<24} "
                  f"{_interval(row, 'selection_rate'):<24} {_interval(row, 'tpr'):<24} {_interval(row, 'fpr'):<24}")
        for group in result.groups:
            print(f"groups of {group['column']}" + (f" ({group['note']})" if group["note"] else ""))
            for row in group["groups"]:
                print(f"  {row['slice'][:34]:<34} {row['n']:>7,}  {_interval(row, 'error_rate'):<24} "
                      f"{_interval(row, 'selection_rate'):<24} {_interval(row, 'tpr'):<24} {_interval(row, 'fpr'):<24}")
            if group["disparities"]:
                d = group["disparities"]
                print(f"  demographic parity difference {d['demographic_parity_difference']:.3f}, ratio "
                      f"{d['demographic_parity_ratio']:.3f}; equalized odds difference "
                      f"{d['equalized_odds_difference']:.3f}, ratio {d['equalized_odds_ratio']:.3f} (Fairlearn)")
        print(f"weak slices (error well above the rest; {len(result.weak_slices)} found)")
        for i, w in enumerate(result.weak_slices, 1):
            lo, hi = w["error_interval"]
            print(f"  {i:>2}. {w['slice']}: n {w['n']:,}, error {w['error_rate']:.3f} [{lo:.3f}, {hi:.3f}] vs "
                  f"{w['rest_error_rate']:.3f} for the rest, p {w['p_value']:.2g}" if w["p_value"] else
                  f"{w['rest_error_rate']:.3f} for the rest, p < 1e-300")

        if "comparison" in document:
            c = document["comparison"]
            a, b = c["models"]
            print(f"{a} vs {b}: they disagree on {c['disagreement']:.1%} of the samples")
            for row in c["slices"]:
                print(f"  {row['slice'][:40]:<40} {row['n']:>7,}  {a} {row[a]['error_rate']:.3f}  {b} "
                      f"{row[b]['error_rate']:.3f}  difference {row['difference']:+.3f}  disagree {row['disagreement']:.1%}")
            for w in c["disagreement_slices"]:
                print(f"  where they disagree most: {w['slice']}: n {w['n']:,}, {w['disagreement']:.1%} vs "
                      f"{w['rest_disagreement']:.1%} elsewhere")

    emit(args, document, table)
    return EXIT_OK


def add_parsers(sub: Any, parents: Parents) -> None:
    p = sub.add_parser(
        "slices",
        parents=parents.scenario_verb,
        help="metrics per slice and per group of the sensitive columns (with bootstrap intervals), Fairlearn's "
        "disparities, and the weak slices a search finds",
    )
    p.add_argument("--sensitive", action="append", default=None, metavar="COL",
                   help="a column whose groups are compared (repeatable; default: the scenario's sensitive columns)")
    p.add_argument("--slice", default=None, metavar="EXPR",
                   help="a slice scored against the rest, e.g. \"sex == Female and age < 30\" (back-quote a column "
                   "with spaces: `age band` == 25-44)")
    p.add_argument("--positive", default=None, metavar="CLASS",
                   help="class whose selection rate, TPR and FPR are reported (name or index; default: the second "
                   "class of a binary model, none otherwise)")
    p.add_argument("--split", default="test", choices=("train", "val", "test"), help="samples to slice (default test)")
    p.add_argument("--boot", type=int, default=200, metavar="B", help="bootstrap draws per interval (default 200)")
    p.add_argument("--top", type=int, default=10, metavar="K", help="weak slices listed (default 10)")
    p.add_argument("--max-conditions", type=int, default=2, metavar="C",
                   help="conditions per weak slice, 1 to 3 (default 2)")
    p.add_argument("--min-size", type=int, default=None, metavar="N",
                   help="smallest weak slice (default: 1 %% of the samples, at least 20)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--compare", default=None, metavar="MODEL",
                   help="a second model of the scenario: error rates of both on the same slices, how often they "
                   "disagree, and the slices where they disagree most")
    p.set_defaults(func=cmd_slices, parser=p)

    p = sub.add_parser(
        "data",
        parents=parents.scenario_verb,
        help="checks of the data itself: missing values, class balance, duplicates and train / test leakage, "
        "drift between train and test, suspected label errors (confident learning on the model's test probabilities)",
    )
    p.set_defaults(func=cmd_data, parser=p)


def cmd_data(args: argparse.Namespace) -> int:
    from core.inference import predict_proba_cached
    from core.slices.data_checks import data_report_cached

    source = resolve_source(args)
    splits = source.splits()
    started = time.perf_counter()
    proba = fingerprint = model = None
    if source.labelled and splits["test"].y is not None:
        model = source.model_name(args.model)
        adapter = source.trained(model, args).adapter
        proba, fingerprint = predict_proba_cached(adapter, splits["test"]), adapter.fingerprint
    result = data_report_cached(splits, fingerprint, proba)
    document = {"scenario": source.name, "variant": source.variant, "model": model, **result.as_dict(),
                "seconds": round(time.perf_counter() - started, 3)}
    document["label_issues"].pop("indices", None)

    def table() -> None:
        print(f"{source.label} data: " + ", ".join(f"{k} {v:,}" for k, v in result.splits.items()))
        missing = [r for r in result.missing if r["missing"]]
        print("missing values: " + ("none" if not missing else ", ".join(
            f"{r['column']} {r['missing']:,} ({r['share']:.1%}) in {r['split']}" for r in missing)))
        print("class balance: " + "; ".join(
            f"{split} " + ", ".join(f"{r['class']} {r['share']:.1%}" for r in result.balance if r["split"] == split)
            for split in result.splits))
        for kind in ("exact", "near"):
            d = result.duplicates[kind]
            within = ", ".join(f"{split} {v['count']:,}" for split, v in d["within"].items())
            leak = d["test_in_train"]
            print(f"{kind} duplicates: within {within}; test samples also in train {leak['count']:,}"
                  + (f" ({leak['different_label']:,} with a different label)" if leak["count"] else ""))
        drifted = [r for r in result.drift if r["drifted"]]
        print(f"drift between train and test: {len(drifted)} of {len(result.drift)} features"
              + "".join(f"\n  {r['feature']}: {r['test']} {r['statistic']:.3g}, p {r['p_value']:.2g}" for r in drifted))
        issues = result.label_issues
        if issues:
            print(f"suspected label errors in the {issues['split']} split: {issues['count']:,} "
                  f"({issues.get('share', 0):.1%}), by confident learning on {model}'s probabilities")
            for s in issues["samples"][:10]:
                print(f"  #{s['index']}: labelled {s['given']} (p {s['given_probability']:.3f}), "
                      f"the model says {s['suggested']} (p {s['suggested_probability']:.3f})")

    emit(args, document, table)
    return EXIT_OK
