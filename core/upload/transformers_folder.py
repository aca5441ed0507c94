"""Hugging Face ``save_pretrained`` folders, read offline and without running anything they name.

:func:`check_folder` reads only JSON and the safetensors header, and refuses, naming the file and the
field:

- a config asking for remote code (``auto_map``, ``trust_remote_code``): transformers would import
  Python files shipped with the model;
- a ``model_type`` transformers does not know, or (for a classifier) an architecture that is not a
  ``*ForSequenceClassification`` (text) or ``*ForImageClassification`` (images);
- for an image classifier: no ``preprocessor_config.json``, remote code in it, or an image processor whose
  ``size`` / ``crop_size`` disagrees with the config's ``image_size`` (the model would see images of another size
  than it was trained on), or whose mean, std or rescale factor are not numbers;
- weights only in ``pytorch_model.bin`` (a pickle) unless the user says they trust the file, and a
  folder with no weights at all;
- a safetensors header that lies (a tensor whose bytes do not fit the file, or whose shape and dtype
  disagree with its byte range), and files over the size bounds (a 200 MB tokenizer.json).

:func:`load_pretrained` then loads from the local folder only (``local_files_only``,
``HF_HUB_OFFLINE``, ``trust_remote_code=False``) with eager attention, which returns attention maps;
:func:`load_image_pretrained` does the same for an image classifier and returns the processor's settings
(:class:`ImageProcessing`, read from its JSON: the processor class itself is never instantiated).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import struct
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.errors import TrustLensError

MAX_CONFIG_BYTES = 1 << 20  # config.json, tokenizer_config.json, special_tokens_map.json, preprocessor_config.json
MAX_TOKENIZER_BYTES = 50 << 20  # tokenizer.json (bert-base's is 0.7 MB, xlm-roberta's 17 MB)
MAX_WEIGHTS_BYTES = 2 << 30  # model.safetensors
MAX_HEADER_BYTES = 100 << 20  # a safetensors JSON header
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt", "merges.txt",
                   "vocab.json", "sentencepiece.bpe.model", "spiece.model")
REMOTE_CODE_KEYS = ("auto_map", "trust_remote_code")
PROCESSOR_FILE = "preprocessor_config.json"  # an image processor's settings (save_pretrained of the processor)
TASKS = ("sequence", "encoder", "image")
_DTYPE_BYTES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1,
                "F8_E4M3": 1, "F8_E5M2": 1, "U16": 2, "U32": 4, "U64": 8}
_load_lock = threading.Lock()  # transformers' loading mutates process-wide logging and environment state


class FolderRefusedError(TrustLensError):
    """A model folder that is not loaded, with the file and field at fault."""


@dataclass(frozen=True)
class ImageProcessing:
    """What an image classifier's processor does to an image, read from ``preprocessor_config.json``.

    Applied in torch by :class:`core.adapters.hf_image_adapter.HFImageClassifier` to images in [0, 1], in the
    processor's order: resize (``resize`` to a fixed (height, width), or the shorter side to ``shortest_edge``
    keeping the aspect), centre ``crop``, then ``pixels * 255 * rescale_factor`` (the processor reads 0..255
    pixels; no rescale: ``rescale_factor`` None) and ``(pixels - mean) / std`` (no normalisation: None).
    ``height`` and ``width`` are the model's input size (config.json's ``image_size``), ``channels`` its
    ``num_channels``.
    """

    height: int
    width: int
    channels: int = 3
    resize: tuple[int, int] | None = None
    shortest_edge: int | None = None
    crop: tuple[int, int] | None = None
    rescale_factor: float | None = 1 / 255
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    resample: int = 2  # PIL's code; TrustLens always resizes bilinearly (2), as ViT's processor does

    def to_json(self) -> dict[str, Any]:
        return {"image_size": [self.height, self.width], "channels": self.channels,
                "resize": list(self.resize) if self.resize else None, "shortest_edge": self.shortest_edge,
                "crop": list(self.crop) if self.crop else None, "rescale_factor": self.rescale_factor,
                "mean": list(self.mean) if self.mean is not None else None,
                "std": list(self.std) if self.std is not None else None}

    def describe(self) -> str:
        """One line for the model card and the inspection's notes."""
        steps = []
        if self.resize:
            steps.append(f"resized to {self.resize[0]}x{self.resize[1]}")
        elif self.shortest_edge:
            steps.append(f"shorter side resized to {self.shortest_edge}")
        if self.crop:
            steps.append(f"centre-cropped to {self.crop[0]}x{self.crop[1]}")
        if not steps:
            steps.append(f"resized to the model's {self.height}x{self.width}")
        if self.rescale_factor is not None:
            steps.append(f"rescaled by {self.rescale_factor:.6g} (from 0..255)")
        if self.mean is not None and self.std is not None:
            steps.append(f"normalised with mean {_short(self.mean)} and std {_short(self.std)}")
        return "images " + ", ".join(steps) + " (bilinear, in torch: gradients reach the pixels)"


