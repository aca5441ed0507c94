"""Embeddings benchmark: our t-SNE and UMAP against scikit-learn's TSNE and plain openTSNE / umap-learn
defaults, side by side in one run, on the MNIST CNN's hidden activations (a benchmark, not a test).

Input: the activations of layer ``relu3`` (the last hidden layer, 128 units) of the MNIST CNN for a
fixed random subset of N of the 70,000 MNIST images (train + val + test), for each N of ``--sizes``.
Every method gets the same array. Rows:

- ``ours_tsne``: ``core.embeddings`` as the page runs it: PCA to 50 dimensions, openTSNE with Annoy
  neighbours, PCA initialisation, Barnes-Hut below 10,000 points and the FFT gradient on a coarser
  grid (ints_in_interval=3) above, 100 exaggerated + 250 normal iterations.
- ``opentsne_default``: ``openTSNE.TSNE(n_jobs=cores).fit(X)`` (250 + 500 iterations).
- ``sklearn_tsne``: ``sklearn.manifold.TSNE(n_jobs=cores).fit_transform(X)`` (skipped above
  ``--sklearn-max`` points: its cost grows too fast on 2 cores).
- ``ours_umap``: PCA to 50 dimensions, then umap-learn with our settings (low_memory, all cores).
- ``umap_default``: ``umap.UMAP().fit(X)``. Both UMAP rows run after a warm-up fit in this process
  (numba compiled), so they are warm times.

Quality: trustworthiness (k = 10) of every map against the 128-d activations, and the kNN accuracy
of the true labels in the map, both by ``core.embeddings.quality`` (exact at N <= 5,000, else on the
same 5,000 random query points ranked against all N; equal to scikit-learn's trustworthiness when
exact, a test checks it).

numba warm-up (``--umap-cold``): two fresh interpreters fit UMAP on the same 10,000 points. One fits
cold (numba compiles inside the fit), then fits again (warm time). The other runs
``core.embeddings.warm.warm_umap()`` first (what the page starts in a background thread at server
start) and then fits: ``ratio_first_fit_after_warmup = that fit / warm time`` (target <= 1.5).

Prints a table, then one JSON line of ratios (ours / peer time, ours - peer trustworthiness).
Timings are single runs (t-SNE at 70,000 points takes minutes); on a shared machine they are noisy.
Run: ``TRUSTLENS_DATA_DIR=../shared/data python bench/embeddings.py --sizes 2000 10000``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from core.embeddings import EmbeddingParams, Preprocessor, combine_splits  # noqa: E402
from core.embeddings.projection import _n_jobs, tsne_fit, umap_fit  # noqa: E402
from core.embeddings.quality import knn_accuracy, trustworthiness  # noqa: E402

TARGETS_S = {10_000: 15.0, 70_000: 90.0}
TRUST_TOLERANCE = 0.01


def mnist_activations() -> tuple[np.ndarray, np.ndarray]:
    from core import scenarios
    from core.embeddings import collect_activations

    adapter = scenarios.load_model("mnist", "cnn").adapter
    bundle, _, _ = combine_splits(scenarios.load_data("mnist"))
    return collect_activations(adapter, bundle, "relu3"), np.asarray(bundle.y)


def ours_tsne(x: np.ndarray) -> np.ndarray:
    params = EmbeddingParams(method="tsne")
    z = Preprocessor.fit(x, params.standardize, params.pca_dims).transform(x)
    return np.asarray(tsne_fit(z, params))


def opentsne_default(x: np.ndarray) -> np.ndarray:
    from openTSNE import TSNE

    return np.asarray(TSNE(n_jobs=_n_jobs(), random_state=0).fit(x))


def sklearn_tsne(x: np.ndarray) -> np.ndarray:
    from sklearn.manifold import TSNE

    return TSNE(n_jobs=_n_jobs(), random_state=0).fit_transform(x)


def ours_umap(x: np.ndarray) -> np.ndarray:
    params = EmbeddingParams(method="umap")
    z = Preprocessor.fit(x, params.standardize, params.pca_dims).transform(x)
    return np.asarray(umap_fit(z, params).embedding_)


def umap_default(x: np.ndarray) -> np.ndarray:
    import umap

    return umap.UMAP().fit(x).embedding_


_COLD_SCRIPT = """
import sys, time, json, numpy as np
sys.path.insert(0, {root!r})
x = np.load({path!r})
warm_s = None
if {warm}:
    from core.embeddings.warm import warm_umap
    warm_s = warm_umap()
