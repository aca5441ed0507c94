"""The process-wide random generators (torch's default generator and numpy's legacy global one).

A server runs every user's session in a thread of one process, and both global generators are
shared by all of them: a session that seeds torch's generator (to initialise a model it trains, to
draw MC dropout masks) while another session's computation draws from it changes that other
computation's numbers, and ``torch.random.fork_rng``'s restore at the end of one block undoes the
other's seed. Code that needs a global generator (module initialisation and ``nn.Dropout`` take no
``generator`` argument; shap's KernelExplainer and umap-learn draw from numpy's global state) holds
:func:`exclusive_global_rng` for the whole computation: one thread at a time, and the generators'
states are put back afterwards, so code outside the block never sees a seed it did not set.

Code that can pass a ``torch.Generator`` / ``np.random.RandomState`` of its own should do that
instead: it needs no lock.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

import numpy as np

_LOCK = threading.RLock()  # re-entrant: a seeded training may call another seeded helper
F = TypeVar("F", bound=Callable[..., Any])


@contextmanager
def exclusive_global_rng(seed: int | None = None, *, cuda_devices: Sequence[int] = (),
                         torch: bool = True) -> Iterator[None]:
    """Within the block this thread alone uses the global generators; their states are restored on exit.

    Parameters
    ----------
    seed : int, optional
        Seeds torch's generator (when ``torch``) and numpy's global one on entry.
    cuda_devices : sequence of int
        CUDA devices whose generators are saved and restored too (``torch.random.fork_rng``).
    torch : bool
        False for numpy-only code, so that it does not import torch.
    """
    with _LOCK:
        numpy_state = np.random.get_state()
        try:
            if torch:
                import torch as _torch

                with _torch.random.fork_rng(devices=list(cuda_devices)):
                    if seed is not None:
                        _torch.manual_seed(seed)
                        np.random.seed(seed)
                    yield
            else:
                if seed is not None:
                    np.random.seed(seed)
                yield
        finally:
            np.random.set_state(numpy_state)


def holds_global_rng(fn: F) -> F:
    """Decorator: run ``fn`` inside :func:`exclusive_global_rng` (it seeds torch's generator itself)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with exclusive_global_rng():
            return fn(*args, **kwargs)

    return wrapper  # type: ignore[return-value]
