"""The process-wide random generators (torch's default generator and numpy's legacy global one).

A server runs every user's session in a thread of one process, and both global generators are
shared by all of them: a session that seeds torch's generator (to initialise a model it trains, to
draw MC dropout masks) while another session's computation draws from it changes that other
computation's numbers, and ``torch.random.fork_rng``'s restore at the end of one block undoes the
other's seed. Code that needs a global generator (module initialisation and ``nn.Dropout`` take no
``generator`` argument; shap's KernelExplainer and umap-learn draw from numpy's global state) holds
:func:`exclusive_global_rng` for the whole computation: one thread at a time per generator, and the
generators' states are put back afterwards, so code outside the block never sees a seed it did not set.
Each generator has its own lock, so torch-only work (layer randomisation, MC dropout, training) never
waits for numpy-only work (UMAP, shap) in another session, nor the other way round.

Code that can pass a ``torch.Generator`` / ``np.random.RandomState`` of its own should do that
instead: it needs no lock.
"""

from __future__ import annotations

import contextlib
import functools
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

import numpy as np

# One re-entrant lock per generator (re-entrant: a seeded training may call another seeded helper). Two, not
# one: a block that only needs numpy's generator (UMAP's unseeded fit, whose first run in a process compiles
# for 17-50 s) must not hold up a block that only needs torch's (the trust page's layer randomisation waited
# ~100 s behind the UMAP warm-up with one lock). A block that needs both takes numpy's first, then torch's.
_NUMPY_LOCK = threading.RLock()
_TORCH_LOCK = threading.RLock()
_held = threading.local()  # per thread: how deep it is inside blocks holding each lock
F = TypeVar("F", bound=Callable[..., Any])


def _depth(name: str) -> int:
    return getattr(_held, name, 0)


@contextmanager
def _holding(lock: Any, name: str) -> Iterator[None]:
    with lock:
        setattr(_held, name, _depth(name) + 1)
        try:
            yield
        finally:
            setattr(_held, name, _depth(name) - 1)


def holds(generator: str) -> bool:
    """Whether this thread is inside a block holding ``generator``'s lock (``"numpy"`` or ``"torch"``)."""
    return _depth(generator) > 0


@contextmanager
def exclusive_global_rng(seed: int | None = None, *, cuda_devices: Sequence[int] = (),
                         torch: bool = True, numpy: bool = True) -> Iterator[None]:
    """Within the block this thread alone uses the chosen global generators; their states are restored on exit.

    Parameters
    ----------
    seed : int, optional
        Seeds the chosen generators on entry.
    cuda_devices : sequence of int
        CUDA devices whose generators are saved and restored too (``torch.random.fork_rng``).
    torch : bool
        Hold torch's default generator. False for numpy-only code, so that it does not import torch.
    numpy : bool
        Hold numpy's legacy global generator. False for torch-only code (module initialisation, dropout
        masks), so that it does not wait for a numpy-only block in another session, nor hold one up.

    Raises
    ------
    RuntimeError
        When a thread inside a torch-only block asks for numpy's generator too (the locks are taken numpy
        first; the other order could deadlock with a thread doing it the right way round).
    """
    if not (torch or numpy):
        raise ValueError("exclusive_global_rng needs at least one generator (torch or numpy).")
    if numpy and holds("torch") and not holds("numpy"):
        raise RuntimeError("numpy's global generator was asked for inside a torch-only block: take both at the "
                           "outer block (exclusive_global_rng(numpy=True)), numpy's lock is always taken first.")
    with contextlib.ExitStack() as stack:
        if numpy:
            stack.enter_context(_holding(_NUMPY_LOCK, "numpy"))
            numpy_state = np.random.get_state()
            stack.callback(np.random.set_state, numpy_state)
            if seed is not None:
                np.random.seed(seed)
        if torch:
            stack.enter_context(_holding(_TORCH_LOCK, "torch"))
            import torch as _torch

            stack.enter_context(_torch.random.fork_rng(devices=list(cuda_devices)))
            if seed is not None:
                _torch.manual_seed(seed)
        yield


def holds_global_rng(fn: F) -> F:
    """Decorator: run ``fn`` inside a torch-only :func:`exclusive_global_rng` (``fn`` seeds torch's generator itself).

    Every user draws from torch's generator only (initialisation, dropout masks, weight noise); code that draws
    from numpy's global generator takes :func:`exclusive_global_rng` with ``numpy=True`` around its own block.
    """

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with exclusive_global_rng(numpy=False):
            return fn(*args, **kwargs)

    return wrapper  # type: ignore[return-value]