def _short(values: tuple[float, ...]) -> str:
    return "[" + ", ".join(f"{v:.4g}" for v in values) + "]"


@dataclass(frozen=True)
class FolderCheck:
    """What :func:`check_folder` found: the config, which weights file to load, the files' fingerprint, and
    for an image classifier its processor's settings."""

    config: dict[str, Any]
    weights: str  # "model.safetensors" or "pytorch_model.bin"
    fingerprint: str  # sha256 over config, tokeniser and processor files (the weights enter the model's own)
    image: ImageProcessing | None = None

    @property
    def architecture(self) -> str:
        return str((self.config.get("architectures") or [""])[0])  # a list of str: checked by check_folder


def _refuse(path: Path, what: str, hint: str) -> FolderRefusedError:
    return FolderRefusedError(f"{path.name}: {what}", hint=hint)


def _read_json(path: Path, limit: int = MAX_CONFIG_BYTES) -> dict[str, Any]:
    size = path.stat().st_size
    if size > limit:
        raise _refuse(path, f"{size:,} bytes, over the {limit:,}-byte bound for this file.",
                      "a model's configuration files are small: is this the right folder?")
    try:
        document = json.loads(path.read_bytes())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _refuse(path, f"not valid JSON ({exc}).", "save the model again with save_pretrained().") from None
    if not isinstance(document, dict):
        raise _refuse(path, f"holds a JSON {type(document).__name__}, not an object.",
                      "save the model again with save_pretrained().")
    return document


def check_safetensors(path: Path) -> None:
    """Refuse a safetensors file whose header is malformed or lies about where its tensors are."""
    size = path.stat().st_size
    if size > MAX_WEIGHTS_BYTES:
        raise _refuse(path, f"{size:,} bytes, over the {MAX_WEIGHTS_BYTES:,}-byte bound.",
                      "TrustLens explains models that fit one machine's memory; use a smaller model.")
    with path.open("rb") as fh:
        head = fh.read(8)
        if len(head) < 8:
            raise _refuse(path, "shorter than a safetensors header.", "the file is truncated: copy it again.")
        (n,) = struct.unpack("<Q", head)
        if n > MAX_HEADER_BYTES or 8 + n > size:
            raise _refuse(path, f"its header claims {n:,} bytes in a file of {size:,}.",
                          "the file is truncated or not a safetensors file.")
        try:
            header = json.loads(fh.read(n))
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise _refuse(path, "its header is not valid JSON.", "the file is not a safetensors file.") from None
    if not isinstance(header, dict):
        raise _refuse(path, "its header is not a JSON object.", "the file is not a safetensors file.")
    data_bytes = size - 8 - n
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        try:
            dtype, shape, (start, stop) = entry["dtype"], entry["shape"], entry["data_offsets"]
            count = 1
            for dim in shape:
                count *= int(dim)
        except (KeyError, TypeError, ValueError):
            raise _refuse(path, f"tensor {name!r} has a malformed header entry.",
                          "the file is not a valid safetensors file.") from None
        width = _DTYPE_BYTES.get(dtype)
        if width is None:
            raise _refuse(path, f"tensor {name!r} has an unknown dtype {dtype!r}.", "save the model again.")
        if not (0 <= start <= stop <= data_bytes) or stop - start != count * width:
            raise _refuse(path, f"tensor {name!r} claims shape {list(shape)} ({dtype}) at bytes {start}-{stop} of "
                                f"{data_bytes:,} data bytes: the header lies about its size.",
                          "the file is damaged or crafted; save the model again with save_pretrained().")


