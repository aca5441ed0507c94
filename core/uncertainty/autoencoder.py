"""An autoencoder of the training inputs; its reconstruction error is an out-of-distribution score.

"Low reconstruction error = familiar data": images like the training images are reconstructed
well, anything else (noise, inverted or rotated digits, another dataset) less so. A small dense
encoder / decoder on the flattened pixels, trained with mean squared error.

Importing this module imports torch (only the uncertainty engine imports it, lazily).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from typing import Any

import numpy as np
import torch
from torch import nn

from core.progress import ProgressCallback, report
from core.rng import holds_global_rng


def autoencoder(n_inputs: int, hidden: int = 128, code: int = 16) -> nn.Sequential:
    return nn.Sequential(OrderedDict([
        ("flatten", nn.Flatten()),
        ("enc1", nn.Linear(n_inputs, hidden)), ("relu1", nn.ReLU()),
        ("code", nn.Linear(hidden, code)), ("relu2", nn.ReLU()),
        ("dec1", nn.Linear(code, hidden)), ("relu3", nn.ReLU()),
        ("dec2", nn.Linear(hidden, n_inputs)), ("sigmoid", nn.Sigmoid()),
    ]))


@holds_global_rng
def train_autoencoder(module: nn.Module, x: np.ndarray, *, epochs: int, batch_size: int, lr: float, seed: int,
                      device: str, progress: ProgressCallback | None = None) -> nn.Module:
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    module = module.to(device).train()
    optimiser = torch.optim.Adam(module.parameters(), lr=lr)
    flat = np.asarray(x, dtype=np.float32).reshape(len(x), -1)
    steps = (len(x) + batch_size - 1) // batch_size
    started = time.perf_counter()
    for epoch in range(epochs):
        order = torch.randperm(len(x), generator=generator).numpy()
        for s, start in enumerate(range(0, len(x), batch_size)):
            batch = torch.as_tensor(flat[order[start:start + batch_size]]).to(device)
            loss = nn.functional.mse_loss(module(batch), batch)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            if s % 20 == 0:
                report(progress, (epoch * steps + s + 1) / (epochs * steps),
                       f"autoencoder: epoch {epoch + 1}/{epochs}, loss {loss.item():.4f}, {time.perf_counter() - started:.0f} s")
    return module.eval()


def reconstruction_error(module: nn.Module, x: Any, batch_size: int = 256, device: str = "cpu") -> np.ndarray:
    """Mean squared error of each input's reconstruction, ndarray of shape (n,), float64."""
    from core.batching import map_batches

    flat = np.asarray(x, dtype=np.float32).reshape(len(x), -1)

    def run(chunk: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            t = torch.as_tensor(chunk).to(device)
            return ((module(t) - t) ** 2).mean(dim=1).double().cpu().numpy()

    if len(flat) == 0:
        return np.empty((0,))
    return map_batches(run, flat, batch_size, owner="reconstruction_error")