import umap
from core.embeddings import EmbeddingParams
from core.embeddings.projection import umap_fit
params = EmbeddingParams(method="umap")
t = time.perf_counter(); umap_fit(x, params); first = time.perf_counter() - t
t = time.perf_counter(); umap_fit(x, params); second = time.perf_counter() - t
print(json.dumps({{"warmup_s": warm_s, "first_s": first, "second_s": second}}))
"""


def umap_cold_vs_warm(x: np.ndarray, workdir: Path) -> dict[str, float]:
    """First UMAP fit in a fresh process, without and with the warm-up, vs a warm fit."""
    path = workdir / "umap_points.npy"
    z = Preprocessor.fit(x, False, 50).transform(x)
    np.save(path, z)
    out = {}
    for warm in (False, True):
        script = _COLD_SCRIPT.format(root=str(ROOT), path=str(path), warm=warm)
        result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
        out[warm] = json.loads(result.stdout.strip().splitlines()[-1])
    return {
        "cold_first_fit_s": out[False]["first_s"],
        "warm_fit_s": out[False]["second_s"],
        "warmup_s": out[True]["warmup_s"],
        "first_fit_after_warmup_s": out[True]["first_s"],
        "ratio_cold_first_fit": out[False]["first_s"] / out[False]["second_s"],
        "ratio_first_fit_after_warmup": out[True]["first_s"] / out[False]["second_s"],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[2000, 10000, 30000, 70000])
    parser.add_argument("--sklearn-max", type=int, default=10_000, help="largest N for sklearn's TSNE")
    parser.add_argument("--opentsne-max", type=int, default=30_000, help="largest N for openTSNE's defaults")
    parser.add_argument("--methods", nargs="+", default=["ours_tsne", "opentsne_default", "sklearn_tsne",
                                                         "ours_umap", "umap_default"])
    parser.add_argument("--umap-cold", action="store_true", help="also measure UMAP's first fit in fresh processes")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    started = time.perf_counter()
    acts, labels = mnist_activations()
    print(f"activations of relu3 for {len(acts):,} MNIST images: {acts.shape[1]} units "
          f"({time.perf_counter() - started:.1f} s incl. loading); {_n_jobs()} cores", flush=True)
    functions = {"ours_tsne": ours_tsne, "opentsne_default": opentsne_default, "sklearn_tsne": sklearn_tsne,
                 "ours_umap": ours_umap, "umap_default": umap_default}
    if any("umap" in m for m in args.methods):
        # Compile numba before timing (both code paths: seeded single-thread below 5,000 points,
        # parallel nearest-neighbour descent above), so both UMAP rows are warm times.
        ours_umap(acts[:3000])
        ours_umap(acts[:6000])
        umap_default(acts[:6000])

    rows: list[dict] = []
    print(f"{'N':>7} {'method':<18} {'seconds':>8} {'trust':>7} {'kNN acc':>8}", flush=True)
    for n in args.sizes:
        keep = np.sort(np.random.default_rng(args.seed).choice(len(acts), size=min(n, len(acts)), replace=False))
        x, y = np.ascontiguousarray(acts[keep], dtype=np.float32), labels[keep]
        for method in args.methods:
            if (method == "sklearn_tsne" and n > args.sklearn_max) or (method == "opentsne_default" and n > args.opentsne_max):
                continue
            t = time.perf_counter()
            coords = functions[method](x)
            seconds = time.perf_counter() - t
            trust = trustworthiness(x, coords, 10)
            acc = knn_accuracy(coords, y, 10)
            rows.append({"n": int(n), "method": method, "seconds": seconds, "trustworthiness": trust, "knn_accuracy": acc})
            print(f"{n:>7,} {method:<18} {seconds:>8.1f} {trust:>7.4f} {acc:>8.4f}", flush=True)

    ratios: dict[str, float] = {}
    by = {(r["n"], r["method"]): r for r in rows}
    for n in args.sizes:
        ours = by.get((n, "ours_tsne"))
        for peer in ("sklearn_tsne", "opentsne_default"):
            other = by.get((n, peer))
            if ours and other:
                ratios[f"tsne_{n}_time_vs_{peer}"] = round(ours["seconds"] / other["seconds"], 3)
                ratios[f"tsne_{n}_trust_minus_{peer}"] = round(ours["trustworthiness"] - other["trustworthiness"], 4)
        if ours and n in TARGETS_S:
            ratios[f"tsne_{n}_seconds"] = round(ours["seconds"], 1)
            ratios[f"tsne_{n}_meets_{TARGETS_S[n]:.0f}s"] = ours["seconds"] < TARGETS_S[n]
        ou, ud = by.get((n, "ours_umap")), by.get((n, "umap_default"))
        if ou and ud:
            ratios[f"umap_{n}_time_vs_default"] = round(ou["seconds"] / ud["seconds"], 3)
            ratios[f"umap_{n}_trust_minus_default"] = round(ou["trustworthiness"] - ud["trustworthiness"], 4)
    if args.umap_cold:
        import tempfile

        keep = np.sort(np.random.default_rng(args.seed).choice(len(acts), size=10_000, replace=False))
        with tempfile.TemporaryDirectory() as tmp:
            cold = umap_cold_vs_warm(acts[keep], Path(tmp))
        print("UMAP at 10,000 points in fresh processes: "
              + ", ".join(f"{k} {v:.2f}" for k, v in cold.items()), flush=True)
        ratios.update({k: round(v, 3) for k, v in cold.items() if k.startswith("ratio")})
    print(json.dumps(ratios))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