def classifier_task(config: dict[str, Any]) -> str:
    """``"image"`` for a config whose first architecture is a ``*ForImageClassification``, else ``"sequence"``
    (whatever else it names is then refused as not a ``*ForSequenceClassification``)."""
    architectures = config.get("architectures")
    first = architectures[0] if isinstance(architectures, list) and architectures else ""
    return "image" if isinstance(first, str) and first.endswith("ForImageClassification") else "sequence"


def folder_task(folder: str | os.PathLike[str]) -> str:
    """:func:`classifier_task` of the folder's ``config.json`` (read within its bound); ``"sequence"`` when
    there is none (check_folder then refuses the folder, naming the file)."""
    config_path = Path(folder) / "config.json"
    if not config_path.is_file():
        return "sequence"
    return classifier_task(_read_json(config_path))


def _positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _pair(value: Any) -> tuple[int, int] | None:
    """(height, width) from an int or a two-int list; None for anything else."""
    if _positive_int(value):
        return (int(value), int(value))
    if isinstance(value, (list, tuple)) and len(value) == 2 and all(_positive_int(v) for v in value):
        return (int(value[0]), int(value[1]))
    return None


def _numbers(path: Path, document: dict[str, Any], key: str, channels: int,
             positive: bool = False) -> tuple[float, ...]:
    value = document.get(key)
    values = [value] if isinstance(value, (int, float)) and not isinstance(value, bool) else value
    if not (isinstance(values, list) and values and all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                                          and math.isfinite(v) for v in values)):
        raise _refuse(path, f"field {key!r} is {value!r:.80}, not a number or a list of numbers.",
                      "save the image processor again with processor.save_pretrained(folder).")
    if len(values) not in (1, channels):
        raise _refuse(path, f"field {key!r} has {len(values)} values for a model of {channels} channels.",
                      "give one value per channel, or one for all.")
    if positive and any(v <= 0 for v in values):
        raise _refuse(path, f"field {key!r} is {values!r:.80}: every value must be positive.",
                      "save the image processor again with processor.save_pretrained(folder).")
    return tuple(float(v) for v in values)


def _flag(path: Path, document: dict[str, Any], key: str, default: bool) -> bool:
    value = document.get(key, default)
    if not isinstance(value, bool):
        raise _refuse(path, f"field {key!r} is {value!r:.80}, not true or false.",
                      "save the image processor again with processor.save_pretrained(folder).")
    return value


