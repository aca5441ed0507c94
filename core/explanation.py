"""The explanation vocabulary shared by every modality: methods, their registry, targets, results.

- :class:`Method`: one record per explanation method, whatever it explains: its name, title,
  params dataclass (whose field specs drive forms, links and CLI flags: :mod:`core.params`), why it
  cannot run on a model (``unsupported(adapter) -> str | None``), ``run`` and whether its values
  are signed. :func:`register` / :func:`get_method` / :func:`method_names` are the one registry,
  keyed by modality (``"image"``, ``"text"``, ``"table"``) and name.
- :func:`resolve_targets`: the one way a target (``"predicted"``, ``"true"``, a class index or
  name, or one per input) becomes a class index per input.
- :class:`Attribution`: what every result offers, whatever its units (pixels, words or
  features): ``unit_values()`` of shape (n, d), the unit names, ``target``, ``method``, ``params``,
  ``signed``, ``degenerate`` and ``records(i)`` (the units by decreasing |value|, as the CLI's
  JSON prints them). :class:`core.attribution.base.ImageAttribution`,
  :class:`core.text.lime_text.TextExplanation` and :class:`FeatureAttribution` (tables) are its
  members, each sliceable like shap's ``Explanation``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar

import numpy as np

from core.errors import InputShapeError, ParameterError, unknown_name

MODALITIES = ("image", "text", "table")


# -- methods and the registry ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Method:
    """A registered explanation method.

    Attributes
    ----------
    name : str
        Registry key within its modality (also the CLI's ``--method`` value).
    title : str
        Column header in the page's grid (the lecture's names).
    params_type : type
        Frozen dataclass of the method's parameters; ``params_type()`` gives the defaults.
    run : callable
        Computes the values. Images: ``run(adapter, x, target, params, *, batch_size, progress, context)
        -> MethodResult`` with ``x`` (n, C, H, W); text: ``run(adapter, text, target, params, progress, store)
        -> TextExplanation``; tables: ``run(adapter, rows, target, params, progress, store) -> FeatureAttribution``.
    unsupported : callable
        ``unsupported(adapter) -> str | None``: why the method cannot run on this model, None when it can.
    signed : callable
        ``signed(params) -> bool``.
    output : {"logit", "probability"}
        Which model output the values explain.
    needs_gradients : bool
    description : str
    prefix : str
        Widget-key prefix of its parameters (``ig`` -> ``ig_steps``): the page form's keys, the
        deep-link names and the CLI flags (``--ig-steps``) all come from the params dataclass's
        field specs (:mod:`core.params`) with this prefix.
    order : int
        Column in the lecture's table, left to right (Original | Occlusion | Gradient | ...).
    modality : {"image", "text", "table"}
    """

    name: str
    title: str
    params_type: type
    run: Callable[..., Any]
    unsupported: Callable[..., str | None]
    signed: Callable[[Any], bool]
    output: str
    needs_gradients: bool
    description: str = ""
    prefix: str = ""
    order: int = 100
    modality: str = "image"


REGISTRY: dict[str, dict[str, Method]] = {m: {} for m in MODALITIES}
_KIND_NAMES = {"image": "attribution method", "text": "text explanation method", "table": "table explanation method"}
_LOADERS: dict[str, Callable[[], None]] = {}


def register(method: Method) -> Method:
    """Add ``method`` to the registry of its modality (a method module calls this when imported)."""
    if method.modality not in REGISTRY:
        raise unknown_name("modality", method.modality, list(MODALITIES))
    REGISTRY[method.modality][method.name] = method
    return method


def register_loader(modality: str, loader: Callable[[], None]) -> None:
    """``loader()`` imports the modules that register ``modality``'s methods (run before a lookup)."""
    _LOADERS[modality] = loader


def _load(modality: str) -> dict[str, Method]:
    if modality not in REGISTRY:
        raise unknown_name("modality", modality, list(MODALITIES))
    if modality not in _LOADERS:  # the packages register their loaders when imported
        import importlib

        importlib.import_module({"image": "core.attribution", "text": "core.text.text_methods",
                                 "table": "core.tabular.shap_tabular"}[modality])
    loader = _LOADERS.get(modality)
    if loader is not None:
        loader()
    return REGISTRY[modality]


