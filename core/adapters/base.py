"""The ModelAdapter contract every page and method is written against."""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from core.errors import InputShapeError, unknown_name


@dataclass(frozen=True)
class ModelInfo:
    """What the UI's model card shows and what methods check before running.

    Attributes
    ----------
    name : str
        Display name, e.g. ``"cnn"``.
    task : str
        Always ``"classification"`` for now.
    class_names : tuple of str
    input_kind : {"image", "text", "tabular"}
    fingerprint : str
        Content hash of the weights / fitted state (see ``ModelAdapter.fingerprint``).
    device : str
        Where forward passes run (``"cpu"`` for scikit-learn).
    framework : {"torch", "sklearn"}
    n_parameters : int
        Trainable parameters (torch) or fitted coefficients / tree nodes (scikit-learn).
    description : str
    gradients_unavailable : str or None
        Why gradient methods cannot run on this model (None when they can).
    """

    name: str
    task: str
    class_names: tuple[str, ...]
    input_kind: str
    fingerprint: str
    device: str
    framework: str
    n_parameters: int
    description: str = ""
    gradients_unavailable: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class ModelAdapter(abc.ABC):
    """Uniform access to a classifier.

    Adapters are shared across sessions (``st.cache_resource``), so they hold no per-user
    state and their methods are safe to call from several threads at once.
    """

    default_batch_size: int = 64

    @property
    @abc.abstractmethod
    def info(self) -> ModelInfo: ...

    @property
    def fingerprint(self) -> str:
        return self.info.fingerprint

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.info.class_names

    @abc.abstractmethod
    def predict_proba(self, x: Any, batch_size: int | None = None) -> np.ndarray:
        """Class probabilities.

        Parameters
        ----------
        x : array-like of shape (n_samples, ...)
            In the layout of ``DataBundle.x`` for this model's input kind.
        batch_size : int, optional
            Samples per forward pass (default ``default_batch_size``).

        Returns
        -------
        ndarray of shape (n_samples, n_classes), float64, rows summing to 1.
        """

    def predict(self, x: Any, batch_size: int | None = None) -> np.ndarray:
        """Predicted class indices, ndarray of shape (n_samples,)."""
        return self.predict_proba(x, batch_size).argmax(axis=1)

    @abc.abstractmethod
    def layer_names(self) -> list[str]:
        """Names accepted by :meth:`activations`, from the input side to the output side."""

    @abc.abstractmethod
    def activations(self, x: Any, layer: str, batch_size: int | None = None) -> np.ndarray:
        """Flattened output of ``layer`` for each sample.

        Returns
        -------
        ndarray of shape (n_samples, n_units), float32, on the CPU.
        """

    def torch_module(self) -> Any | None:
        """The underlying ``torch.nn.Module``, or None when gradient methods cannot run."""
        return None

    # -- helpers shared by subclasses ------------------------------------------------------
    def _empty_activations(self, x: Any, layer: str) -> np.ndarray:
        """(0, n_units) for an empty input: the width comes from one forward pass on a blank sample."""
        blank = [""] if self.info.input_kind == "text" else np.zeros((1, *np.shape(x)[1:]), dtype=np.float32)
        return self.activations(blank, layer)[:0]

    def _check_layer(self, layer: str) -> None:
        names = self.layer_names()
        if layer not in names:
            raise unknown_name(f"layer of model {self.info.name!r}", layer, names)

    def _check_input(self, x: Any) -> None:
        kind = self.info.input_kind
        arr = np.asarray(x) if kind != "text" else None
        if kind == "image" and arr is not None and arr.ndim != 4:
            raise InputShapeError(
                f"Model {self.info.name!r} expects images of shape (n, channels, height, width); "
                f"got an array of shape {arr.shape}.",
                hint="pass a batch, e.g. x[None] for a single image.",
            )
        if kind == "tabular" and arr is not None and arr.ndim != 2:
            raise InputShapeError(
                f"Model {self.info.name!r} expects rows of shape (n, n_features); got {arr.shape}.",
                hint="pass a 2-D array, e.g. x[None] for a single row.",
            )
        if kind == "text" and (isinstance(x, str) or not all(isinstance(t, str) for t in x)):
            raise InputShapeError(
                f"Model {self.info.name!r} expects a sequence of strings; got {type(x).__name__}.",
                hint="wrap a single document in a list: [text].",
            )