def image_processing(config: dict[str, Any], processor: dict[str, Any], root: Path) -> ImageProcessing:
    """The processor's settings, checked against the config: a ``size`` (or ``crop_size``) other than the
    config's ``image_size`` is refused, naming the file and the field.

    Raises
    ------
    FolderRefusedError
        Naming ``config.json`` or ``preprocessor_config.json`` and the field at fault.
    """
    config_path, path = root / "config.json", root / PROCESSOR_FILE
    image_size = _pair(config.get("image_size"))
    if image_size is None:
        raise _refuse(config_path, f"field 'image_size' is {config.get('image_size')!r:.80}, not the model's input "
                                   "size in pixels.", "save an image classifier whose config names its image_size "
                                   "(ViT, DeiT, BEiT, ...).")
    channels = config.get("num_channels", 3)
    if not _positive_int(channels):
        raise _refuse(config_path, f"field 'num_channels' is {channels!r:.80}, not a positive integer.",
                      "save the classifier again with save_pretrained().")
    height, width = image_size
    want = f"config.json's image_size is {config.get('image_size')!r}"
    hint = ("save the processor the model was trained with (processor.save_pretrained(folder)); its size must be the "
            "model's image_size, or the model sees images of another size than it was trained on.")
    resize: tuple[int, int] | None = None
    shortest: int | None = None
    crop: tuple[int, int] | None = None
    do_crop = _flag(path, processor, "do_center_crop", False)
    if do_crop:
        crop = _pair(processor.get("crop_size")) if not isinstance(processor.get("crop_size"), dict) else \
            _pair([processor["crop_size"].get("height"), processor["crop_size"].get("width")])
        if crop is None:
            raise _refuse(path, f"field 'crop_size' is {processor.get('crop_size')!r:.80}, not a size in pixels.", hint)
        if crop != image_size:
            raise _refuse(path, f"field 'crop_size' is {processor.get('crop_size')!r:.80}, but {want}.", hint)
    if _flag(path, processor, "do_resize", True):
        size = processor.get("size")
        if isinstance(size, dict) and "height" in size and "width" in size and set(size) <= {"height", "width"}:
            resize = _pair([size["height"], size["width"]])
        elif isinstance(size, dict) and set(size) == {"shortest_edge"}:
            shortest = size["shortest_edge"] if _positive_int(size["shortest_edge"]) else None
        elif _pair(size) is not None and not isinstance(size, list):
            resize = _pair(size)  # an older processor's plain int
        if resize is None and shortest is None:
            raise _refuse(path, f"field 'size' is {size!r:.80}: TrustLens reads {{'height': h, 'width': w}} or "
                                "{'shortest_edge': s}.", hint)
        if not do_crop and (resize if resize is not None else (shortest, shortest)) != image_size:
            raise _refuse(path, f"field 'size' is {size!r:.80}, but {want}.", hint)
        if do_crop and (resize[0] < crop[0] or resize[1] < crop[1] if resize else shortest < min(crop)):
            raise _refuse(path, f"field 'size' is {size!r:.80}, smaller than its crop_size "
                                f"{processor.get('crop_size')!r:.80}.", hint)
    rescale: float | None = None
    if _flag(path, processor, "do_rescale", True):
        rescale = _numbers(path, processor, "rescale_factor", 1, positive=True)[0] if "rescale_factor" in processor \
            else 1 / 255
    mean = std = None
    if _flag(path, processor, "do_normalize", True):
        mean = _numbers(path, processor, "image_mean", int(channels))
        std = _numbers(path, processor, "image_std", int(channels), positive=True)
    resample = processor.get("resample", 2)
    return ImageProcessing(height=height, width=width, channels=int(channels), resize=resize, shortest_edge=shortest,
                           crop=crop, rescale_factor=rescale, mean=mean, std=std,
                           resample=int(resample) if _positive_int(resample) or resample == 0 else 2)


