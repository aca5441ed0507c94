"""Bring your own model: recognise a model file, infer its spec, refuse what is unsafe, load the rest.

Formats taken without running any code from the file:

- ``torchscript``: TorchScript archives (``.pt`` / ``.pth``, ``torch.jit.save``), read by
  ``torch.jit.load``, whose unpickler only builds tensors and TorchScript objects;
- ``torch_export``: ``torch.export.save`` programs (``.pt2``);
- ``onnx``: ONNX graphs, run with onnxruntime (forward passes only: no gradient methods);
- ``skops``: scikit-learn models and pipelines saved with skops (``.skops``); every type the
  file needs beyond skops' trusted defaults is listed and must be accepted by the user;
- ``xgboost`` / ``lightgbm`` / ``catboost``: gradient-boosted trees in their libraries' own files
  (XGBoost's ``.json`` / ``.ubj``, LightGBM's ``.txt``, CatBoost's ``.cbm``), read first in a child
  process (core/upload/boosters.py);
- ``transformers``: a Hugging Face ``*ForSequenceClassification`` text classifier or
  ``*ForImageClassification`` image classifier (ViT, with its ``preprocessor_config.json``), as a ZIP of its
  ``save_pretrained`` folder with safetensors weights, unpacked into a temporary folder within bounds
  and loaded offline without remote code (core/upload/transformers_zip.py).

Pickle-based files (a full ``torch.save`` of a module, joblib, pickle) can run arbitrary code
while loading. They are refused, unless the server was started with ``TRUSTLENS_ALLOW_PICKLE=1``
*and* the caller confirms this one file (``confirm_pickle=True``). ``python -m core serve`` is
the exception: the person launching trusts their own file.

Detection reads bytes only (magic numbers and ZIP member names); nothing is unpickled to find
out what a file is. Every failure is a :class:`ModelRefusedError` naming the file, what was
found, what was expected and what to try.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import zipfile
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from core.adapters.base import ModelAdapter
from core.errors import InputShapeError, TrustLensError
from core.upload.boosters import BOOSTER_FORMATS, TITLES as BOOSTER_TITLES  # stdlib only: cheap to import

ALLOW_PICKLE_ENV = "TRUSTLENS_ALLOW_PICKLE"
MAX_MODEL_BYTES = 512 * 1024 * 1024

FORMAT_TITLES = {
    "torchscript": "TorchScript archive",
    "torch_export": "torch.export program",
    "onnx": "ONNX model",
    "skops": "scikit-learn model (skops)",
    **BOOSTER_TITLES,
    "transformers": "Hugging Face classifier (zip of a save_pretrained folder)",
    "torch_pickle": "torch.save pickle (full module or state dict)",
    "pickle": "pickle / joblib file",
}
PICKLE_FORMATS = ("torch_pickle", "pickle")
SAFE_FORMATS = ("torchscript", "torch_export", "onnx", "skops", *BOOSTER_FORMATS, "transformers")
INPUT_KINDS = ("image", "text", "tabular")
_PICKLE_SUFFIXES = (".pkl", ".pickle", ".joblib", ".sav", ".dill")
_SUFFIXES = {".pt": "TorchScript", ".pth": "TorchScript", ".pt2": "torch.export", ".onnx": "ONNX", ".skops": "skops",
             ".ubj": "XGBoost", ".json": "XGBoost", ".txt": "LightGBM", ".cbm": "CatBoost",
             ".zip": "ZIP (a Hugging Face save_pretrained folder)"}


class ModelRefusedError(TrustLensError):
    """A model file TrustLens will not load: unknown, broken, or unsafe without an explicit opt-in."""


def pickle_allowed_by_server() -> bool:
    """True when the person running the server opted in to pickle-based model files."""
    return os.environ.get(ALLOW_PICKLE_ENV, "").strip().lower() in {"1", "true", "yes"}


# -- the model spec --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ModelSpecification:
    """What TrustLens needs to know to feed a model and read its output.

    Attributes
    ----------
    input_kind : {"image", "text", "tabular"}
    channels, height, width : int or None
        Image input size (images are resized to it and converted to this many channels).
    mean, std : tuple of float
        Per-channel normalisation the model expects, applied inside the adapter to images in
        [0, 1] (length 1 or ``channels``); explanations stay in pixel space.
    outputs : {"logits", "probabilities"}
        What the model returns (logits are soft-maxed).
    class_names : tuple of str
        One name per model output.
    n_features : int or None
        Table width for tabular models.
    """

    input_kind: str = "image"
    channels: int | None = None
    height: int | None = None
    width: int | None = None
    mean: tuple[float, ...] = (0.0,)
    std: tuple[float, ...] = (1.0,)
    outputs: str = "logits"
    class_names: tuple[str, ...] = ()
    n_features: int | None = None

    def __post_init__(self) -> None:
        if self.input_kind not in INPUT_KINDS:
            raise InputShapeError(f"The spec's input kind must be one of {INPUT_KINDS}; got {self.input_kind!r}.")
        if self.outputs not in ("logits", "probabilities"):
            raise InputShapeError(f"The spec's outputs must be 'logits' or 'probabilities'; got {self.outputs!r}.")
        for name in ("channels", "height", "width", "n_features"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1):
                raise InputShapeError(f"The spec's {name} must be a positive integer; got {value!r}.")
        mean = tuple(float(m) for m in np.atleast_1d(self.mean))
        std = tuple(float(s) for s in np.atleast_1d(self.std))
        if len(mean) != len(std):
            raise InputShapeError(f"The spec has {len(mean)} mean values but {len(std)} std values.",
                                  hint="give one of each per channel, or one of each for all channels.")
        if any(s <= 0 or not np.isfinite(s) for s in std) or not all(np.isfinite(mean)):
            raise InputShapeError(f"The spec's std must be positive and finite and its mean finite; got mean {mean}, "
                                  f"std {std}.")
        if self.channels and len(mean) not in (1, self.channels):
            raise InputShapeError(f"The spec has {len(mean)} mean / std values for {self.channels} channels.",
                                  hint="give one value per channel, or a single value for all.")
        object.__setattr__(self, "mean", mean)
        object.__setattr__(self, "std", std)
        object.__setattr__(self, "class_names", tuple(str(c) for c in self.class_names))
        if len(set(self.class_names)) != len(self.class_names):
            raise InputShapeError(f"Class names must be unique; got {list(self.class_names)}.")

    @property
    def image_shape(self) -> tuple[int, int, int] | None:
        if self.input_kind != "image" or not (self.channels and self.height and self.width):
            return None
        return (int(self.channels), int(self.height), int(self.width))

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, document: dict[str, Any] | str) -> "ModelSpecification":
        """Build from a dict or JSON text (a ``--spec`` file); unknown keys are an error naming them."""
        if isinstance(document, (str, bytes)):
            try:
                document = json.loads(document)
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                raise InputShapeError(f"The spec is not valid JSON ({exc}).",
                                      hint='write e.g. {"input_kind": "image", "class_names": ["cat", "dog"]}.') from None
        if not isinstance(document, dict):
            raise InputShapeError(f"The spec must be a JSON object; got {type(document).__name__}.")
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(document) - known)
        if unknown:
            raise InputShapeError(f"Unknown spec field(s): {', '.join(unknown)}.", hint=f"use: {', '.join(sorted(known))}.")
        values = dict(document)
        for key in ("mean", "std", "class_names"):
            if key in values:
                values[key] = tuple(np.atleast_1d(values[key]).tolist()) if key != "class_names" else tuple(values[key])
        return cls(**values)

    def merged(self, **changes: Any) -> "ModelSpecification":
        return replace(self, **{k: v for k, v in changes.items() if v is not None})


# -- detection ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Inspection:
    """What ``inspect_model`` found: the format, a partial spec and, when refused, why.

    ``refused`` is None for a file that can be loaded now (possibly after accepting
    ``untrusted_types`` or confirming a pickle).
    """

    filename: str
    size: int
    sha256: str
    format: str | None
    refused: str | None
    inferred: dict[str, Any] = field(default_factory=dict)
    untrusted_types: tuple[str, ...] = ()
    needs_pickle_confirmation: bool = False
    notes: tuple[str, ...] = ()

    @property
    def format_title(self) -> str:
        return FORMAT_TITLES.get(self.format or "", "unknown")

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["format_title"] = self.format_title
        out["untrusted_types"] = list(self.untrusted_types)
        out["notes"] = list(self.notes)
        return out


def _suffix(filename: str) -> str:
    return os.path.splitext(filename.lower())[1]


def _refuse(filename: str, what: str, hint: str) -> ModelRefusedError:
    return ModelRefusedError(f"{filename!r}: {what}", hint=hint)


def detect_format(data: bytes, filename: str = "model") -> str:
    """The file's format from its bytes (magic numbers, ZIP member names), never by loading it.

    Raises
    ------
    ModelRefusedError
        Empty, too large, truncated or unrecognised files, with what was found and expected.
    """
    suffix = _suffix(filename)
    supported = ("TorchScript (.pt/.pth via torch.jit.save), torch.export (.pt2), ONNX (.onnx), skops (.skops), "
                 "an XGBoost booster (.json / .ubj via save_model), a LightGBM booster (.txt via save_model) or a "
                 "CatBoost model (.cbm via save_model), or a Hugging Face text or image classifier (a .zip of its "
                 "save_pretrained folder)")
    if not data:
        raise _refuse(filename, "the file is empty (0 bytes).", f"upload the saved model: {supported}.")
    if len(data) > MAX_MODEL_BYTES:
        raise _refuse(filename, f"the file is {len(data) / 2**20:.0f} MiB; up to {MAX_MODEL_BYTES // 2**20} MiB is accepted.",
                      "launch with `python -m core serve --model PATH` for larger models.")
    if data[:4] == b"PK\x03\x04" or (data[:4] == b"PK\x05\x06"):
        try:
            names = zipfile.ZipFile(io.BytesIO(data)).namelist()
        except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
            raise _refuse(filename, f"the file starts like a ZIP archive (the container of {supported.split(',')[0]}, "
                          f"torch.export and skops files) but is truncated or corrupt ({exc}).",
                          "save the model again and upload the complete file.") from None
        if "schema.json" in names:
            return "skops"
        tails = {n.split("/", 1)[1] if "/" in n else n for n in names}
        if any(t.startswith("code/") for t in tails) and "constants.pkl" in tails:
            return "torchscript"
        if "archive_format" in tails or any(t.startswith("models/") and t.endswith(".json") for t in tails):
            return "torch_export"
        if "data.pkl" in tails:
            return "torch_pickle"
        from core.upload.transformers_zip import model_folder

        if model_folder(names, filename) is not None:  # raises naming them when two folders hold a config.json
            return "transformers"
        deep = next((n for n in names if n.replace("\\", "/").endswith("/config.json")), None)
        raise _refuse(filename, f"a ZIP archive that is none of the model formats (members: {', '.join(names[:5])}"
                      f"{'...' if len(names) > 5 else ''}).", f"upload {supported}."
                      + (f" {deep!r} sits more than one folder down: for a Hugging Face model, zip its "
                         "save_pretrained folder itself." if deep else ""))
    if data[:1] == b"\x80" and len(data) > 1 and data[1] in (2, 3, 4, 5):
        return "pickle"
    if suffix in _PICKLE_SUFFIXES:
        return "pickle"
    if suffix == ".onnx" or _looks_like_onnx(data):
        return "onnx"
    from core.upload.boosters import detect as detect_booster

    booster = detect_booster(data)
    if booster is not None:
        return booster
    expected = _SUFFIXES.get(suffix)
    found = "random or unknown bytes" if not data[:64].isascii() else "text"
    raise _refuse(filename, f"the file is not a model TrustLens recognises: it holds {found} "
                  f"(first bytes {data[:8].hex(' ')})" + (f", not the {expected} file its name suggests." if expected else "."),
                  f"upload {supported}.")


def _looks_like_onnx(data: bytes) -> bool:
    # ModelProto starts with field 1 (ir_version, varint: tag 0x08) and names its producer early.
    return data[:1] == b"\x08" and len(data) > 16 and (b"pytorch" in data[:64] or b"onnx" in data[:64] or b"skl2onnx" in data[:64])


def inspect_model(data: bytes, filename: str = "model", *, allow_pickle: bool | None = None,
                  trusted_types: tuple[str, ...] | list[str] = ()) -> Inspection:
    """Detect the format, infer what can be inferred, and say whether (and why not) it can be loaded.

    Never raises for a bad file: problems are returned in ``refused``. Pickle-based files are not
    opened at all. ``allow_pickle`` defaults to the server setting (``TRUSTLENS_ALLOW_PICKLE``).
    A skops file needing untrusted types is only opened (to infer its spec) once every one of them
    is in ``trusted_types``.
    """
    allow_pickle = pickle_allowed_by_server() if allow_pickle is None else allow_pickle
    digest = hashlib.sha256(data).hexdigest()
    base = {"filename": filename, "size": len(data), "sha256": digest}
    try:
        fmt = detect_format(data, filename)
    except ModelRefusedError as exc:
        return Inspection(**base, format=None, refused=str(exc))
    if fmt == "transformers":
        return _inspect_transformers(data, filename, base, allow_pickle)
    if fmt in PICKLE_FORMATS:
        if not allow_pickle:
            return Inspection(**base, format=fmt, refused=pickle_refusal(filename, fmt))
        return Inspection(**base, format=fmt, refused=None, needs_pickle_confirmation=True,
                          notes=("Pickle-based: loading runs code from the file. Confirm only for a file you made.",))
    try:
        inferred, untrusted, notes = (_inspect_skops(data, tuple(trusted_types)) if fmt == "skops"
                                      else _INSPECTORS[fmt](data, filename) if fmt in BOOSTER_FORMATS
                                      else _INSPECTORS[fmt](data))
    except ModelRefusedError as exc:
        return Inspection(**base, format=fmt, refused=str(exc))
    except Exception as exc:  # noqa: BLE001 - a broken file must become a message, never a crash
        return Inspection(**base, format=fmt, refused=str(_broken(filename, fmt, exc)))
    return Inspection(**base, format=fmt, refused=None, inferred=inferred, untrusted_types=tuple(untrusted),
                      notes=tuple(notes))


def _inspect_transformers(data: bytes, filename: str, base: dict[str, Any], allow_pickle: bool) -> Inspection:
    """A Hugging Face ZIP: its configuration read (nothing loaded); pickled weights as any pickle-based file."""
    from core.upload.transformers_zip import inspect_zip

    fmt = "transformers"
    try:
        inferred, notes, pickled = inspect_zip(data, filename)
    except ModelRefusedError as exc:
        return Inspection(**base, format=fmt, refused=str(exc))
    except Exception as exc:  # noqa: BLE001 - a broken file must become a message, never a crash
        return Inspection(**base, format=fmt, refused=str(_broken(filename, fmt, exc)))
    if pickled and not allow_pickle:
        return Inspection(**base, format=fmt, inferred=inferred, refused=str(_refuse(
            filename, f"its weights are {inferred['weights']}, a pickle: loading a pickle runs whatever code it "
            "contains, so TrustLens refuses pickle-based files by default.",
            "save the model with model.save_pretrained(folder, safe_serialization=True) to get model.safetensors "
            "and zip the folder again. If this is your own file, the person running the server can allow pickles "
            f"with {ALLOW_PICKLE_ENV}=1 (then confirm the file), or launch with `python -m core serve --model PATH`.")))
    if pickled:
        notes = [*notes, f"The weights are {inferred['weights']}, a pickle: loading it runs code from the file. "
                         "Confirm only for a file you made."]
    return Inspection(**base, format=fmt, refused=None, inferred=inferred, needs_pickle_confirmation=pickled,
                      notes=tuple(notes))


def pickle_refusal(filename: str, fmt: str) -> str:
    return str(_refuse(
        filename,
        f"this is a {FORMAT_TITLES[fmt]}. Loading a pickle runs whatever code it contains, so TrustLens refuses "
        "pickle-based files by default.",
        "export the model instead: torch.jit.script(model).save('model.pt') or torch.export.save(...) for torch, "
        "skops.io.dump(model, 'model.skops') for scikit-learn, or ONNX. If this is your own file, the person running "
        f"the server can allow pickles with {ALLOW_PICKLE_ENV}=1 (then confirm the file), or launch with "
        "`python -m core serve --model PATH`.",
    ))


def _broken(filename: str, fmt: str, exc: BaseException) -> ModelRefusedError:
    text = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
    return _refuse(filename, f"it looks like a {FORMAT_TITLES[fmt]} but could not be read ({type(exc).__name__}: {text}).",
                   "the file may be truncated or saved by an incompatible version: save it again and re-upload.")


def _shape_spec_from_weights(state: dict[str, Any]) -> dict[str, Any]:
    """Input kind, channels / features and class count guessed from the first and last weight tensors."""
    weights = [(k, tuple(v.shape)) for k, v in state.items() if k.endswith("weight") and hasattr(v, "shape")]
    out: dict[str, Any] = {}
    if not weights:
        return out
    first, last = weights[0][1], weights[-1][1]
    if len(first) == 4:
        out.update(input_kind="image", channels=int(first[1]))
    elif len(first) == 2:
        out.update(input_kind="tabular", n_features=int(first[1]))
    if len(last) == 2:
        out["n_classes"] = int(last[0])
    return out


def _inspect_torchscript(data: bytes) -> tuple[dict[str, Any], list[str], list[str]]:
    import torch

    module = torch.jit.load(io.BytesIO(data), map_location="cpu")
    inferred = _shape_spec_from_weights(module.state_dict())
    inferred["n_parameters"] = int(sum(p.numel() for p in module.parameters()))
    return inferred, [], []


def _inspect_export(data: bytes) -> tuple[dict[str, Any], list[str], list[str]]:
    import torch

    program = torch.export.load(io.BytesIO(data))
    inferred = _shape_spec_from_weights(program.state_dict)
    args = program.example_inputs[0] if program.example_inputs else ()
    if args and hasattr(args[0], "shape"):
        shape = tuple(int(s) for s in args[0].shape)
        if len(shape) == 4:
            inferred.update(input_kind="image", channels=shape[1], height=shape[2], width=shape[3])
        elif len(shape) == 2:
            inferred.update(input_kind="tabular", n_features=shape[1])
    inferred["n_parameters"] = int(sum(int(np.prod(tuple(v.shape))) for v in program.state_dict.values()))
    return inferred, [], []


def _inspect_onnx(data: bytes) -> tuple[dict[str, Any], list[str], list[str]]:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(data, sess_options=options, providers=["CPUExecutionProvider"])
    inp, out = session.get_inputs()[0], session.get_outputs()[0]
    inferred: dict[str, Any] = {"input_name": inp.name, "input_shape": [str(s) if not isinstance(s, int) else s for s in inp.shape],
                                "input_type": inp.type}
    if inp.type == "tensor(string)":
        inferred["input_kind"] = "text"
    elif len(inp.shape) == 4:
        c, h, w = inp.shape[1:]
        inferred.update(input_kind="image", **{k: v for k, v in (("channels", c), ("height", h), ("width", w)) if isinstance(v, int)})
    elif len(inp.shape) == 2:
        inferred["input_kind"] = "tabular"
        if isinstance(inp.shape[1], int):
            inferred["n_features"] = inp.shape[1]
    if len(out.shape) == 2 and isinstance(out.shape[1], int):
        inferred["n_classes"] = out.shape[1]
    from core.adapters.onnx_adapter import NO_GRADIENTS_ONNX

    notes = [NO_GRADIENTS_ONNX]
    if inferred.get("input_kind") == "text":
        raise ModelRefusedError("ONNX models taking strings are not supported: TrustLens feeds ONNX models numbers.",
                                hint="upload a text pipeline saved with skops instead.")
    return inferred, [], notes


# Types skops does not trust by default but that construct no code when loaded: a numpy dtype is rebuilt from its
# name (every OneHotEncoder saves one, its `dtype=np.float64` parameter), so a ColumnTransformer pipeline opens
# without asking the user to trust anything.
SKOPS_HARMLESS = ("numpy.dtype",)


def _inspect_skops(data: bytes, trusted_types: tuple[str, ...] = ()) -> tuple[dict[str, Any], list[str], list[str]]:
    import skops.io as sio

    untrusted = list(sio.get_untrusted_types(data=data))
    ask = [t for t in untrusted if t not in SKOPS_HARMLESS]
    notes = []
    if ask:
        notes.append("The file needs types outside skops' trusted set; they are only loaded if you accept them.")
        if not set(ask) <= set(trusted_types):
            return {}, ask, notes
    estimator = sio.loads(data, trusted=untrusted or None)
    return _sklearn_inferred(estimator), ask, notes


def _sklearn_inferred(estimator: Any) -> dict[str, Any]:
    inferred: dict[str, Any] = {"estimator": type(estimator).__name__}
    steps = getattr(estimator, "steps", None)
    first = steps[0][1] if steps else estimator
    if hasattr(first, "vocabulary_") or "Vectorizer" in type(first).__name__:
        inferred["input_kind"] = "text"
    else:
        inferred["input_kind"] = "tabular"
        n = getattr(estimator, "n_features_in_", None)
        if n is not None:
            inferred["n_features"] = int(n)
        names = getattr(estimator, "feature_names_in_", None)
        if names is not None:
            inferred["feature_names"] = [str(n) for n in names]
    classes = getattr(estimator, "classes_", None)
    if classes is not None:
        inferred["n_classes"] = int(len(classes))
        inferred["class_names"] = [str(c) for c in classes]
    inferred["outputs"] = "probabilities"
    return inferred


def _describe_booster(data: bytes, fmt: str, filename: str) -> dict[str, Any]:
    from core.upload.boosters import BoosterRefused, describe

    try:
        return describe(data, fmt)
    except BoosterRefused as exc:
        raise _refuse(filename, str(exc), exc.hint or "save the classifier again with booster.save_model('model.json') "
                      "(XGBoost), booster.save_model('model.txt') (LightGBM) or model.save_model('model.cbm') (CatBoost) "
                      "and upload the complete file.") from None


def _booster_inspector(fmt: str):
    def inspect(data: bytes, filename: str = "model") -> tuple[dict[str, Any], list[str], list[str]]:
        from core.upload import boosters

        info = _describe_booster(data, fmt, filename)
        return boosters.inferred_spec(info), [], boosters.notes(info)

    return inspect


_INSPECTORS = {"torchscript": _inspect_torchscript, "torch_export": _inspect_export, "onnx": _inspect_onnx,
               "skops": _inspect_skops, "xgboost": _booster_inspector("xgboost"),
               "lightgbm": _booster_inspector("lightgbm"), "catboost": _booster_inspector("catboost")}


# -- loading ---------------------------------------------------------------------------------------
def load_model_file(
    data: bytes,
    filename: str,
    spec: ModelSpecification,
    *,
    allow_pickle: bool | None = None,
    confirm_pickle: bool = False,
    trusted_types: tuple[str, ...] | list[str] = (),
    name: str | None = None,
) -> ModelAdapter:
    """Load ``data`` as a ModelAdapter fed as ``spec`` says.

    Parameters
    ----------
    allow_pickle : bool, optional
        The server-level opt-in (default: ``TRUSTLENS_ALLOW_PICKLE``).
    confirm_pickle : bool
        The per-file confirmation; both are needed to load a pickle-based file.
    trusted_types : sequence of str
        skops types the user accepted; every untrusted type in the file must be among them.

    Raises
    ------
    ModelRefusedError
        Unknown, broken or unsafe files (see :func:`detect_format`, :func:`pickle_refusal`).
    """
    allow_pickle = pickle_allowed_by_server() if allow_pickle is None else allow_pickle
    fmt = detect_format(data, filename)
    name = name or os.path.basename(filename) or "uploaded"
    if fmt in PICKLE_FORMATS and not (allow_pickle and confirm_pickle):
        message = pickle_refusal(filename, fmt)
        if allow_pickle:
            message = (f"{filename!r} is a {FORMAT_TITLES[fmt]}: loading it runs code from the file. Tick the "
                       "confirmation for this file if you made it yourself.")
        raise ModelRefusedError(message)
    if spec.input_kind == "text" and fmt in ("torchscript", "torch_export", "onnx"):
        raise ModelRefusedError(
            f"{filename!r}: a {FORMAT_TITLES[fmt]} for text would need its own tokeniser, which TrustLens cannot know.",
            hint="upload a scikit-learn pipeline that takes raw strings (e.g. TfidfVectorizer + classifier) saved with skops.")
    try:
        if fmt == "onnx":
            from core.adapters.onnx_adapter import OnnxAdapter

            return OnnxAdapter(data, name=name, class_names=spec.class_names, input_kind=spec.input_kind,
                               outputs=spec.outputs, mean=spec.mean if spec.input_kind == "image" else None,
                               std=spec.std if spec.input_kind == "image" else None,
                               description=f"Uploaded {FORMAT_TITLES[fmt]} ({filename})")
        if fmt == "skops":
            return _sklearn_adapter(_load_skops(data, filename, trusted_types), name, filename, spec, fmt)
        if fmt in BOOSTER_FORMATS:
            return _booster_adapter(data, filename, spec, fmt, name)
        if fmt == "transformers":
            from core.upload.transformers_zip import load_adapter

            # pytorch_model.bin weights are a pickle: the server's opt-in and this file's confirmation, as above.
            return load_adapter(data, filename, spec, trust_pickle=bool(allow_pickle and confirm_pickle), name=name)
        if fmt == "torchscript":
            import torch

            module = torch.jit.load(io.BytesIO(data), map_location="cpu")
            return _torch_adapter(module, name, filename, spec, fmt, data)
        if fmt == "torch_export":
            import torch

            program = torch.export.load(io.BytesIO(data))
            return _torch_adapter(program.module(), name, filename, spec, fmt, data)
        return _load_pickle(data, filename, fmt, name, spec)
    except TrustLensError:
        raise
    except Exception as exc:  # noqa: BLE001 - a broken file must become a message, never a crash
        raise _broken(filename, fmt, exc) from None


def _load_skops(data: bytes, filename: str, trusted_types: tuple[str, ...] | list[str]) -> Any:
    import skops.io as sio

    untrusted = list(sio.get_untrusted_types(data=data))
    missing = [t for t in untrusted if t not in set(trusted_types) | set(SKOPS_HARMLESS)]
    if missing:
        raise _refuse(filename, f"the skops file needs {len(missing)} type(s) outside skops' trusted set: "
                      f"{', '.join(missing)}. They could run code when loaded.",
                      "accept them only if you know where the file comes from (tick 'I trust these types'), "
                      "or save the model without custom functions.")
    return sio.loads(data, trusted=untrusted or None)


def _sklearn_adapter(estimator: Any, name: str, filename: str, spec: ModelSpecification, fmt: str) -> ModelAdapter:
    from core.adapters.sklearn_adapter import SklearnAdapter

    if spec.input_kind == "image":
        raise ModelRefusedError(f"{filename!r}: scikit-learn models are taken for tables and text, not images.",
                                hint="pick input kind 'tabular' (pixels as columns) or 'text'.")
    classes = getattr(estimator, "classes_", None)
    class_names = spec.class_names or tuple(str(c) for c in (classes if classes is not None else ()))
    return SklearnAdapter(estimator, name=name, class_names=class_names, input_kind=spec.input_kind,
                          description=f"Uploaded {FORMAT_TITLES[fmt]} ({filename})")


def _booster_adapter(data: bytes, filename: str, spec: ModelSpecification, fmt: str, name: str) -> ModelAdapter:
    from core.adapters.booster_adapter import BoosterAdapter, BoosterClassifier
    from core.upload.boosters import load_booster

    if spec.input_kind != "tabular":
        raise ModelRefusedError(f"{filename!r}: a {FORMAT_TITLES[fmt]} takes a table, not {spec.input_kind} input.",
                                hint="pick input kind 'tabular' and upload a CSV or Parquet table.")
    info = _describe_booster(data, fmt, filename)
    features = tuple(info.get("feature_names") or (f"f{j}" for j in range(info["n_features"])))
    estimator = BoosterClassifier(load_booster(data, fmt), fmt, info["objective"], info["n_classes"], features,
                                  hashlib.sha256(data).hexdigest())
    class_names = spec.class_names or tuple(info.get("class_names") or (str(c) for c in estimator.classes_))
    return BoosterAdapter(estimator, name=name, class_names=class_names, input_kind="tabular",
                          framework=fmt, description=f"Uploaded {FORMAT_TITLES[fmt]} ({filename})")


def _load_pickle(data: bytes, filename: str, fmt: str, name: str, spec: ModelSpecification) -> ModelAdapter:
    # Reached only with the server's opt-in and the user's confirmation for this file.
    if fmt == "torch_pickle":
        import torch

        obj = torch.load(io.BytesIO(data), map_location="cpu", weights_only=False)
    else:
        import joblib

        obj = joblib.load(io.BytesIO(data))
    if hasattr(obj, "predict_proba"):
        return _sklearn_adapter(obj, name, filename, spec, fmt)
    import torch

    if isinstance(obj, torch.nn.Module):
        return _torch_adapter(obj, name, filename, spec, fmt, data)
    if isinstance(obj, dict):
        raise _refuse(filename, "the file holds a dict (a state dict?) without the model's architecture.",
                      "save the whole model with torch.jit.script(model).save('model.pt') instead.")
    raise _refuse(filename, f"the file holds a {type(obj).__name__}, not a classifier.",
                  "save a torch module or a scikit-learn estimator with predict_proba.")


def _torch_adapter(module: Any, name: str, filename: str, spec: ModelSpecification, fmt: str,
                   data: bytes) -> ModelAdapter:
    from core.adapters.uploaded_torch import UploadedTorchAdapter

    if spec.input_kind == "image":
        channels = spec.channels or len(spec.mean)
        module = normalised_module(module, spec.mean, spec.std, channels)
    else:
        module = normalised_module(module, None, None, 1)
    return UploadedTorchAdapter(module, hookable_inner=fmt in PICKLE_FORMATS, source_hash=hashlib.sha256(data).hexdigest(),
                                name=name, class_names=spec.class_names,
                                input_kind=spec.input_kind, outputs=spec.outputs,
                                description=f"Uploaded {FORMAT_TITLES[fmt]} ({filename})")


def normalised_module(inner: Any, mean: tuple[float, ...] | None, std: tuple[float, ...] | None, channels: int) -> Any:
    """``inner`` behind ``(x - mean) / std`` (images stay in [0, 1] pixel space for explanations).

    The wrapper's ``train()`` does not recurse into ``inner``: exported programs refuse
    ``.eval()``, and TorchScript / exported modules were saved in the mode they should run in
    (``inner.eval()`` is tried once here for modules that allow it).
    """
    import torch

    class UploadedModule(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            # Identity layers around the model: hookable points (pixels in, raw scores out) even when
            # the inner model's own layers cannot be hooked (TorchScript, torch.export).
            self.input = torch.nn.Identity()
            self.inner = inner
            self.output = torch.nn.Identity()
            self.normalise = mean is not None
            if mean is not None:
                shape = (1, -1, 1, 1)
                self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).reshape(shape))
                self.register_buffer("std", torch.tensor(std, dtype=torch.float32).reshape(shape))

        def forward(self, x: Any) -> Any:
            x = self.input(x)
            if self.normalise:
                x = (x - self.mean) / self.std
            return self.output(self.inner(x))

        def train(self, mode: bool = True) -> "UploadedModule":
            self.training = mode
            return self

    try:
        inner.eval()
    except (NotImplementedError, RuntimeError, AttributeError):
        pass  # exported programs: "Calling eval() is not supported"
    return UploadedModule()


# -- validation ------------------------------------------------------------------------------------
def dry_run(adapter: ModelAdapter, sample: Any, spec: ModelSpecification) -> np.ndarray:
    """Run one sample through the model and check its output against the spec.

    Returns the probabilities, ndarray of shape (1, n_classes).

    Raises
    ------
    InputShapeError
        When the model rejects the input (naming the shape sent and the shape the spec expects) or
        returns a number of scores other than the number of class names.
    """
    n_out = output_width(adapter, sample, spec)
    if n_out != len(spec.class_names):
        raise InputShapeError(
            f"The model returns {n_out} scores per sample but {len(spec.class_names)} class names were given "
            f"({', '.join(spec.class_names[:6])}{'...' if len(spec.class_names) > 6 else ''}); expected output shape "
            f"(1, {len(spec.class_names)}), received (1, {n_out}).",
            hint=f"give exactly {n_out} class names (in the model's output order), or upload the matching model.",
        )
    proba = adapter.predict_proba(sample, batch_size=1)
    if not np.all(np.isfinite(proba)):
        raise InputShapeError("The dry run returned NaN or infinite scores.",
                              hint="check the normalisation mean / std and whether outputs are logits or probabilities.")
    return proba


def output_width(adapter: ModelAdapter, sample: Any, spec: ModelSpecification) -> int:
    """How many scores the model returns per sample, measured on ``sample`` (one or a few samples).

    The raw output's width for torch and ONNX models (whatever class names the adapter was given),
    else the width of ``predict_proba``.

    Raises
    ------
    InputShapeError
        When the model rejects the input, naming the shape sent and the shape the spec expects.
    """
    expected_in = (f"(1, {spec.channels}, {spec.height}, {spec.width})" if spec.input_kind == "image"
                   else f"(1, {spec.n_features or 'n_features'})" if spec.input_kind == "tabular" else "1 string")
    raw = _raw_scores(adapter, sample, expected_in)
    if raw is not None:
        return raw
    sent = np.shape(sample) if spec.input_kind != "text" else "1 string"
    try:
        return int(adapter.predict_proba(sample, batch_size=1).shape[1])
    except TrustLensError:
        raise
    except Exception as exc:  # noqa: BLE001 - a model that raises in forward must become a message
        raise InputShapeError(
            f"The dry run failed: the model raised {type(exc).__name__} on one sample of shape {sent} "
            f"(the spec says {expected_in}): {exception_text(exc)}",
            hint="check the input kind, image size and channels in the spec against what the model was trained on.",
        ) from None


def _raw_scores(adapter: ModelAdapter, sample: Any, expected_in: str) -> int | None:
    """Width of the model's raw output on ``sample`` (None when the adapter is not torch / ONNX)."""
    from core.adapters.onnx_adapter import OnnxAdapter
    from core.adapters.torch_adapter import TorchAdapter

    try:
        if isinstance(adapter, TorchAdapter):
            import torch

            with torch.inference_mode():
                out = adapter.torch_module()(adapter.to_tensor(sample))
            return int(out.reshape(len(sample), -1).shape[1])
        if isinstance(adapter, OnnxAdapter):
            session = adapter._session
            out = session.run(None, {adapter._input: adapter._prepare(sample)})[0]
            return int(np.asarray(out).reshape(len(sample), -1).shape[1])
    except TrustLensError:
        raise
    except Exception as exc:  # noqa: BLE001 - a model that raises in forward must become a message
        spec_shape = tuple(np.shape(sample))
        raise InputShapeError(
            f"The dry run failed: the model raised {type(exc).__name__} on one sample of shape {spec_shape} "
            f"(the spec says {expected_in}): {exception_text(exc)}",
            hint="check the input kind, image size and channels in the spec against what the model was trained on.",
        ) from None
    return None


def exception_text(exc: BaseException) -> str:
    """The informative line of a model's exception (TorchScript puts the real error last, after a traceback)."""
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    if not lines:
        return type(exc).__name__
    line = lines[-1] if len(lines) > 1 and "TorchScript interpreter" in lines[0] else lines[0]
    return line[:300]


def infer_outputs(adapter_scores: np.ndarray) -> str:
    """'probabilities' when every row of raw scores is non-negative and sums to 1, else 'logits'."""
    scores = np.asarray(adapter_scores, dtype=np.float64)
    if scores.ndim == 2 and np.all(scores >= 0) and np.allclose(scores.sum(axis=1), 1.0, atol=1e-4):
        return "probabilities"
    return "logits"


def read_model(path: str | Path) -> tuple[bytes, str]:
    """(bytes, file name) of a model path as the upload page would receive it: a file as it is, a Hugging Face
    ``save_pretrained`` folder as the ZIP of its files (:func:`core.upload.transformers_zip.folder_zip`)."""
    path = Path(path)
    if path.is_dir():
        from core.upload.transformers_zip import folder_zip

        return folder_zip(path), f"{path.name}.zip"
    return path.read_bytes(), path.name
