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
class SelfAttention(nn.Module):
    """Multi-head self-attention written out, so that ``probs`` (an identity) sees each head's attention map."""

    def __init__(self, dim: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.probs = nn.Identity()  # (n, heads, tokens, tokens): where attention rollout and the attention view read
        self.drop = nn.Dropout(dropout)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, t, d = x.shape
        q, k, v = self.qkv(x).reshape(n, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        attn = self.probs(torch.softmax(q @ k.transpose(-2, -1) / (d // self.heads) ** 0.5, dim=-1))
        return self.proj((self.drop(attn) @ v).transpose(1, 2).reshape(n, t, d))


class Block(nn.Module):
    """Pre-norm transformer block: x + attention(norm(x)), then x + MLP(norm(x)) (GELU, dropout)."""

    def __init__(self, dim: int, heads: int, mlp: int, dropout: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = SelfAttention(dim, heads, dropout)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(OrderedDict([("fc1", nn.Linear(dim, mlp)), ("gelu", nn.GELU()),
                                              ("drop1", nn.Dropout(dropout)), ("fc2", nn.Linear(mlp, dim)),
                                              ("drop2", nn.Dropout(dropout))]))
        self.out = nn.Identity()  # the block's tokens: where Grad-CAM on tokens reads

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return self.out(x + self.mlp(self.norm2(x)))


class VisionTransformer(nn.Module):
    """A small ViT (Dosovitskiy et al. 2021): ``patch`` x ``patch`` patches embedded by one strided convolution,
    a [CLS] token and learned positions, ``depth`` pre-norm blocks, the head on the final [CLS] token.

    ``grid`` is the patch grid (rows, columns); ``attention_modules()`` the blocks' attention maps in order.
    """

    def __init__(self, height: int, width: int, channels: int = 1, n_classes: int = 10, mean: float = 0.0,
                 std: float = 1.0, patch: int = 7, dim: int = 64, depth: int = 4, heads: int = 4, mlp: int = 128,
                 dropout: float = 0.1) -> None:
        super().__init__()
        if height % patch or width % patch:
            raise ValueError(f"{height}x{width} images do not split into {patch}x{patch} patches")
        self.grid = (height // patch, width // patch)
        self.normalize = Standardize(mean, std)
        self.patch_embed = nn.Conv2d(channels, dim, patch, stride=patch)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.randn(1, 1 + self.grid[0] * self.grid[1], dim) * 0.02)
        self.drop = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(Block(dim, heads, mlp, dropout) for _ in range(depth))
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, n_classes)

    def attention_modules(self) -> list[nn.Module]:
        return [block.attn.probs for block in self.blocks]

    def layer_groups(self) -> list[str]:
        """Randomisation units (core/trust/sanity.py): each block as a whole."""
        return [f"blocks.{i}" for i in range(len(self.blocks))]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.patch_embed(self.normalize(x)).flatten(2).transpose(1, 2)
        tokens = torch.cat([self.cls_token.expand(len(tokens), -1, -1), tokens], dim=1) + self.pos_embed
        tokens = self.drop(tokens)
        for block in self.blocks:
            tokens = block(tokens)
        return self.head(self.norm(tokens)[:, 0])


def image_vit(**arch: Any) -> VisionTransformer:
    return VisionTransformer(**arch)


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
