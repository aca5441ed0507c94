"""Small torch architectures for the built-in scenarios, and one training loop for all.

Importing this module imports torch: only scenario loading and training do so.
Every network normalises its own input (buffers ``mean``/``std``), so adapters, explanations and
pages work in raw pixel / feature space. Layers have readable names (``conv2``, ``fc1``) because
layer pickers show them.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn

from core.progress import ProgressCallback, report
from core.rng import holds_global_rng


class Standardize(nn.Module):
    """(x - mean) / std with fixed buffers (part of the state dict, so of the fingerprint)."""

    def __init__(self, mean: Any, std: Any) -> None:
        super().__init__()
        self.register_buffer("mean", torch.as_tensor(mean, dtype=torch.float32))
        self.register_buffer("std", torch.as_tensor(std, dtype=torch.float32).clamp_min(1e-6))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


class EncodeColumns(nn.Module):
    """Numeric columns standardised, categorical columns (codes 0..K-1) expanded to K indicator columns.

    ``categories[j]`` is K for a categorical column and 0 for a numeric one. The indicator of code k is
    ``relu(1 - |x - k|)``: exactly one-hot at integer codes and piecewise linear in between. At an integer
    code the gradient is 0, as for a hard one-hot; between codes it is not, so a path method
    (Integrated Gradients from a baseline) sees the column on its way.
    """

    def __init__(self, categories: Any, mean: Any, std: Any) -> None:
        super().__init__()
        self.categories = [int(k) for k in categories]
        self.numeric = [j for j, k in enumerate(self.categories) if k == 0]
        self.register_buffer("mean", torch.as_tensor([mean[j] for j in self.numeric], dtype=torch.float32))
        self.register_buffer("std", torch.as_tensor([std[j] for j in self.numeric], dtype=torch.float32).clamp_min(1e-6))
        for j, k in enumerate(self.categories):
            if k:
                self.register_buffer(f"codes{j}", torch.arange(k, dtype=torch.float32))

    @property
    def width(self) -> int:
        return len(self.numeric) + sum(self.categories)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != len(self.categories):  # indexing would silently ignore extra columns
            raise ValueError(f"expected {len(self.categories)} columns, got {x.shape[-1]}")
        parts = [(x[:, self.numeric] - self.mean) / self.std]
        for j, k in enumerate(self.categories):
            if k:
                parts.append(torch.relu(1 - (x[:, j : j + 1] - getattr(self, f"codes{j}")).abs()))
        return torch.cat(parts, dim=1)


def image_cnn(height: int, width: int, channels: int = 1, n_classes: int = 10, mean: float = 0.0, std: float = 1.0,
              widths: tuple[int, int] = (16, 32), hidden: int = 128, dropout: float = 0.25) -> nn.Sequential:
    """Two conv blocks + two dense layers with dropout (MC dropout works on it)."""
    c1, c2 = widths
    small = height < 16  # 8x8 digits: pool once only
    layers: list[tuple[str, nn.Module]] = [
        ("normalize", Standardize(mean, std)),
        ("conv1", nn.Conv2d(channels, c1, 3, padding=1)),
        ("relu1", nn.ReLU()),
    ]
    if not small:
        layers.append(("pool1", nn.MaxPool2d(2)))
    layers += [
        ("conv2", nn.Conv2d(c1, c2, 3, padding=1)),
        ("relu2", nn.ReLU()),
        ("pool2", nn.MaxPool2d(2)),
        ("dropout1", nn.Dropout(dropout)),
        ("flatten", nn.Flatten()),
    ]
    spatial = (height // 2 // (1 if small else 2)) * (width // 2 // (1 if small else 2))
    layers += [
        ("fc1", nn.Linear(c2 * spatial, hidden)),
        ("relu3", nn.ReLU()),
        ("dropout2", nn.Dropout(2 * dropout)),
        ("fc2", nn.Linear(hidden, n_classes)),
    ]
    return nn.Sequential(OrderedDict(layers))


class MeanEmbedding(nn.Module):
    """Mean of token embeddings, ignoring padding id 0. Input (n, length) int64 -> (n, dim)."""

    def __init__(self, vocab_size: int, dim: int) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, dim, padding_idx=0)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        mask = (ids != 0).unsqueeze(-1).float()
        summed = (self.embedding(ids) * mask).sum(dim=1)
        return summed / mask.sum(dim=1).clamp_min(1.0)


def text_bag_of_embeddings(vocab_size: int, n_classes: int, dim: int = 64, hidden: int = 64, dropout: float = 0.3) -> nn.Sequential:
    """Bag of embeddings -> dense -> classes. ``pool.embedding`` is the layer for gradient x embedding."""
    return nn.Sequential(OrderedDict([
        ("pool", MeanEmbedding(vocab_size, dim)),
        ("dropout1", nn.Dropout(dropout)),
        ("fc1", nn.Linear(dim, hidden)),
        ("relu1", nn.ReLU()),
        ("dropout2", nn.Dropout(dropout)),
        ("fc2", nn.Linear(hidden, n_classes)),
    ]))


def tabular_mlp(n_features: int, n_classes: int, mean: Any, std: Any, hidden: tuple[int, int] = (32, 16), dropout: float = 0.1,
                categories: Any = None) -> nn.Sequential:
    """Two hidden layers; ``categories`` (per column: K categories, or 0 for numeric) one-hot encodes
    code columns inside the module (:class:`EncodeColumns`), so the model takes the table's raw columns."""
    h1, h2 = hidden
    encode: nn.Module = Standardize(mean, std) if categories is None else EncodeColumns(categories, mean, std)
    width = n_features if categories is None else encode.width  # type: ignore[union-attr]
    return nn.Sequential(OrderedDict([
        ("normalize", encode),
        ("fc1", nn.Linear(width, h1)),
        ("relu1", nn.ReLU()),
        ("dropout1", nn.Dropout(dropout)),
        ("fc2", nn.Linear(h1, h2)),
        ("relu2", nn.ReLU()),
        ("fc3", nn.Linear(h2, n_classes)),
    ]))