def check_folder(folder: str | os.PathLike[str], *, task: str = "sequence", trust_pickle: bool = False) -> FolderCheck:
    """Check a ``save_pretrained`` folder before anything is loaded from it (see the module docstring).

    ``task``: ``"sequence"`` (a ``*ForSequenceClassification``), ``"encoder"`` (any known model) or
    ``"image"`` (a ``*ForImageClassification`` with its ``preprocessor_config.json``; no tokeniser).
    """
    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}; got {task!r}.")
    root = Path(folder)
    config_path = root / "config.json"
    if not config_path.is_file():
        raise _refuse(config_path, "missing: a save_pretrained folder holds config.json.",
                      "zip the folder model.save_pretrained() and tokenizer.save_pretrained() wrote.")
    config = _read_json(config_path)
    for key in REMOTE_CODE_KEYS:
        if key in config:
            raise _refuse(config_path, f"asks for remote code ({key!r}): loading it would run Python files that "
                                       "came with the model.", "TrustLens never runs a model's own code; use a model "
                                       "whose architecture is built into transformers.")
    from transformers import CONFIG_MAPPING

    model_type = config.get("model_type")
    if not isinstance(model_type, str) or model_type not in CONFIG_MAPPING:
        raise _refuse(config_path, f"model_type {model_type!r} is not an architecture transformers knows.",
                      "save a model of a built-in architecture (bert, distilbert, roberta, vit, ...).")
    architectures = config.get("architectures")
    if architectures is not None and not (isinstance(architectures, list) and all(isinstance(a, str) for a in architectures)):
        raise _refuse(config_path, f"field 'architectures' must be a list of class names; got {architectures!r:.80}.",
                      "save the model again with save_pretrained().")
    if task == "sequence":
        arch = str((architectures or [""])[0])
        if not arch.endswith("ForSequenceClassification"):
            raise _refuse(config_path, f"architecture {arch or 'none'!r} is not a *ForSequenceClassification model "
                                       "(text), nor a *ForImageClassification model (images).",
                          "save the fine-tuned classifier (AutoModelForSequenceClassification or "
                          "AutoModelForImageClassification), not its base model.")
    if task == "image":
        arch = str((architectures or [""])[0])
        if not arch.endswith("ForImageClassification"):
            raise _refuse(config_path, f"architecture {arch or 'none'!r} is not a *ForImageClassification model.",
                          "save the fine-tuned classifier (AutoModelForImageClassification), not its base model.")
        processor_path = root / PROCESSOR_FILE
        if not processor_path.is_file():
            raise _refuse(processor_path, "missing: an image classifier's folder holds its image processor's settings "
                                          "(size, mean, std).", "save the processor beside the model: "
                                          "AutoImageProcessor.from_pretrained(...).save_pretrained(folder).")
        processor = _read_json(processor_path)
        for key in REMOTE_CODE_KEYS:
            if key in processor:
                raise _refuse(processor_path, f"asks for remote code ({key!r}).",
                              "TrustLens never runs a model's own code; save a built-in image processor.")
        image = image_processing(config, processor, root)
        fingerprint = _files_fingerprint(root, ("config.json", PROCESSOR_FILE))
        return FolderCheck(config, _weights(root, trust_pickle), fingerprint, image)
    for name in TOKENIZER_FILES:  # every tokeniser file is bounded, not only tokenizer.json
        if (root / name).is_file() and (root / name).stat().st_size > MAX_TOKENIZER_BYTES:
            raise _refuse(root / name, f"{(root / name).stat().st_size:,} bytes, over the {MAX_TOKENIZER_BYTES:,}-byte "
                                       "bound.", "a tokeniser file is a few MB at most: is this the right folder?")
    tokenizer_json = root / "tokenizer.json"
    if not tokenizer_json.is_file():
        raise _refuse(tokenizer_json, "missing: the fast tokeniser's file is needed to map tokens to words.",
                      "save the tokeniser beside the model: tokenizer.save_pretrained(folder).")
    if tokenizer_json.stat().st_size > MAX_TOKENIZER_BYTES:
        raise _refuse(tokenizer_json, f"{tokenizer_json.stat().st_size:,} bytes, over the {MAX_TOKENIZER_BYTES:,}-byte "
                                      "bound.", "a tokeniser file is a few MB at most: is this the right folder?")
    for name in ("tokenizer_config.json", "special_tokens_map.json"):
        if (root / name).is_file():
            document = _read_json(root / name)
            for key in REMOTE_CODE_KEYS:
                if key in document:
                    raise _refuse(root / name, f"asks for remote code ({key!r}).",
                                  "TrustLens never runs a model's own code; save a built-in tokeniser.")
    fingerprint = _files_fingerprint(root, ("config.json", *TOKENIZER_FILES))
    return FolderCheck(config, _weights(root, trust_pickle), fingerprint)


def _weights(root: Path, trust_pickle: bool) -> str:
    """The weights file to load (its safetensors header checked); refused when missing or an untrusted pickle."""
    safetensors = root / "model.safetensors"
    pickle = root / "pytorch_model.bin"
    if safetensors.is_file():
        check_safetensors(safetensors)
        return safetensors.name
    if pickle.is_file():
        if not trust_pickle:
            raise _refuse(pickle, "is a pickle, and loading a pickle can run any code it names.",
                          "save with model.save_pretrained(folder, safe_serialization=True) to get model.safetensors, "
                          "or say you trust this file.")
        return pickle.name
    raise _refuse(safetensors, "missing: the folder has no weights (model.safetensors).",
                  "zip the whole folder save_pretrained() wrote (sharded weights are not read yet).")


