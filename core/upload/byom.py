"""Uploaded scenarios: a user's model and data turned into a scenario every page can use.

``open_upload`` inspects the model file (refusing unsafe or broken ones), reads the data,
completes the spec from what the file and the data say (the user's values win), loads the
model, validates everything with a dry run on one sample, and returns an
:class:`UploadedScenario` with the same splits / TrainedModel shape as a built-in scenario.

Scenarios are named ``upload-<hash>`` by the content hash of model, data and spec, and kept in
a process-wide registry, so the same upload is loaded once, whichever session sent it. Which
uploads a session *sees* is the UI's business (``components.state`` keeps the names per
session): a name only reaches a session that uploaded those exact bytes.

``launch`` (and ``python -m core serve``) starts the app with one such scenario preloaded.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from core.bundle import DataBundle
from core.upload.boosters import BOOSTER_FORMATS
from core.upload.data_upload import (LoadedData, load_image_zip, load_pasted_text, load_single_image, load_table,
                              load_text_csv)
from core.errors import InputShapeError
from core.fingerprint import hash_json
from core.upload.model_upload import (Inspection, ModelRefusedError, ModelSpecification, dry_run, infer_outputs,
                               inspect_model, load_model_file, output_width, read_model)
from core.progress import ProgressCallback, report
from core.scenarios import ModelSpec, ScenarioSpec, TrainedModel

PREFIX = "upload-"
PRELOAD_ENV = "TRUSTLENS_PRELOAD"
# The Streamlit entry point the server runs (the repository root, two folders above core/upload/).
APP = Path(__file__).resolve().parents[2] / "app.py"
DATA_KINDS = ("image_zip", "image", "text_csv", "pasted_text", "table")
MODEL_NAME = "uploaded"


@dataclass(frozen=True)
class DataSource:
    """Where the data comes from and how to read it.

    Attributes
    ----------
    kind : {"image_zip", "image", "text_csv", "pasted_text", "table"}
    data : bytes
        File content (UTF-8 text for ``pasted_text``).
    filename : str
    text_column, label_column : str, optional
        For ``text_csv``.
    target : str, optional
        For ``table``: the label column (None: unlabelled rows).
    """

    kind: str
    data: bytes
    filename: str = "data"
    text_column: str | None = None
    label_column: str | None = None
    target: str | None = "target"

    def __post_init__(self) -> None:
        if self.kind not in DATA_KINDS:
            raise InputShapeError(f"Unknown data kind {self.kind!r}.", hint=f"use one of: {', '.join(DATA_KINDS)}.")

    @classmethod
    def from_path(cls, path: str | os.PathLike[str], **options: Any) -> "DataSource":
        """Guess the kind from the file name: .zip, image suffixes, .parquet, .csv (``options['kind']`` wins)."""
        path = Path(path)
        if not path.is_file():
            raise InputShapeError(f"Data file {str(path)!r} does not exist.", hint="give the path to a ZIP, image, CSV or Parquet file.")
        suffix = path.suffix.lower()
        kind = options.pop("kind", None) or (
            "image_zip" if suffix == ".zip" else "image" if suffix in (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")
            else "table" if suffix == ".parquet" else "text_csv" if options.get("text_column") else "table")
        return cls(kind=kind, data=path.read_bytes(), filename=path.name, **options)

    def fingerprint(self) -> str:
        h = hashlib.sha256(self.data)
        h.update(json.dumps([self.kind, self.filename, self.text_column, self.label_column, self.target]).encode())
        return h.hexdigest()


@dataclass(frozen=True)
class UploadedScenario:
    """A user's model and data as a scenario (same shapes as a built-in one)."""

    name: str
    spec: ScenarioSpec
    model_spec: ModelSpecification
    splits: dict[str, DataBundle]
    trained: TrainedModel
    inspection: Inspection
    labelled: bool
    n_samples: int
    notes: tuple[str, ...] = field(default_factory=tuple)

    def summary(self) -> dict[str, Any]:
        info = self.trained.adapter.info
        return {"scenario": self.name, "title": self.spec.title, "format": self.inspection.format,
                "spec": self.model_spec.to_json(), "n_samples": self.n_samples, "labelled": self.labelled,
                "accuracy": self.trained.metrics.get("test_accuracy"), "gradients_unavailable": info.gradients_unavailable,
                "notes": list(self.notes)}

    def methods(self) -> dict[str, str | None]:
        """Every explanation method of this modality -> None when the pages offer it, else why not.

        Images: the attribution registry; text: LIME, occlusion, gradient x embedding, SHAP;
        tables: SHAP's algorithms (``shap/tree``, ``shap/exact``, ...), as the pages resolve them.
        """
        adapter = self.trained.adapter
        if self.spec.kind == "image":
            from core.attribution import supported_methods

            return dict(supported_methods(adapter))
        if self.spec.kind == "text":
            from core.text.text_methods import supported_methods as text_methods

            return {name: reason or None for name, reason in text_methods(adapter).items()}
        from core.errors import ParameterError
        from core.tabular.shap_tabular import ALGORITHMS, resolve_algorithm

        out: dict[str, str | None] = {}
        for algorithm in ALGORITHMS[1:]:  # "auto" resolves to one of the others
            try:
                resolve_algorithm(adapter, int(self.model_spec.n_features or 0), algorithm)
                out[f"shap/{algorithm}"] = None
            except ParameterError as exc:
                out[f"shap/{algorithm}"] = exc.message
        return out

    def report(self) -> dict[str, Any]:
        """What the dry run found, for a person or a script: :meth:`summary` plus the class names and
        the methods offered (``methods_offered``) and refused with their reasons (``methods_refused``)."""
        methods = self.methods()
        summary = self.summary()
        if not self.labelled:
            summary["accuracy"] = None  # NaN in the metrics; JSON has no NaN
        return {**summary, "format_title": self.inspection.format_title,
                "class_names": list(self.model_spec.class_names),
                "methods_offered": [name for name, reason in methods.items() if reason is None],
                "methods_refused": {name: reason for name, reason in methods.items() if reason is not None},
                "refused": None}


