"""Server-wide set-up, once per process (app.py calls :func:`configure_server` on every run).

Streamlit runs each user's session in a thread of one process. torch's intra-op parallelism
(OpenMP) gives every thread that runs an operator a team of ``torch.get_num_threads()`` workers,
so N sessions computing at once start N x cores busy threads on a machine with ``cores`` CPUs.
On the 2-core machines measured here a torch computation in one session then slowed the other
sessions' page loads far more than its share of the CPU (OpenMP teams spin and wait for each
other's descheduled members). One intra-op thread per computation keeps the CPU shared fairly:
concurrent sessions already use every core, and a lone user loses at most the second core on the
rare cold computation (the pages read their heavy results from the cache).

``TRUSTLENS_TORCH_THREADS`` overrides the count (``0``: leave torch's default, one per core).
"""

from __future__ import annotations

import os
import sys
import threading

ENV_VAR = "TRUSTLENS_TORCH_THREADS"
DEFAULT_THREADS = 1
_THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")
_lock = threading.Lock()
_configured: dict[str, int | None] = {}


def torch_threads() -> int | None:
    """Intra-op threads for torch in the server (None: torch's default)."""
    raw = os.environ.get(ENV_VAR, "").strip()
    if not raw:
        return DEFAULT_THREADS
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{ENV_VAR} must be a whole number of threads (0 = torch's default); got {raw!r}.") from None
    if value < 0:
        raise ValueError(f"{ENV_VAR} must be >= 0 (0 = torch's default); got {value}.")
    return value or None


def configure_server() -> dict[str, int | None]:
    """Apply the process-wide settings once; later calls return what was applied.

    torch is not imported here (the first paint must not wait for it): when it is not loaded yet,
    ``OMP_NUM_THREADS`` / ``MKL_NUM_THREADS`` are set (unless the user set either), which torch reads
    at import; when it is, ``torch.set_num_threads``, which applies to every thread.
    """
    with _lock:
        if _configured:
            return dict(_configured)
        threads = torch_threads()
        if threads is not None:
            if "torch" in sys.modules:
                sys.modules["torch"].set_num_threads(threads)
            elif not any(os.environ.get(name) for name in _THREAD_VARS):  # the user's own setting wins
                for name in _THREAD_VARS:
                    os.environ[name] = str(threads)
        _configured["torch_threads"] = threads
        return dict(_configured)
