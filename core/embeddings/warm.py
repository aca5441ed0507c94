"""Take numba's compilation off the request path: UMAP's first fit in a process compiles.

umap-learn and pynndescent JIT-compile dozens of functions on first use, most without numba's
on-disk cache, so every fresh process pays the compile (measured here: 17-50 s against 3-10 s
warm). :func:`warm_umap` runs a tiny fit *and* transform with the same code paths a real map
takes (euclidean metric, the nearest-neighbour descent used above 4,096 points, the layout
optimiser), so a later real fit finds everything compiled. The page starts it in a background
thread once per server process; ``python -m core.embeddings.warm`` runs it at install time (it
also fills numba's disk cache for the functions that do use it).
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import numpy as np

from core.rng import exclusive_global_rng

_lock = threading.Lock()
_state: dict[str, float | str | None] = {"status": "cold", "seconds": None, "error": None}


def numba_cache_dir() -> Path:
    """Where numba keeps compiled functions that allow caching (``NUMBA_CACHE_DIR`` if set)."""
    if "NUMBA_CACHE_DIR" not in os.environ:
        from core.store import DEFAULT_DIR, ENV_VAR

        root = Path(os.environ.get(ENV_VAR) or DEFAULT_DIR) / "numba"
        root.mkdir(parents=True, exist_ok=True)
        os.environ["NUMBA_CACHE_DIR"] = str(root)  # read by numba when it is first imported
    return Path(os.environ["NUMBA_CACHE_DIR"])


def warm_umap(n_points: int = 4500, metrics: tuple[str, ...] = ("euclidean",)) -> float:
    """Fit and transform a small UMAP so numba compiles now; returns the seconds it took.

    ``n_points`` above 4,096 makes UMAP use pynndescent (as every real map of that size does)
    instead of exact neighbours, so those functions are compiled too.
    """
    with _lock:
        if _state["status"] == "warm":
            return 0.0
        _state["status"] = "warming"
    started = time.perf_counter()
    try:
        numba_cache_dir()
        import umap

        rng = np.random.default_rng(0)
        centres = rng.normal(size=(10, 16)) * 4
        x = (centres[rng.integers(0, 10, n_points)] + rng.normal(size=(n_points, 16))).astype(np.float32)
        for metric in metrics:
            # The two paths core.embeddings.projection.umap_fit takes: parallel, unseeded (maps above
            # 5,000 points) and seeded, single-threaded (smaller maps) compile different functions.
            # The unseeded fit draws from numpy's global generator: hold its lock (core.rng), or this
            # warm-up would move another session's seeded draws (training, shap) mid-computation.
            with exclusive_global_rng(torch=False):  # numpy's lock only: torch work goes on
                model = umap.UMAP(n_neighbors=15, n_epochs=20, metric=metric, n_jobs=max(1, os.cpu_count() or 1),
                                  low_memory=True, verbose=False).fit(x)
                model.transform(x[:50])
            umap.UMAP(n_neighbors=15, n_epochs=20, metric=metric, random_state=0, n_jobs=1, low_memory=True,
                      verbose=False).fit(x[:1000]).transform(x[:50])
    except Exception as exc:  # warming is an optimisation: a failure only means the first real fit compiles
        with _lock:
            _state.update(status="failed", error=f"{type(exc).__name__}: {exc}")
        return time.perf_counter() - started
    seconds = time.perf_counter() - started
    with _lock:
        _state.update(status="warm", seconds=seconds)
    return seconds


WARMUP_ENV_VAR = "TRUSTLENS_UMAP_WARMUP"  # "0": no background compile (the first UMAP map compiles instead)


def warmup_enabled() -> bool:
    """False when ``TRUSTLENS_UMAP_WARMUP=0``: a server where nobody draws UMAP maps, or whose cores are too
    few to spare a minute of compiling (measured here: 60-75 s of one core per process, numba's disk cache
    warm or not), skips it; the first UMAP map then compiles on its own request instead."""
    return os.environ.get(WARMUP_ENV_VAR, "1").strip() != "0"


def warm_in_background() -> threading.Thread | None:
    """Start :func:`warm_umap` in a daemon thread (once per process is enough; later calls return at once).

    None when :func:`warmup_enabled` says no; :func:`warm_status` then stays ``cold``.
    """
    if not warmup_enabled():
        return None
    thread = threading.Thread(target=warm_umap, name="trustlens-umap-warmup", daemon=True)
    thread.start()
    return thread


def warm_status() -> dict[str, float | str | None]:
    """``{"status": cold | warming | warm | failed, "seconds": ..., "error": ...}``."""
    with _lock:
        return dict(_state)


if __name__ == "__main__":  # python -m core.embeddings.warm: at install time or before a lecture
    print(f"UMAP warm-up (numba compilation) took {warm_umap():.1f} s; {warm_status()}")