MAX_REGISTERED = 16  # uploads kept in memory; the oldest is dropped (its sessions fall back to the default)
_registry: "OrderedDict[str, UploadedScenario]" = OrderedDict()
_lock = threading.Lock()


def is_upload(name: str) -> bool:
    return isinstance(name, str) and name.startswith(PREFIX)


def get(name: str) -> UploadedScenario:
    """The registered upload ``name``; a clear error when this process no longer has it."""
    with _lock:
        found = _registry.get(name)
        if found is not None:
            _registry.move_to_end(name)
    if found is None:
        raise InputShapeError(f"The uploaded scenario {name!r} is not loaded in this server (it was restarted?).",
                              hint="upload the model and data again on the 'Your model' page.")
    return found


def registered(name: str) -> bool:
    with _lock:
        return name in _registry


def forget(name: str | None = None) -> None:
    """Drop one upload (or all, for tests)."""
    with _lock:
        if name is None:
            _registry.clear()
        else:
            _registry.pop(name, None)


def _load_data(source: DataSource, shape: tuple[int, int, int] | None, class_names: tuple[str, ...] | None,
               feature_names: tuple[str, ...] | None, raw_columns: bool = False) -> LoadedData:
    if source.kind == "image_zip":
        return load_image_zip(source.data, shape, source.filename, class_names)
    if source.kind == "image":
        return load_single_image(source.data, shape, source.filename, class_names)
    if source.kind == "text_csv":
        return load_text_csv(source.data, source.filename, source.text_column, source.label_column, class_names)
    if source.kind == "pasted_text":
        return load_pasted_text(source.data.decode("utf-8", errors="replace"), class_names)
    return load_table(source.data, source.filename, source.target, feature_names, class_names, raw_columns)


def _booster_columns(source: DataSource, model_names: tuple[str, ...]) -> tuple[str, ...]:
    """The table's columns for a booster's features, in the booster's order (LightGBM stores ``mean_radius``
    for a column ``mean radius``): core/upload/boosters.py, ``match_columns``."""
    from core.upload.boosters import BoosterRefused, match_columns
    from core.upload.data_upload import read_table

    frame, _ = read_table(source.data, source.filename)
    try:
        return tuple(match_columns(list(model_names), [str(c) for c in frame.columns], source.target, source.filename))
    except BoosterRefused as exc:
        raise InputShapeError(str(exc), hint="upload the table the booster was trained on, with its feature columns "
                              "named as in training.") from None