def get_method(name: str, modality: str = "image") -> Method:
    """The registered method ``name`` of ``modality``; a clear error naming the choices otherwise."""
    methods = _load(modality)
    if name not in methods:
        raise unknown_name(_KIND_NAMES[modality], name, method_names(modality))
    return methods[name]


def method_names(modality: str = "image") -> list[str]:
    """Registered method names of ``modality`` in the lecture's column order (then by name)."""
    methods = _load(modality)
    return sorted(methods, key=lambda name: (methods[name].order, name))


def supported_methods(adapter: Any, modality: str = "image") -> dict[str, str | None]:
    """Every method of ``modality`` -> None when it can run on ``adapter``, else the reason it cannot."""
    return {name: get_method(name, modality).unsupported(adapter) or None for name in method_names(modality)}


# -- targets -------------------------------------------------------------------------------------------------
def resolve_targets(target: Any, class_names: tuple[str, ...] | list[str], n: int, *,
                    predicted: Callable[[], np.ndarray] | np.ndarray | None = None,
                    y: np.ndarray | None = None) -> np.ndarray:
    """Class index to explain per input, ndarray of shape (n,), int64: the one target resolver.

    ``target`` is ``"predicted"`` (needs ``predicted``: the predicted classes, or a function giving
    them, called only then), ``"true"`` (needs ``y``), a class index or class name applied to every
    input, or an array with one class index per input.
    """
    n_classes = len(class_names)
    choices = f"use 'predicted', 'true', a class index 0-{n_classes - 1} or a class name: {', '.join(map(str, class_names))}."
    if isinstance(target, str) and target == "predicted":
        if predicted is None:
            raise ParameterError("target='predicted' needs the model's predictions.")
        pred = predicted() if callable(predicted) else predicted
        return np.asarray(pred, dtype=np.int64).reshape(n)
    if isinstance(target, str) and target == "true":
        if y is None:
            raise ParameterError("target='true' needs the true labels, and none were given (an uploaded input has none).",
                                 hint="use target='predicted' or a class index.")
        return np.asarray(y, dtype=np.int64).reshape(n)
    if isinstance(target, str):
        if target not in class_names:
            raise ParameterError(f"Unknown target {target!r}.", hint=choices)
        return np.full(n, list(class_names).index(target), dtype=np.int64)
    if isinstance(target, (bool, np.bool_)):
        raise ParameterError(f"Unknown target {target!r}.", hint=choices)
    arr = np.asarray(target).reshape(-1)
    if arr.size == 1:
        arr = np.full(n, arr[0])
    if arr.shape != (n,) or not np.issubdtype(arr.dtype, np.integer):
        raise InputShapeError(f"target must be one class index or one per input ({n}); got {np.asarray(target)!r}.")
    if arr.min(initial=0) < 0 or arr.max(initial=0) >= n_classes:
        raise ParameterError(f"target class indices must be in 0..{n_classes - 1}; got {sorted(set(arr.tolist()))}.",
                             hint=choices)
    return arr.astype(np.int64)


# -- results ---------------------------------------------------------------------------------------------------
class Attribution:
    """What every explanation result offers, whatever it explains.

    Members define ``units`` ("pixels", "words" or "features"), ``unit_values()`` and
    ``unit_names(i)``; ``method``, ``params``, ``signed`` and ``target`` are fields of each.
    """

    units: ClassVar[str] = ""

    def unit_values(self) -> np.ndarray:  # pragma: no cover - every member overrides it
        """Value of every unit of every explained input, ndarray of shape (n, d)."""
        raise NotImplementedError

    def unit_names(self, i: int = 0) -> list[str]:  # pragma: no cover - every member overrides it
        """Names of input ``i``'s units (words, feature names, or ``"(row, col)"`` pixels)."""
        raise NotImplementedError

    @property
    def targets(self) -> np.ndarray:
        """Explained class per input, ndarray of shape (n,), int64."""
        return np.atleast_1d(np.asarray(self.target, dtype=np.int64))  # type: ignore[attr-defined]

    @property
    def degenerate(self) -> np.ndarray:
        """Boolean ndarray of shape (n,): True where an input's values rank nothing (blank, constant, non-finite).

        Pages say so beside it and trust checks leave it out of their verdicts (:mod:`core.trust.degenerate`).
        """
        from core.trust.degenerate import degenerate_rows

        return degenerate_rows(self.unit_values())

    def records(self, i: int = 0, k: int | None = None) -> list[dict[str, Any]]:
        """Input ``i``'s units as ``{"feature": name, "value": v}``, by decreasing |value| (the CLI's JSON)."""
        values = np.asarray(self.unit_values()[i], dtype=np.float64)
        names = self.unit_names(i)
        order = np.argsort(-np.abs(values), kind="stable")[:k]
        return [{"feature": str(names[j]), "value": float(values[j])} for j in order]


