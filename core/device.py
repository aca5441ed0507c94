"""Resolve the torch device once per process: cuda, then mps, then cpu.

``TRUSTLENS_DEVICE`` overrides the choice (e.g. ``cpu`` on a GPU machine to compare, or
``cuda:1``). torch is imported lazily so importing this module costs nothing.
"""

from __future__ import annotations

import functools
import os

from core.errors import ConfigurationError

ENV_VAR = "TRUSTLENS_DEVICE"


@functools.lru_cache(maxsize=None)
def _resolve(override: str | None) -> str:
    import torch

    if override:
        name = override.strip().lower()
        kind = name.split(":")[0]
        if kind not in {"cpu", "cuda", "mps"}:
            raise ConfigurationError(
                f"{ENV_VAR}={override!r} is not a device TrustLens knows.",
                hint="set it to 'cpu', 'cuda', 'cuda:N' or 'mps', or unset it to pick automatically.",
            )
        if kind == "cuda" and not torch.cuda.is_available():
            raise ConfigurationError(
                f"{ENV_VAR}={override!r} asks for CUDA, but torch sees no CUDA device "
                f"(torch {torch.__version__}).",
                hint=f"unset {ENV_VAR} to fall back to the CPU, or install a CUDA build of torch.",
            )
        if kind == "mps" and not torch.backends.mps.is_available():
            raise ConfigurationError(
                f"{ENV_VAR}={override!r} asks for Apple MPS, which is not available here.",
                hint=f"unset {ENV_VAR} to fall back to the CPU.",
            )
        return name
    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def resolve_device() -> str:
    """Return the device name models should run on (``"cuda"``, ``"mps"`` or ``"cpu"``).

    Raises
    ------
    ConfigurationError
        If ``TRUSTLENS_DEVICE`` names a device that does not exist here.
    """
    return _resolve(os.environ.get(ENV_VAR) or None)


def describe_device(device: str) -> str:
    """A human label for the UI, e.g. ``"cuda (NVIDIA H200)"`` or ``"cpu (2 threads)"``."""
    import torch

    if device.startswith("cuda"):
        index = torch.device(device).index or 0
        return f"{device} ({torch.cuda.get_device_name(index)})"
    if device == "cpu":
        return f"cpu ({torch.get_num_threads()} threads)"
    return device