def _data_kind(source: DataSource) -> str:
    return {"image_zip": "image", "image": "image", "text_csv": "text", "pasted_text": "text", "table": "tabular"}[source.kind]


def open_upload(
    model: bytes,
    model_filename: str,
    source: DataSource,
    overrides: dict[str, Any] | None = None,
    *,
    allow_pickle: bool | None = None,
    confirm_pickle: bool = False,
    trusted_types: tuple[str, ...] | list[str] = (),
    progress: ProgressCallback | None = None,
) -> UploadedScenario:
    """Validate and register a user's model + data as a scenario (cached by content hash).

    Parameters
    ----------
    overrides : dict, optional
        Spec fields the user set (see :class:`ModelSpecification`); the rest is inferred from the
        model file and the data. ``outputs`` absent means: detected from one dry run.

    Raises
    ------
    ModelRefusedError
        Unknown, broken or unsafe model file.
    InputShapeError
        Bad data, or a model / data / spec mismatch (the dry run's message names the shapes).
    """
    overrides = {k: v for k, v in (overrides or {}).items() if v not in (None, "", [], ())}
    key = hash_json({"model": hashlib.sha256(model).hexdigest(), "data": source.fingerprint(), "spec": overrides,
                     "trusted": sorted(trusted_types), "pickle": bool(confirm_pickle)})
    name = PREFIX + key[:12]
    with _lock:
        if name in _registry:
            return _registry[name]
    report(progress, 0.05, "inspecting the model file")
    inspection = inspect_model(model, model_filename, allow_pickle=allow_pickle, trusted_types=tuple(trusted_types))
    if inspection.refused:
        raise ModelRefusedError(inspection.refused)
    inferred = dict(inspection.inferred)
    # A TorchScript archive declares no input shape: its first weight is only a guess (a Linear-first
    # model may flatten images), so the data decides there; other formats declare their input.
    declared = inferred.get("input_kind") if inspection.format != "torchscript" else None
    kind = overrides.get("input_kind") or declared or _data_kind(source)
    if kind != _data_kind(source):
        raise InputShapeError(f"The model takes {kind} input but the data is {_data_kind(source)} ({source.filename!r}).",
                              hint=f"upload {kind} data, or correct the input kind in the spec.")
    given_names = tuple(overrides.get("class_names") or ()) or tuple(inferred.get("class_names") or ())
    shape = None
    if kind == "image":
        c = overrides.get("channels") or inferred.get("channels")
        h = overrides.get("height") or inferred.get("height")
        w = overrides.get("width") or inferred.get("width")
        shape = (int(c), int(h), int(w)) if c and h and w else None
    report(progress, 0.2, f"reading {source.filename}")
    feature_names = tuple(inferred["feature_names"]) if inferred.get("feature_names") else None
    # A scikit-learn model fitted on a DataFrame takes its columns as they are (text, missing values: its own
    # pipeline encodes and imputes them); any other model takes filled numbers.
    raw_columns = kind == "tabular" and feature_names is not None and inspection.format in ("skops", "pickle")
    if feature_names is not None and inspection.format in BOOSTER_FORMATS and source.kind == "table":
        feature_names = _booster_columns(source, feature_names)
    try:
        loaded = _load_data(source, shape, given_names or None, feature_names, raw_columns)
    except InputShapeError as exc:
        if inspection.format in BOOSTER_FORMATS and "missing (NaN)" in exc.message:
            # The boosters take missing values themselves, but several pages use the table outside the model (PCA of
            # the input, the uncertainty page's feature noise, slices), which do not take them yet.
            raise InputShapeError(exc.message, hint="fill them in or drop those rows. The booster itself would take "
                                  "missing values, but TrustLens does not pass them to boosters yet.") from None
        raise
    if kind == "image" and shape is None and any(overrides.get(k) or inferred.get(k) for k in ("channels", "height", "width")):
        # Some dimensions given, the rest from the first image: read again at the completed size.
        native = loaded.bundle.x.shape[1:]
        shape = tuple(int(overrides.get(k) or inferred.get(k) or n) for k, n in zip(("channels", "height", "width"), native))
        loaded = _load_data(source, shape, given_names or None, feature_names)
    bundle = loaded.bundle
    notes = list(inspection.notes) + list(loaded.notes)
    class_names = given_names or (bundle.class_names if loaded.labelled else ())
    n_classes = inferred.get("n_classes")
    if not class_names:
        if not n_classes:
            raise InputShapeError("TrustLens cannot tell the model's classes: the data has no labels and the model file "
                                  "does not name them.", hint="give the class names (one per model output).")
        class_names = tuple(f"class {i}" for i in range(n_classes))
        notes.append(f"Class names were not given: the {n_classes} outputs are called 'class 0'...")
    if loaded.labelled and not given_names and not loaded.index_labels and len(class_names) == 1:
        raise InputShapeError(
            f"The data has one class only ({class_names[0]!r}), so it cannot name the model's classes"
            + (f" (the model has {n_classes} outputs)." if n_classes else "."),
            hint="give the class names in the model's output order (a text or JSON file, or the class-names field).")
    spec_values: dict[str, Any] = {"input_kind": kind, "class_names": class_names}
    if kind == "image":
        spec_values.update(channels=int(bundle.x.shape[1]), height=int(bundle.x.shape[2]), width=int(bundle.x.shape[3]))
    if kind == "tabular":
        spec_values["n_features"] = int(bundle.x.shape[1])
    for field_name in ("mean", "std", "outputs"):
        if field_name in overrides:
            spec_values[field_name] = overrides[field_name]
        elif field_name in inferred:
            spec_values[field_name] = inferred[field_name]
    spec = ModelSpecification(**spec_values)
    report(progress, 0.4, "loading the model")
    adapter = load_model_file(model, model_filename, spec, allow_pickle=allow_pickle, confirm_pickle=confirm_pickle,
                              trusted_types=trusted_types, name=MODEL_NAME)
    if raw_columns:
        from core.upload.raw_columns import unseen_categories

        adapter = adapter.with_columns(feature_names, loaded.categories or {})
        for unseen in unseen_categories(adapter.estimator, loaded.categories or {}):
            if unseen.handle_unknown == "error":
                raise InputShapeError(f"{source.filename!r}: {unseen.text}.",
                                      hint="drop those rows, or fit the pipeline with handle_unknown='ignore'.")
            notes.append(unseen.text[:1].upper() + unseen.text[1:] + ".")
    if loaded.index_labels and not given_names:
        # Integer folders are output indices: the model's output width says how many classes there are.
        report(progress, 0.45, "measuring the model's output width")
        bundle, class_names, note = index_classes(bundle, output_width(adapter, bundle.x[:1], spec), source.filename)
        notes.append(note)
        if tuple(class_names) != spec.class_names:
            spec = ModelSpecification(**{**spec.to_json(), "class_names": tuple(class_names)})
            adapter = load_model_file(model, model_filename, spec, allow_pickle=allow_pickle,
                                      confirm_pickle=confirm_pickle, trusted_types=trusted_types, name=MODEL_NAME)
    # A Hugging Face *ForSequenceClassification or *ForImageClassification returns logits by construction: nothing
    # to detect.
    if "outputs" not in overrides and inspection.format not in ("skops", "pickle", "transformers"):
        detected = _detect_outputs(adapter, bundle, spec)
        if detected != spec.outputs:
            spec = ModelSpecification(**{**spec.to_json(), "outputs": detected})
            adapter = load_model_file(model, model_filename, spec, allow_pickle=allow_pickle,
                                      confirm_pickle=confirm_pickle, trusted_types=trusted_types, name=MODEL_NAME)
        notes.append(f"Outputs detected as {detected} from a dry run (change it in the spec if wrong).")
    report(progress, 0.55, "dry run on one sample")
    dry_run(adapter, bundle.x[:1], spec)
    report(progress, 0.7, "predicting the data")
    try:
        proba = adapter.predict_proba(bundle.x, batch_size=64)
    except (InputShapeError, ModelRefusedError):
        raise
    except Exception as exc:  # noqa: BLE001 - a model that fails on some sample must become a message
        gaps = [str(n) for j, n in enumerate(bundle.feature_names or ()) if np.isnan(bundle.x[:, j]).any()] \
            if raw_columns else []
        raise InputShapeError(f"The model raised {type(exc).__name__} while predicting the data: {str(exc)[:300]}",
                              hint=(f"columns with missing values: {', '.join(gaps)}; a pipeline without an imputer "
                                    "cannot take them: fill them in or drop those rows." if gaps else
                                    "the dry run passed on the first sample: check the other samples' size and "
                                    "values.")) from None
    if not loaded.labelled:
        # No true labels: the pages' 'true class' falls back to the prediction, and say so.
        bundle = DataBundle(kind=bundle.kind, x=bundle.x, y=proba.argmax(axis=1), class_names=tuple(class_names),
                            feature_names=bundle.feature_names, name=bundle.name, display=bundle.display)
    elif bundle.class_names != tuple(class_names):
        bundle = DataBundle(kind=bundle.kind, x=bundle.x, y=bundle.y, class_names=tuple(class_names),
                            feature_names=bundle.feature_names, name=bundle.name, display=bundle.display)
    splits = _splits(bundle)
    positions = split_positions(len(bundle))
    metrics = {"train_seconds": 0.0, **{f"{split}_accuracy": _accuracy(proba, bundle.y, positions[split], loaded.labelled)
                                        for split in ("train", "val", "test")},
               "n_train": len(splits["train"]), "n_test": len(splits["test"])}
    title = f"Your model: {model_filename} + {source.filename}"
    framework = adapter.info.framework
    mspec = ModelSpec(MODEL_NAME, framework, "upload", f"{inspection.format_title} ({model_filename})",
                      {"sha256": inspection.sha256})
    scenario = ScenarioSpec(name=name, title=title, kind=kind, dataset=name, class_names=tuple(class_names),
                            description=f"Uploaded {inspection.format_title} on {len(bundle)} samples of {source.filename}"
                            + ("" if loaded.labelled else " (no labels: the model's predictions stand in for them)"),
                            models=(mspec,))
    trained = TrainedModel(name, None, mspec, adapter, metrics, False, name)
    uploaded = UploadedScenario(name, scenario, spec, splits, trained, inspection, loaded.labelled, len(bundle),
                                tuple(notes))
    report(progress, 1.0, "ready")
    with _lock:
        kept = _registry.setdefault(name, uploaded)
        _registry.move_to_end(name)
        while len(_registry) > MAX_REGISTERED:
            _registry.popitem(last=False)
        return kept


