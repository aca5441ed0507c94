"""Random draws keyed by (seed, pass, sample), so that a stochastic pass never depends on the batch size.

``nn.Dropout`` draws its masks from torch's global generator, one batch at a time: the mask a
sample gets depends on which batch it shared and where it sat in it, so the same seed gave other
MC-dropout numbers at another batch size (and the passes needed the process-wide generator lock,
holding back every other session that trains or samples). Here a mask element is a hash of
(seed, pass, layer, sample index, element index): the same sample gets the same masks whatever
the batch size, device or thread, and no global generator is touched.

- :class:`KeyedDropout` replaces ``nn.Dropout`` / ``Dropout1d/2d/3d`` / ``AlphaDropout`` /
  ``FeatureAlphaDropout`` in a copy of the model (:func:`sampling_copy`). TorchScript modules
  cannot have submodules replaced; their dropout is switched to training mode and keeps drawing
  from the global generator (callers then key their cache by batch size too).
- Layers that draw whole weights per pass (Bayes by backprop) call :func:`pass_generator`: one
  generator per (seed, pass, layer), so a pass uses the same weights for every sample.

A draw is active only inside :func:`keyed_draws` (a thread-local context); outside it a
``KeyedDropout`` in training mode behaves like torch's own dropout.

Importing this module imports torch (the uncertainty engine imports it lazily).
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from core.uncertainty.members import DROPOUT_TYPES, layer_type

_M32 = 0xFFFFFFFF
_ALPHA = 1.7580993408473766  # SELU's -scale * alpha, torch's alpha dropout constant
_LOCAL = threading.local()

# torch.nn class name -> how its mask is shaped and applied
MODES = {"Dropout": "element", "Dropout1d": "channel", "Dropout2d": "channel", "Dropout3d": "channel",
         "AlphaDropout": "alpha", "FeatureAlphaDropout": "feature_alpha"}
assert set(MODES) == set(DROPOUT_TYPES)


def _mix(x: int) -> int:
    """A 32-bit integer hash (Wellons' lowbias32) of a Python int."""
    x &= _M32
    x ^= x >> 16
    x = (x * 0x7FEB352D) & _M32
    x ^= x >> 15
    x = (x * 0x846CA68B) & _M32
    x ^= x >> 16
    return x


def hash32(x: torch.Tensor) -> torch.Tensor:
    """lowbias32 applied elementwise to an int64 tensor holding values in [0, 2**32).

    int64 products wrap around, and the low 32 bits of a wrapped product are the true ones, so
    masking after each multiply gives the unsigned 32-bit arithmetic the hash is defined with.
    In place after the first step (a new tensor; the caller's is untouched): a third faster on
    MC dropout's (batch, features) keys, which dominate the cost of a pass through a small head.
    """
    x = x & _M32
    x ^= x >> 16
    x.mul_(0x7FEB352D).bitwise_and_(_M32)
    x ^= x >> 15
    x.mul_(0x846CA68B).bitwise_and_(_M32)
    x ^= x >> 16
    return x


def salt(*parts: int) -> int:
    """One 32-bit key from several integers (seed, pass, layer...)."""
    h = 0x9E3779B9
    for p in parts:
        h = _mix(h ^ _mix(int(p)))
    return h


def keyed_uniform(rows: torch.Tensor, width: int, key: int) -> torch.Tensor:
    """Uniform [0, 1) floats of shape (len(rows), width): element (i, j) a hash of (key, rows[i], j)."""
    row_keys = hash32(rows.to(torch.int64) * 0x9E3779B1 + key)
    cols = torch.arange(width, device=rows.device, dtype=torch.int64) * 0x85EBCA77
    bits = hash32(row_keys[:, None] + cols[None, :])
    return (bits >> 8).to(torch.float32) * (1.0 / (1 << 24))  # 24 bits: exact in float32


@dataclass
class _Draw:
    seed: int
    pass_index: int = 0
    offset: int = 0


def current_draw() -> _Draw | None:
    return getattr(_LOCAL, "draw", None)


@contextmanager
def keyed_draws(seed: int) -> Iterator[_Draw]:
    """Within the block, this thread's keyed layers draw from ``seed``; set ``pass_index`` and ``offset``
    (the index of the batch's first sample in the whole data) on the yielded object before each pass."""
    previous = current_draw()
    draw = _Draw(int(seed))
    _LOCAL.draw = draw
    try:
        yield draw
    finally:
        _LOCAL.draw = previous


def pass_generator(slot: int, device: Any) -> torch.Generator | None:
    """A generator for one layer's draw in the current pass (None outside :func:`keyed_draws`)."""
    draw = current_draw()
    if draw is None:
        return None
    return torch.Generator(device=device).manual_seed(salt(draw.seed, draw.pass_index, slot))


class KeyedDropout(nn.Module):
    """Dropout whose masks are keyed by (seed, pass, layer slot, sample index, element index).

    ``mode``: "element" (``nn.Dropout``), "channel" (``Dropout1d/2d/3d``: one draw per sample and
    channel), "alpha" / "feature_alpha" (SELU networks' alpha dropout, torch's formula). Axis 0 of
    the input is the batch. In evaluation mode it is the identity, like torch's dropout.
    """

    def __init__(self, p: float, mode: str = "element", slot: int = 0) -> None:
        super().__init__()
        if mode not in MODES.values():
            raise ValueError(f"The 'mode' parameter of KeyedDropout must be one of {sorted(set(MODES.values()))}. Got {mode!r} instead.")
        self.p = float(p)
        self.mode = mode
        self.slot = int(slot)

    def extra_repr(self) -> str:
        return f"p={self.p}, mode={self.mode}, slot={self.slot}"

    def _fallback(self, x: torch.Tensor) -> torch.Tensor:
        fn = {"element": F.dropout, "alpha": F.alpha_dropout, "feature_alpha": F.feature_alpha_dropout}.get(self.mode)
        if fn is None:
            fn = F.dropout1d if x.dim() <= 3 else F.dropout2d if x.dim() == 4 else F.dropout3d
        return fn(x, self.p, True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        draw = current_draw()
        if draw is None:
            return self._fallback(x)
        if self.p >= 1.0:
            return x * 0.0 if self.mode in ("element", "channel") else self._fallback(x)
        n = x.shape[0]
        per_channel = self.mode in ("channel", "feature_alpha")
        width = x.shape[1] if per_channel else x[0].numel()
        rows = torch.arange(draw.offset, draw.offset + n, device=x.device, dtype=torch.int64)
        keep = keyed_uniform(rows, width, salt(draw.seed, draw.pass_index, self.slot)) >= self.p
        shape = (n, width) + (1,) * (x.dim() - 2) if per_channel else x.shape
        keep = keep.reshape(shape).to(x.dtype)
        if self.mode in ("element", "channel"):
            return x * keep * (1.0 / (1.0 - self.p))
        a = 1.0 / ((_ALPHA * _ALPHA * self.p + 1.0) * (1.0 - self.p)) ** 0.5
        return x * (keep * a) + ((keep - 1.0) * (_ALPHA * a) + _ALPHA * a * self.p)


def is_keyed(module: Any) -> bool:
    """True when every random draw of ``module`` is keyed (results then do not depend on the batch size)."""
    if isinstance(module, torch.jit.ScriptModule):
        return False
    layers = list(module.modules())
    keyed = [m for m in layers if isinstance(m, KeyedDropout) or getattr(m, "draws_keyed", False)]
    unkeyed = [m for m in layers if layer_type(m) in MODES and m.training and not isinstance(m, KeyedDropout)]
    return bool(keyed) and not unkeyed


def sampling_copy(module: Any, rate: float | None = None) -> Any:
    """A copy of ``module`` in evaluation mode except its dropout, which samples.

    Python dropout modules become :class:`KeyedDropout` (slot = their order in the model);
    TorchScript dropout stays the model's own, in training mode. ``rate`` replaces every dropout
    probability (None keeps the model's). A copy, because adapters are shared by every session.
    """
    clone = copy.deepcopy(module)
    clone.eval()
    slot = 0
    scripted = isinstance(clone, torch.jit.ScriptModule)
    for parent in list(clone.modules()):
        for name, child in list(parent.named_children()):
            kind = layer_type(child)
            if kind not in MODES:
                continue
            p = float(rate) if rate is not None else float(getattr(child, "p", 0.5))
            if scripted or isinstance(parent, torch.jit.ScriptModule) or isinstance(child, torch.jit.ScriptModule):
                if rate is not None:  # a TorchScript module's p is compiled into its code
                    raise ValueError("A dropout rate cannot be set on a TorchScript model's dropout.")
                child.train()
            else:
                keyed = KeyedDropout(p, MODES[kind], slot)
                keyed.train()
                setattr(parent, name, keyed)
            slot += 1
    return clone