def _files_fingerprint(root: Path, names: tuple[str, ...]) -> str:
    h = hashlib.sha256()
    for name in names:
        if (root / name).is_file():
            h.update(name.encode() + b"\0" + (root / name).read_bytes())
    return h.hexdigest()


@contextlib.contextmanager
def _offline(folder: str | os.PathLike[str], hint: str) -> Iterator[None]:
    """transformers offline (``HF_HUB_OFFLINE``, no progress bar) under the process-wide load lock; its loading
    errors become a :class:`FolderRefusedError` naming the folder."""
    import transformers

    with _load_lock:
        previous = os.environ.get("HF_HUB_OFFLINE")
        os.environ["HF_HUB_OFFLINE"] = "1"
        transformers.utils.logging.disable_progress_bar()
        try:
            yield
        except (OSError, ValueError, KeyError, RuntimeError) as exc:
            raise FolderRefusedError(f"{Path(folder).name}: transformers could not load it ({exc}).",
                                     hint=hint) from None
        finally:
            if previous is None:
                os.environ.pop("HF_HUB_OFFLINE", None)
            else:
                os.environ["HF_HUB_OFFLINE"] = previous


def load_pretrained(folder: str | os.PathLike[str], *, task: str = "sequence",
                    trust_pickle: bool = False) -> tuple[Any, Any, str]:
    """(model, fast tokeniser, files' fingerprint) from a checked local folder, in eval mode.

    ``task="sequence"`` loads ``AutoModelForSequenceClassification``; ``"encoder"`` ``AutoModel``.
    """
    if task == "image":
        raise ValueError("load_pretrained loads text models; use load_image_pretrained for an image classifier.")
    checked = check_folder(folder, task=task, trust_pickle=trust_pickle)
    from transformers import AutoModel, AutoModelForSequenceClassification, AutoTokenizer

    loader = AutoModelForSequenceClassification if task == "sequence" else AutoModel
    with _offline(folder, "check that config.json, the weights and the tokeniser come from the same "
                          "save_pretrained() call."):
        tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True, trust_remote_code=False)
        model = loader.from_pretrained(folder, local_files_only=True, trust_remote_code=False,
                                       attn_implementation="eager",
                                       use_safetensors=checked.weights == "model.safetensors")
    if not getattr(tokenizer, "is_fast", False):
        raise FolderRefusedError(f"{Path(folder).name}: the tokeniser is not a fast tokeniser.",
                                 hint="save a fast tokeniser (tokenizer.json) beside the model.")
    return model.eval(), tokenizer, checked.fingerprint


def load_image_pretrained(folder: str | os.PathLike[str], *,
                          trust_pickle: bool = False) -> tuple[Any, ImageProcessing, str]:
    """(model, its processor's settings, files' fingerprint) from a checked local folder of a
    ``*ForImageClassification``, in eval mode: ``AutoModelForImageClassification`` offline
    (``local_files_only``, ``HF_HUB_OFFLINE``, ``trust_remote_code=False``), eager attention (which returns
    attention maps), safetensors unless the pickle is trusted. The processor is read from its JSON by
    :func:`check_folder`, never instantiated.
    """
    checked = check_folder(folder, task="image", trust_pickle=trust_pickle)
    from transformers import AutoModelForImageClassification

    with _offline(folder, "check that config.json, the weights and preprocessor_config.json come from the same "
                          "model (model.save_pretrained() and processor.save_pretrained())."):
        model = AutoModelForImageClassification.from_pretrained(
            folder, local_files_only=True, trust_remote_code=False, attn_implementation="eager",
            use_safetensors=checked.weights == "model.safetensors")
    assert checked.image is not None  # task="image"
    return model.eval(), checked.image, checked.fingerprint