def index_classes(bundle: DataBundle, n_outputs: int, filename: str = "data") -> tuple[DataBundle, tuple[str, ...], str]:
    """Class names for labels read from integer folders, given the model's output width.

    Folders ``0``..``k-1`` are output indices, whichever occur: the class names are ``"0"`` ..
    ``str(n_outputs - 1)``. When a folder number is ``n_outputs`` or more and there are exactly
    ``n_outputs`` folders (e.g. ``1``..``10`` for 10 outputs), they are names, in numeric order.

    Returns
    -------
    (bundle with its labels and class names set, class names, a note saying how they were read)

    Raises
    ------
    InputShapeError
        When the folders can be neither output indices nor the model's classes.
    """
    y = np.asarray(bundle.y, dtype=np.int64)
    present = np.unique(y)
    top = int(present[-1])
    if top < n_outputs:
        names = tuple(str(i) for i in range(n_outputs))
        missing = sorted(set(range(n_outputs)) - set(present.tolist()))
        note = (f"Integer folders are the model's output indices: class names '0'..'{n_outputs - 1}' from its "
                f"{n_outputs} outputs" + (f"; no images of {', '.join(map(str, missing[:10]))}"
                                          f"{'...' if len(missing) > 10 else ''}." if missing else "."))
    elif len(present) == n_outputs:
        names = tuple(str(int(v)) for v in present)
        y = np.searchsorted(present, y).astype(np.int64)
        note = (f"Folder {top} is not an output index of a model with {n_outputs} outputs, so the {n_outputs} folders "
                f"are its classes in numeric order ({names[0]} -> output 0, ..., {names[-1]} -> output {n_outputs - 1}).")
    else:
        raise InputShapeError(
            f"{filename!r}: the folder {str(top)!r} would be output index {top}, but the model returns {n_outputs} scores "
            f"per sample (indices 0..{n_outputs - 1}); and its {len(present)} integer folders are not {n_outputs} "
            "classes either.",
            hint=f"name the folders 0..{n_outputs - 1} after the model's outputs, or give the class names in the model's "
                 "output order (a text or JSON file, or the class-names field).")
    out = DataBundle(kind=bundle.kind, x=bundle.x, y=y, class_names=names, feature_names=bundle.feature_names,
                     name=bundle.name, display=bundle.display)
    return out, names, note


