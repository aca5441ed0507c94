"""``embed``: a 2-D map (t-SNE, UMAP, PCA) of a layer's activations, written to CSV / Parquet."""

from __future__ import annotations

import argparse
import time
from typing import Any

from core.cli.common import EXIT_OK, Parents, batch_size, check_out, emit, progress, resolve_source


def cmd_embed(args: argparse.Namespace) -> int:
    """Map every sample of a scenario (all splits, or one) by a layer's activations; write the coordinates."""
    import numpy as np

    from core.embeddings import EmbeddingParams, combine_splits, default_layer, embed
    from core.embeddings.export import map_table
    from core.errors import check_int
    from core.inference import predict_proba_cached

    if not args.out:
        args.parser.error("embed needs --out FILE.csv (or .parquet): where the map goes")
    check_out(args, (".csv", ".parquet"))
    params = EmbeddingParams(
        method=args.method,
        perplexity=args.perplexity,
        n_neighbors=args.neighbors,
        min_dist=args.min_dist,
        standardize=args.standardize,
        seed=args.seed,
    ).validated()
    size = batch_size(args, 256)
    source = resolve_source(args)
    model = source.model_name(args.model)
    adapter = source.trained(model, args).adapter
    layer = args.layer or default_layer(adapter)
    bundle, split_of, position = combine_splits(source.splits(), args.split)
    if args.n is not None:
        n = check_int("n", args.n, "embed")
        if n < len(bundle):  # a fixed random subset, the same for every method
            keep = np.sort(np.random.default_rng(args.seed).choice(len(bundle), size=n, replace=False))
            bundle, split_of, position = bundle[keep], split_of[keep], position[keep]
    started = time.perf_counter()
    embedding = embed(adapter, bundle, layer, params, batch_size=size, progress=progress(args))
    seconds = time.perf_counter() - started
    proba = predict_proba_cached(adapter, bundle)
    table = map_table(embedding.coords, bundle.y, proba, adapter.class_names, split_of, position)
    if args.out.lower().endswith(".parquet"):
        table.to_parquet(args.out, index=False)
    else:
        table.to_csv(args.out, index=False)
    report = {
        "scenario": source.name,
        "model": model,
        "layer": layer,
        "method": args.method,
        "n": len(bundle),
        "split": args.split,
        "out": args.out,
        **embedding.quality.as_dict(),
        "projection_seconds": round(embedding.seconds, 3),
        "seconds": round(seconds, 3),
    }

    def human() -> None:
        q = embedding.quality
        print(f"{source.name}/{model} {layer}: {args.method} map of {len(bundle):,} points written to {args.out}")
        print(
            f"  trustworthiness {q.trustworthiness:.4f} (k={q.k}, {q.n_queries:,} query points); kNN accuracy "
            f"{q.knn_accuracy_map:.4f} in the map vs {q.knn_accuracy_original:.4f} in the original space"
        )

    emit(args, report, human, out_written=True)
    return EXIT_OK


def add_parsers(sub: Any, parents: Parents) -> None:
    p = sub.add_parser(
        "embed",
        parents=parents.scenario_verb,
        help="2-D map (t-SNE, UMAP, PCA) of a layer's activations, written to --out FILE.csv / .parquet "
        "(index, split, position, x, y, label, prediction, confidence per point)",
    )
    p.add_argument("--layer", default=None, metavar="NAME", help="layer to map (default: the last hidden layer)")
    p.add_argument("--method", choices=("tsne", "umap", "pca"), default="tsne", help="projection (default tsne)")
    p.add_argument("--n", type=int, default=None, metavar="N", help="map a random subset of N points (default: all)")
    p.add_argument(
        "--split", default="all", choices=("all", "train", "val", "test"), help="points to map (default all)"
    )
    p.add_argument("--perplexity", type=float, default=30.0, help="t-SNE perplexity (default 30)")
    p.add_argument("--neighbors", type=int, default=15, help="UMAP n_neighbors (default 15)")
    p.add_argument("--min-dist", type=float, default=0.1, help="UMAP min_dist (default 0.1)")
    p.add_argument("--standardize", action="store_true", help="scale every unit to unit variance first")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_embed, parser=p)
