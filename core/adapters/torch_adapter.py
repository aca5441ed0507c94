"""Adapter for ``torch.nn.Module`` classifiers."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from core.adapters.base import ModelAdapter, ModelInfo
from core.batching import map_batches
from core.device import resolve_device
from core.fingerprint import hash_texts


class TorchAdapter(ModelAdapter):
    """Wrap an ``nn.Module`` that maps a batch to logits (or probabilities).

    Parameters
    ----------
    module : torch.nn.Module
        Put in eval mode and moved to ``device`` once, here.
    name : str
    class_names : sequence of str
    input_kind : {"image", "text", "tabular"}
    outputs : {"logits", "probabilities"}
        What the module returns; logits are soft-maxed.
    encode : callable, optional
        Turns a slice of inputs into a numpy array the module takes (texts -> token ids).
        Default: ``np.asarray(x, dtype=float32)``.
    encoder_fingerprint : str
        Fingerprint of whatever ``encode`` depends on (a vocabulary), folded into ours.
    device : str, optional
        Default: :func:`core.device.resolve_device`.
    """

    default_batch_size = 64

    def __init__(
        self,
        module: Any,
        *,
        name: str,
        class_names: tuple[str, ...] | list[str],
        input_kind: str,
        outputs: str = "logits",
        encode: Callable[[Any], np.ndarray] | None = None,
        encoder_fingerprint: str = "",
        device: str | None = None,
        description: str = "",
    ) -> None:
        import torch

        if outputs not in {"logits", "probabilities"}:
            raise ValueError(f"outputs must be 'logits' or 'probabilities'; got {outputs!r}.")
        self.device = device or resolve_device()
        self._module = module.to(self.device).eval()
        self._encode = encode or (lambda x: np.asarray(x, dtype=np.float32))
        self._outputs = outputs
        self._encoder_fingerprint = encoder_fingerprint
        self._torch = torch
        n_params = sum(p.numel() for p in module.parameters() if p.requires_grad)
        self._info = ModelInfo(
            name=name,
            task="classification",
            class_names=tuple(class_names),
            input_kind=input_kind,
            fingerprint=self._fingerprint(module, class_names, outputs, encoder_fingerprint),
            device=self.device,
            framework="torch",
            n_parameters=int(n_params),
            description=description,
        )

    @staticmethod
    def _fingerprint(module: Any, class_names: Any, outputs: str, extra: str) -> str:
        # Architecture text + every tensor of the state dict, in key order: stable across
        # processes and devices, sensitive to any weight change.
        h = hashlib.sha256()
        h.update(f"{type(module).__module__}.{type(module).__qualname__}|{module!r}|{outputs}|{extra}|".encode())
        hash_texts(tuple(class_names), h)
        for key, tensor in module.state_dict().items():
            arr = tensor.detach().cpu().contiguous()
            h.update(f"{key}|{arr.dtype}|{tuple(arr.shape)}|".encode())
            if str(arr.dtype) == "torch.bfloat16":  # numpy has no bfloat16
                arr = arr.float()
            h.update(arr.numpy().tobytes())
        return h.hexdigest()

    @property
    def info(self) -> ModelInfo:
        return self._info

    def torch_module(self) -> Any:
        return self._module

    def with_module(self, module: Any, name: str) -> "TorchAdapter":
        """The same adapter (classes, encoder, outputs, device) around another module, e.g. a
        copy with randomised weights for the sanity checks."""
        return TorchAdapter(module, name=name, class_names=self.class_names, input_kind=self.info.input_kind,
                            outputs=self._outputs, encode=self._encode, encoder_fingerprint=self._encoder_fingerprint,
                            device=self.device, description=self.info.description)

    @property
    def encoder(self) -> Callable[[Any], np.ndarray]:
        """What turns inputs into the module's input array (a Vocabulary's ``encode`` for text)."""
        return self._encode

    @property
    def outputs(self) -> str:
        """``"logits"`` or ``"probabilities"``: what the module returns."""
        return self._outputs

    def to_tensor(self, x: Any) -> Any:
        """The module's input for a slice of ``x``, on the model's device."""
        return self._torch.as_tensor(self._encode(x)).to(self.device)

    def _forward_proba(self, x: Any) -> np.ndarray:
        torch = self._torch
        with torch.inference_mode():
            out = self._module(self.to_tensor(x))
            if self._outputs == "logits":
                out = torch.softmax(out.float(), dim=1)
            return out.double().cpu().numpy()

    def predict_proba(self, x: Any, batch_size: int | None = None) -> np.ndarray:
        self._check_input(x)
        if len(x) == 0:
            return np.empty((0, len(self.class_names)))
        proba = map_batches(self._forward_proba, x, self.default_batch_size if batch_size is None else batch_size, owner="predict_proba")
        # float32 softmax rows can miss 1 by ~1e-7; renormalise in float64 for exact sums.
        return proba / proba.sum(axis=1, keepdims=True)

    def class_probability(self, x: Any, k: int, batch_size: int | None = None) -> np.ndarray:
        """P(class ``k``) per sample, ndarray of shape (n,), float64.

        The one column perturbation explainers call millions of times: the softmax's other
        columns are never copied to the host, and rows are not renormalised in float64 (so values
        can differ from ``predict_proba(x)[:, k]`` by float32 rounding, ~1e-7).
        """
        self._check_input(x)
        torch = self._torch

        def run(chunk: Any) -> np.ndarray:
            with torch.inference_mode():
                out = self._module(self.to_tensor(chunk))
                if self._outputs == "logits":
                    out = torch.softmax(out.float(), dim=1)
                return out[:, k].double().cpu().numpy()

        if len(x) == 0:
            return np.empty((0,))
        return map_batches(run, x, self.default_batch_size if batch_size is None else batch_size, owner="class_probability")

    def layer_names(self) -> list[str]:
        # Leaf modules plus named blocks, in registration order (input side first).
        return [name for name, m in self._module.named_modules() if name and not list(m.children())]

    @contextmanager
    def capture(self, layer: str) -> Iterator[list[Any]]:
        """Record ``layer``'s outputs during forward passes run by *this thread*.

        The hook is removed in ``finally``, also when the forward pass raises. Forward passes
        from other threads (other sessions sharing this adapter) are not recorded.
        """
        self._check_layer(layer)
        target = dict(self._module.named_modules())[layer]
        owner = threading.get_ident()
        outputs: list[Any] = []

        def hook(_module: Any, _inputs: Any, output: Any) -> None:
            if threading.get_ident() == owner:
                outputs.append(output[0] if isinstance(output, tuple) else output)

        handle = target.register_forward_hook(hook)
        try:
            yield outputs
        finally:
            handle.remove()

    def activations(self, x: Any, layer: str, batch_size: int | None = None) -> np.ndarray:
        self._check_input(x)
        if len(x) == 0:
            self._check_layer(layer)
            return self._empty_activations(x, layer)
        torch = self._torch

        def run(chunk: Any) -> np.ndarray:
            with self.capture(layer) as outputs, torch.inference_mode():
                self._module(self.to_tensor(chunk))
            return outputs[-1].reshape(len(chunk), -1).float().cpu().numpy()

        return map_batches(run, x, self.default_batch_size if batch_size is None else batch_size, owner="activations")