def _detect_outputs(adapter: Any, bundle: DataBundle, spec: ModelSpecification) -> str:
    """'probabilities' when the raw outputs on a few samples are non-negative rows summing to 1."""
    from core.adapters.onnx_adapter import OnnxAdapter
    from core.adapters.torch_adapter import TorchAdapter

    sample = bundle.x[: min(len(bundle), 8)]
    try:
        if isinstance(adapter, TorchAdapter):
            import torch

            with torch.inference_mode():
                raw = adapter.torch_module()(adapter.to_tensor(sample)).float().cpu().numpy()
        elif isinstance(adapter, OnnxAdapter):
            raw = adapter._session.run([adapter._output], {adapter._input: adapter._prepare(sample)})[0]
        else:
            return spec.outputs
    except Exception:  # noqa: BLE001 - the dry run right after reports the failure with shapes
        return spec.outputs
    return infer_outputs(np.asarray(raw).reshape(len(sample), -1))


def _splits(bundle: DataBundle) -> dict[str, DataBundle]:
    """A fixed, disjoint 20 / 20 / 60 % train / val / test split of the uploaded samples (seed 0).

    Nothing is trained on "train": it is the reference set (SHAP backgrounds, the image context,
    the embeddings' extra points); "val" fits the recalibrators, "test" is what pages explain. Each
    split is a split of its own (its ``index`` counts from 0, as the built-in splits' do);
    ``split_positions`` says where its rows sit in the uploaded data.
    """
    return {split: _own_split(bundle[positions]) for split, positions in split_positions(len(bundle)).items()}