@holds_global_rng  # seeds torch's generator and draws dropout masks from it for the whole training
def train_classifier(
    module: nn.Module,
    x: np.ndarray,
    y: np.ndarray,
    *,
    epochs: int,
    batch_size: int,
    lr: float,
    seed: int,
    device: str,
    weight_decay: float = 0.0,
    encode: Callable[[np.ndarray], np.ndarray] | None = None,
    progress: ProgressCallback | None = None,
    label: str = "training",
) -> nn.Module:
    """Minimise cross-entropy with Adam; deterministic for a given seed on the CPU.

    Parameters
    ----------
    x : ndarray of shape (n_samples, ...)
        Inputs (``encode`` maps a slice of it to the module's input, e.g. texts -> ids).
    y : ndarray of shape (n_samples,)
    batch_size : int
        Samples per optimisation step.
    progress : callable, optional
        Called once per step with the fraction done.
    """
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    module = module.to(device).train()
    optimiser = torch.optim.Adam(module.parameters(), lr=lr, weight_decay=weight_decay)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimiser, max_lr=lr, total_steps=epochs * ((len(x) + batch_size - 1) // batch_size)
    )
    loss_fn = nn.CrossEntropyLoss()
    targets = torch.as_tensor(y, dtype=torch.long)
    encode = encode or (lambda chunk: np.asarray(chunk, dtype=np.float32))
    steps_per_epoch = (len(x) + batch_size - 1) // batch_size
    total = epochs * steps_per_epoch
    step = 0
    started = time.perf_counter()
    for epoch in range(epochs):
        order = torch.randperm(len(x), generator=generator).numpy()
        for start in range(0, len(x), batch_size):
            idx = order[start : start + batch_size]
            inputs = torch.as_tensor(encode(x[idx])).to(device)
            loss = loss_fn(module(inputs), targets[idx].to(device))
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            schedule.step()
            step += 1
            if step % 10 == 0 or step == total:
                elapsed = time.perf_counter() - started
                report(progress, step / total, f"{label}: epoch {epoch + 1}/{epochs}, loss {loss.item():.3f}, {elapsed:.0f} s")
    return module.eval()
