"""Run a function over a dataset in batches, halving the batch on out-of-memory."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from core.errors import check_int
from core.progress import ProgressCallback, report

log = logging.getLogger(__name__)


def _is_out_of_memory(exc: BaseException) -> bool:
    if isinstance(exc, MemoryError):
        return True
    name = type(exc).__name__
    return name == "OutOfMemoryError" or (isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower())


def map_batches(
    fn: Callable[[Any], np.ndarray],
    x: Sequence[Any] | np.ndarray,
    batch_size: int,
    *,
    owner: str = "map_batches",
    progress: ProgressCallback | None = None,
    message: str = "computing",
) -> np.ndarray:
    """Apply ``fn`` to consecutive slices of ``x`` and concatenate the results along axis 0.

    Parameters
    ----------
    fn : callable
        Takes a slice of ``x`` (same type) and returns an ndarray whose first axis matches it.
    x : array-like of shape (n_samples, ...)
    batch_size : int
        Rows per call. On an out-of-memory error the batch is halved and retried (logged),
        down to a single row, after which the error propagates.
    """
    outputs: list[np.ndarray] = []

    def step(start: int, stop: int) -> None:
        outputs.append(np.asarray(fn(x[start:stop])))  # appended only once the slice succeeded

    for_each_range(step, len(x), batch_size, owner=owner, progress=progress, message=message)
    if not outputs:
        return np.empty((0,))
    return np.concatenate(outputs, axis=0)


def _empty_device_cache() -> None:
    import sys

    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()


def for_each_range(
    fn: Callable[[int, int], None],
    n: int,
    batch_size: int,
    *,
    owner: str = "for_each_range",
    progress: ProgressCallback | None = None,
    message: str = "computing",
) -> None:
    """Call ``fn(start, stop)`` over consecutive ranges covering ``range(n)``.

    For work whose inputs are built inside ``fn`` (noisy copies, path points, occluded images)
    and whose outputs are accumulated by it. Halves ``batch_size`` and retries a range on
    out-of-memory, like :func:`map_batches`; ``fn`` must therefore only commit its results once
    it has computed them without error.
    """
    batch_size = check_int("batch_size", batch_size, owner)
    start = 0
    while start < n:
        stop = min(n, start + batch_size)
        try:
            fn(start, stop)
        except Exception as exc:
            if not _is_out_of_memory(exc) or batch_size == 1:
                raise
            batch_size = max(1, batch_size // 2)
            log.warning("%s: out of memory, retrying with batch_size=%d", owner, batch_size)
            _empty_device_cache()
            continue
        start = stop
        report(progress, start / n, f"{message}: {start}/{n}")