def split_positions(n: int) -> dict[str, np.ndarray]:
    """Row positions of the train / val / test splits of ``n`` uploaded samples (all three = everything below 5)."""
    if n < 5:
        everything = np.arange(n)
        return {"train": everything, "val": everything, "test": everything}
    order = np.random.RandomState(0).permutation(n)
    k = max(1, int(round(0.2 * n)))
    return {"train": np.sort(order[:k]), "val": np.sort(order[k:2 * k]), "test": np.sort(order[2 * k:])}


def _own_split(part: DataBundle) -> DataBundle:
    from dataclasses import replace

    display = None if part.display is None else part.display.reset_index(drop=True)
    return replace(part, index=np.arange(len(part)), display=display)


def _accuracy(proba: np.ndarray, y: np.ndarray, positions: np.ndarray, labelled: bool) -> float:
    if not labelled:
        return float("nan")
    return float(np.mean(proba[positions].argmax(axis=1) == y[positions]))


# -- launching ---------------------------------------------------------------------------------------
def preload_document(model_path: str, data_path: str, spec_path: str | None = None, **data_options: Any) -> dict[str, Any]:
    """What ``serve`` hands to the app (paths resolved, spec read): JSON for ``TRUSTLENS_PRELOAD``."""
    model = Path(model_path).expanduser().resolve()
    data = Path(data_path).expanduser().resolve()
    for label, path in (("model", model), ("data", data)):
        if not path.is_file() and not (label == "model" and path.is_dir()):  # a Hugging Face save_pretrained folder
            raise InputShapeError(f"The {label} file {str(path)!r} does not exist.", hint=f"give the path to your {label} file.")
    overrides: dict[str, Any] = {}
    if spec_path:
        spec_file = Path(spec_path).expanduser()
        if not spec_file.is_file():
            raise InputShapeError(f"The spec file {str(spec_file)!r} does not exist.")
        overrides = _spec_overrides(spec_file.read_text(encoding="utf-8"))
    return {"model": str(model), "data": str(data), "spec": overrides, "data_options": data_options}


