"""Adapter for ONNX models, run with onnxruntime (forward passes only, no gradients)."""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np

from core.adapters.base import ModelAdapter, ModelInfo
from core.batching import map_batches
from core.errors import InputShapeError
from core.fingerprint import hash_texts

NO_GRADIENTS_ONNX = (
    "ONNX models run in onnxruntime, which computes no gradients: perturbation methods (occlusion, LIME, SHAP) "
    "only. Export as TorchScript (.pt) or torch.export (.pt2) for the gradient methods."
)


class OnnxAdapter(ModelAdapter):
    """Wrap an ONNX classifier held in memory.

    Parameters
    ----------
    data : bytes
        The serialised ONNX model (never written to disk).
    name : str
    class_names : sequence of str
    input_kind : {"image", "tabular"}
        Images arrive as (n, C, H, W) float32 in [0, 1] and are normalised here with ``mean`` /
        ``std`` (per channel) before the session sees them; tables as (n, d).
    outputs : {"logits", "probabilities"}
    mean, std : sequence of float, optional
        Per-channel normalisation for images (length 1 or C). Default: none.
    """

    default_batch_size = 64

    def __init__(self, data: bytes, *, name: str, class_names: tuple[str, ...] | list[str], input_kind: str,
                 outputs: str = "logits", mean: tuple[float, ...] | None = None, std: tuple[float, ...] | None = None,
                 description: str = "") -> None:
        import onnxruntime as ort

        if outputs not in {"logits", "probabilities"}:
            raise ValueError(f"outputs must be 'logits' or 'probabilities'; got {outputs!r}.")
        options = ort.SessionOptions()
        options.log_severity_level = 3  # warnings about unused initialisers are noise to a user
        options.intra_op_num_threads = 0
        self._session = ort.InferenceSession(data, sess_options=options, providers=["CPUExecutionProvider"])
        inputs = self._session.get_inputs()
        if len(inputs) != 1:
            raise InputShapeError(
                f"ONNX model {name!r} takes {len(inputs)} inputs ({', '.join(i.name for i in inputs)}); TrustLens feeds one.",
                hint="export the model with a single input tensor (the image batch or the feature rows).",
            )
        self._input = inputs[0].name
        self._output = self._session.get_outputs()[0].name
        self._dtype = np.float64 if inputs[0].type == "tensor(double)" else np.float32
        self._outputs = outputs
        self._mean = None if mean is None else np.asarray(mean, dtype=np.float32)
        self._std = None if std is None else np.asarray(std, dtype=np.float32)
        h = hashlib.sha256(data)
        h.update(f"|{outputs}|{input_kind}|{mean}|{std}|".encode())
        hash_texts(tuple(class_names), h)
        self._info = ModelInfo(
            name=name, task="classification", class_names=tuple(class_names), input_kind=input_kind,
            fingerprint=h.hexdigest(), device="cpu", framework="onnx", n_parameters=_count_initialisers(data),
            description=description, gradients_unavailable=NO_GRADIENTS_ONNX,
        )

    @property
    def info(self) -> ModelInfo:
        return self._info

    @property
    def input_shape(self) -> list[Any]:
        """The declared input shape (symbolic dimensions as strings or None)."""
        return list(self._session.get_inputs()[0].shape)

    def _prepare(self, x: Any) -> np.ndarray:
        arr = np.asarray(x, dtype=np.float32)
        if self.info.input_kind == "image" and self._mean is not None:
            arr = (arr - self._mean.reshape(1, -1, 1, 1)) / self._std.reshape(1, -1, 1, 1)
        return np.ascontiguousarray(arr, dtype=self._dtype)

    def _forward(self, chunk: Any) -> np.ndarray:
        out = np.asarray(self._session.run([self._output], {self._input: self._prepare(chunk)})[0], dtype=np.float64)
        if out.ndim != 2:
            out = out.reshape(len(chunk), -1)
        if self._outputs == "logits":
            out = np.exp(out - out.max(axis=1, keepdims=True))
        return out

    def predict_proba(self, x: Any, batch_size: int | None = None) -> np.ndarray:
        self._check_input(x)
        if len(x) == 0:
            return np.empty((0, len(self.class_names)))
        proba = map_batches(self._forward, np.asarray(x), self.default_batch_size if batch_size is None else batch_size,
                            owner="predict_proba")
        return proba / proba.sum(axis=1, keepdims=True)

    def layer_names(self) -> list[str]:
        return ["input"]

    def activations(self, x: Any, layer: str, batch_size: int | None = None) -> np.ndarray:
        self._check_layer(layer)
        self._check_input(x)
        return np.asarray(x, dtype=np.float32).reshape(len(x), -1)


def _count_initialisers(data: bytes) -> int:
    """Weights stored in the graph (0 when the onnx package is not installed)."""
    try:
        import onnx
    except ImportError:  # pragma: no cover - onnx is a requirement, but counting is cosmetic
        return 0
    try:
        model = onnx.load_from_string(data)
    except Exception:  # noqa: BLE001 - onnxruntime already accepted the bytes; the count is cosmetic
        return 0
    return int(sum(int(np.prod(t.dims)) for t in model.graph.initializer))
