"""A mean-field variational ("Bayes by backprop", Blundell et al. 2015) version of the image CNN.

Every weight w has its own Gaussian q(w) = N(mu, softplus(rho)^2); a forward pass in sampling mode
draws w = mu + softplus(rho) * eps (the reparameterisation trick, so the gradient reaches mu and
rho); training minimises the negative ELBO: cross-entropy + kl_weight * KL(q || prior) / n_train
with a N(0, prior_sigma^2) prior. Weight samples give the predictive distribution; outside sampling
mode the network uses the means (a deterministic model the attacks and saliency maps can use).

Importing this module imports torch (only the uncertainty engine imports it, lazily).
"""

from __future__ import annotations

import math
import time

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from core.nets import Standardize
from core.progress import ProgressCallback, report
from core.rng import holds_global_rng

RHO_INIT = -5.0  # softplus(-5) ~ 0.0067: start close to a point estimate


class _Bayes(nn.Module):
    """Shared parameter handling: mu / rho for weight and bias, sampled when ``sampling`` is on."""

    sampling: bool = False
    slot: int = 0  # this layer's place in the model: its key for keyed draws
    draws_keyed = True  # inside keyed.keyed_draws a pass draws one weight sample for all inputs

    def _init(self, weight_shape: tuple[int, ...], fan_in: int, out: int) -> None:
        bound = 1.0 / math.sqrt(fan_in)
        self.weight_mu = nn.Parameter(torch.empty(weight_shape).uniform_(-bound, bound))
        self.weight_rho = nn.Parameter(torch.full(weight_shape, RHO_INIT))
        self.bias_mu = nn.Parameter(torch.empty(out).uniform_(-bound, bound))
        self.bias_rho = nn.Parameter(torch.full((out,), RHO_INIT))

    def weights(self) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.sampling:
            return self.weight_mu, self.bias_mu
        from core.uncertainty.keyed import pass_generator

        g = pass_generator(self.slot, self.weight_mu.device)  # None: training, draws from the global generator
        mu, rho = self.weight_mu, self.weight_rho
        w = mu + F.softplus(rho) * torch.randn(mu.shape, generator=g, device=mu.device, dtype=mu.dtype)
        mu, rho = self.bias_mu, self.bias_rho
        b = mu + F.softplus(rho) * torch.randn(mu.shape, generator=g, device=mu.device, dtype=mu.dtype)
        return w, b

    def kl(self, prior_sigma: float) -> torch.Tensor:
        """KL(q || N(0, prior_sigma^2)) summed over this layer's weights and biases (closed form)."""
        total = torch.zeros(())
        for mu, rho in ((self.weight_mu, self.weight_rho), (self.bias_mu, self.bias_rho)):
            sigma = F.softplus(rho)
            total = total + (math.log(prior_sigma) - torch.log(sigma)
                             + (sigma ** 2 + mu ** 2) / (2 * prior_sigma ** 2) - 0.5).sum()
        return total


class BayesConv2d(_Bayes):
    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, padding: int = 0) -> None:
        super().__init__()
        self.padding = padding
        self._init((out_channels, in_channels, kernel_size, kernel_size), in_channels * kernel_size ** 2, out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w, b = self.weights()
        return F.conv2d(x, w, b, padding=self.padding)


class BayesLinear(_Bayes):
    def __init__(self, in_features: int, out_features: int) -> None:
        super().__init__()
        self._init((out_features, in_features), in_features, out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w, b = self.weights()
        return F.linear(x, w, b)


def bayes_cnn(height: int, width: int, channels: int = 1, n_classes: int = 10, mean: float = 0.0, std: float = 1.0,
              widths: tuple[int, int] = (16, 32), hidden: int = 64) -> nn.Sequential:
    """The image CNN's layout (two conv blocks, two dense layers) with variational layers, no dropout."""
    from collections import OrderedDict

    c1, c2 = widths
    small = height < 16
    layers: list[tuple[str, nn.Module]] = [("normalize", Standardize(mean, std)),
                                           ("conv1", BayesConv2d(channels, c1, 3, padding=1)), ("relu1", nn.ReLU())]
    if not small:
        layers.append(("pool1", nn.MaxPool2d(2)))
    layers += [("conv2", BayesConv2d(c1, c2, 3, padding=1)), ("relu2", nn.ReLU()), ("pool2", nn.MaxPool2d(2)),
               ("flatten", nn.Flatten())]
    spatial = (height // 2 // (1 if small else 2)) * (width // 2 // (1 if small else 2))
    layers += [("fc1", BayesLinear(c2 * spatial, hidden)), ("relu3", nn.ReLU()), ("fc2", BayesLinear(hidden, n_classes))]
    return nn.Sequential(OrderedDict(layers))


def set_sampling(module: nn.Module, on: bool) -> nn.Module:
    """Switch every variational layer between weight samples (on) and weight means (off)."""
    layers = [layer for layer in module.modules() if isinstance(layer, _Bayes)]
    for slot, layer in enumerate(layers):
        layer.sampling = on
        layer.slot = slot
    return module


def kl_divergence(module: nn.Module, prior_sigma: float) -> torch.Tensor:
    return sum((layer.kl(prior_sigma) for layer in module.modules() if isinstance(layer, _Bayes)), torch.zeros(()))


@holds_global_rng  # weight noise is drawn from torch's global generator
def train_bayes(module: nn.Module, x: np.ndarray, y: np.ndarray, *, epochs: int, batch_size: int, lr: float, seed: int,
                prior_sigma: float, kl_weight: float, device: str, progress: ProgressCallback | None = None) -> nn.Module:
    """Minimise cross-entropy + kl_weight * KL / n_train with Adam, one weight sample per step."""
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    module = set_sampling(module.to(device).train(), True)
    optimiser = torch.optim.Adam(module.parameters(), lr=lr)
    steps = (len(x) + batch_size - 1) // batch_size
    targets = torch.as_tensor(y, dtype=torch.long)
    started = time.perf_counter()
    for epoch in range(epochs):
        order = torch.randperm(len(x), generator=generator).numpy()
        for s, start in enumerate(range(0, len(x), batch_size)):
            idx = order[start:start + batch_size]
            inputs = torch.as_tensor(np.asarray(x[idx], dtype=np.float32)).to(device)
            nll = F.cross_entropy(module(inputs), targets[idx].to(device))
            loss = nll + kl_weight * kl_divergence(module, prior_sigma).to(device) / len(x)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            done = (epoch * steps + s + 1) / (epochs * steps)
            if s % 10 == 0:
                report(progress, done, f"Bayes by backprop: epoch {epoch + 1}/{epochs}, loss {loss.item():.3f}, "
                                       f"{time.perf_counter() - started:.0f} s")
    return set_sampling(module.eval(), False)