def _spec_overrides(text: str) -> dict[str, Any]:
    """The fields a spec file sets (validated against ModelSpecification, unknown keys refused)."""
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputShapeError(f"The spec file is not valid JSON ({exc}).",
                              hint='write e.g. {"class_names": ["cat", "dog"], "mean": [0.5], "std": [0.5]}.') from None
    if not isinstance(document, dict):
        raise InputShapeError(f"The spec file must hold a JSON object; got {type(document).__name__}.")
    data_keys = {"text_column", "label_column", "target"}
    ModelSpecification.from_json({k: v for k, v in document.items() if k not in data_keys})  # validates
    return document


def _source_and_spec(document: dict[str, Any]) -> tuple[DataSource, dict[str, Any]]:
    """A ``preload_document``'s data source and spec overrides (the spec file's data keys go to the source)."""
    spec = dict(document.get("spec") or {})
    options = {k: spec.pop(k) for k in ("text_column", "label_column", "target") if k in spec}
    options.update(document.get("data_options") or {})
    return DataSource.from_path(document["data"], **options), spec


def open_files(model_path: str, data_path: str, spec_path: str | None = None, *, allow_pickle: bool = False,
               trusted_types: tuple[str, ...] | list[str] = (), progress: ProgressCallback | None = None,
               **data_options: Any) -> UploadedScenario:
    """The upload page's dry run on files (``python -m core inspect-model MODEL --data DATA``).

    The same :func:`open_upload` as the page's button, with the same refusals: a pickle-based file
    only with ``allow_pickle`` (the server opt-in and the file's confirmation in one), skops types
    outside the trusted set only when listed in ``trusted_types``. Unlike :func:`open_preloaded`
    (``serve``), nothing is trusted implicitly.
    """
    document = preload_document(model_path, data_path, spec_path, **data_options)
    source, spec = _source_and_spec(document)
    model, name = read_model(document["model"])
    return open_upload(model, name, source, spec, allow_pickle=allow_pickle,
                       confirm_pickle=allow_pickle, trusted_types=trusted_types, progress=progress)


def open_preloaded(document: dict[str, Any], progress: ProgressCallback | None = None) -> UploadedScenario:
    """Open the scenario named by a ``preload_document`` (pickle allowed: the launcher chose the file)."""
    source, spec = _source_and_spec(document)
    model_path = Path(document["model"])
    model, name = read_model(model_path)
    return open_upload(model, name, source, spec, allow_pickle=True, confirm_pickle=True,
                       trusted_types=_all_untrusted(model_path), progress=progress)


def _all_untrusted(model_path: Path) -> tuple[str, ...]:
    """A skops file's untrusted types: accepted when the launcher passes their own file on the command line."""
    if model_path.suffix.lower() != ".skops":
        return ()
    try:
        import skops.io as sio

        return tuple(sio.get_untrusted_types(file=str(model_path)))
    except Exception:  # noqa: BLE001 - a broken file is reported by open_upload itself
        return ()


def launch(model: str, data: str, spec: str | None = None, *, port: int = 8501, address: str = "127.0.0.1",
           block: bool = False, **data_options: Any) -> subprocess.Popen[bytes]:
    """Start the TrustLens app with ``model`` + ``data`` preloaded as the default scenario.

    From a notebook: ``proc = launch("cnn.pt", "images.zip")``, open ``http://127.0.0.1:8501``,
    later ``proc.terminate()``. The files are checked first (the same dry run as an upload), so a
    mistake is reported here, not in the browser. ``block=True`` (the ``serve`` verb) replaces
    this process by the server instead of returning.
    """
    document = preload_document(model, data, spec, **data_options)
    open_preloaded(document)  # fail fast, in the caller's terminal
    app = APP
    env = {**os.environ, PRELOAD_ENV: json.dumps(document)}
    command = [sys.executable, "-m", "streamlit", "run", str(app), "--server.headless", "true", "--server.port", str(port),
               "--server.address", address, "--browser.gatherUsageStats", "false"]
    if block:
        # The CLI (`serve`) becomes the server: stopping its PID stops the server, no orphan left.
        os.chdir(app.parent)
        os.execve(sys.executable, command, env)
    return subprocess.Popen(command, env=env, cwd=str(app.parent))


def preloaded_from_environment() -> UploadedScenario | None:
    """The scenario named by ``TRUSTLENS_PRELOAD`` (set by ``serve`` / ``launch``), or None."""
    raw = os.environ.get(PRELOAD_ENV)
    if not raw:
        return None
    return open_preloaded(json.loads(raw))