@dataclass(frozen=True, eq=False)
class FeatureAttribution(Attribution):
    """Attributions for ``n`` explained table rows over ``d`` features, as parallel arrays (tabular SHAP).

    Attributes
    ----------
    values : ndarray of shape (n, d), float64
        Contribution of each feature to the explained output of each row.
    base_values : ndarray of shape (n,), float64
        The output with every feature "absent" (for SHAP: the mean output over the background).
    data : ndarray of shape (n, d)
        Feature values of the explained rows.
    feature_names : tuple of str, length d
    target : ndarray of shape (n,), int
        Class index whose output is explained, per row.
    output : ndarray of shape (n,), float64
        The model's output for ``target`` on each row (a probability).
    rows : ndarray of shape (n,), int
        Indices of the explained rows in the bundle they came from.
    method : str
        E.g. ``"shap/tree"``.
    params : dict
        The parameters that produced the values (JSON-like).
    signed : bool
        True when values can be negative (diverging colour map), False for magnitudes.
    """

    values: np.ndarray
    base_values: np.ndarray
    data: np.ndarray
    feature_names: tuple[str, ...]
    target: np.ndarray
    output: np.ndarray
    rows: np.ndarray
    method: str
    params: dict[str, Any] = field(default_factory=dict)
    signed: bool = True

    def __post_init__(self) -> None:
        values = np.asarray(self.values, dtype=np.float64)
        if values.ndim != 2:
            raise InputShapeError(f"FeatureAttribution values must have shape (n, d); got {values.shape}.")
        n, d = values.shape
        object.__setattr__(self, "values", values)
        object.__setattr__(self, "feature_names", tuple(str(f) for f in self.feature_names))
        for name, dtype in (("base_values", np.float64), ("target", np.int64), ("output", np.float64), ("rows", np.int64)):
            arr = np.asarray(getattr(self, name), dtype=dtype).reshape(-1)
            if arr.shape != (n,):
                raise InputShapeError(f"FeatureAttribution {name} must have shape ({n},) to match values; got {arr.shape}.")
            object.__setattr__(self, name, arr)
        data = np.asarray(self.data)
        if data.shape != (n, d):
            raise InputShapeError(f"FeatureAttribution data must have shape ({n}, {d}) to match values; got {data.shape}.")
        object.__setattr__(self, "data", data)
        if len(self.feature_names) != d:
            raise InputShapeError(f"{len(self.feature_names)} feature names for {d} features.")

    units: ClassVar[str] = "features"

    def __len__(self) -> int:
        return len(self.values)

    def unit_values(self) -> np.ndarray:
        return self.values

    def unit_names(self, i: int = 0) -> list[str]:
        return list(self.feature_names)

    @property
    def n_features(self) -> int:
        return self.values.shape[1]

    @property
    def additivity_error(self) -> np.ndarray:
        """``base_values + values.sum(1) - output``, ndarray of shape (n,).

        Zero up to rounding for exact Shapley values (tree, exact); the efficiency axiom.
        """
        return self.base_values + self.values.sum(axis=1) - self.output

    def __getitem__(self, key: int | slice | np.ndarray | list[int]) -> "FeatureAttribution":
        """Select explained rows (positions in this object); always returns a FeatureAttribution."""
        if isinstance(key, (int, np.integer)):
            key = [int(key)]
        if isinstance(key, list):
            arr = np.asarray(key)
            key = arr if arr.dtype == bool else arr.astype(int)
        return replace(
            self,
            values=self.values[key],
            base_values=self.base_values[key],
            data=self.data[key],
            target=self.target[key],
            output=self.output[key],
            rows=self.rows[key],
        )
