"""Hugging Face ``save_pretrained`` folders, read offline and without running anything they name.

:func:`check_folder` reads only JSON and the safetensors header, and refuses, naming the file and the
field:

- a config asking for remote code (``auto_map``, ``trust_remote_code``): transformers would import
  Python files shipped with the model;
- a ``model_type`` transformers does not know, or (for a classifier) an architecture that is not a
  ``*ForSequenceClassification``;
- weights only in ``pytorch_model.bin`` (a pickle) unless the user says they trust the file, and a
  folder with no weights at all;
- a safetensors header that lies (a tensor whose bytes do not fit the file, or whose shape and dtype
  disagree with its byte range), and files over the size bounds (a 200 MB tokenizer.json).

:func:`load_pretrained` then loads from the local folder only (``local_files_only``,
``HF_HUB_OFFLINE``, ``trust_remote_code=False``) with eager attention, which returns attention maps.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.errors import TrustLensError

MAX_CONFIG_BYTES = 1 << 20  # config.json, tokenizer_config.json, special_tokens_map.json
MAX_TOKENIZER_BYTES = 50 << 20  # tokenizer.json (bert-base's is 0.7 MB, xlm-roberta's 17 MB)
MAX_WEIGHTS_BYTES = 2 << 30  # model.safetensors
MAX_HEADER_BYTES = 100 << 20  # a safetensors JSON header
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt", "merges.txt",
                   "vocab.json", "sentencepiece.bpe.model", "spiece.model")
REMOTE_CODE_KEYS = ("auto_map", "trust_remote_code")
_DTYPE_BYTES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1,
                "F8_E4M3": 1, "F8_E5M2": 1, "U16": 2, "U32": 4, "U64": 8}
_load_lock = threading.Lock()  # transformers' loading mutates process-wide logging and environment state


class FolderRefusedError(TrustLensError):
    """A model folder that is not loaded, with the file and field at fault."""


@dataclass(frozen=True)
class FolderCheck:
    """What :func:`check_folder` found: the config, which weights file to load, the files' fingerprint."""

    config: dict[str, Any]
    weights: str  # "model.safetensors" or "pytorch_model.bin"
    fingerprint: str  # sha256 over config and tokeniser files (the weights enter the model's own fingerprint)

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


def check_folder(folder: str | os.PathLike[str], *, task: str = "sequence", trust_pickle: bool = False) -> FolderCheck:
    """Check a ``save_pretrained`` folder before anything is loaded from it (see the module docstring).

    ``task``: ``"sequence"`` (a ``*ForSequenceClassification``) or ``"encoder"`` (any known model).
    """
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
            raise _refuse(config_path, f"architecture {arch or 'none'!r} is not a *ForSequenceClassification model.",
                          "save the fine-tuned classifier (AutoModelForSequenceClassification), not its base model.")
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
    safetensors = root / "model.safetensors"
    pickle = root / "pytorch_model.bin"
    if safetensors.is_file():
        check_safetensors(safetensors)
        weights = safetensors.name
    elif pickle.is_file():
        if not trust_pickle:
            raise _refuse(pickle, "is a pickle, and loading a pickle can run any code it names.",
                          "save with model.save_pretrained(folder, safe_serialization=True) to get model.safetensors, "
                          "or say you trust this file.")
        weights = pickle.name
    else:
        raise _refuse(safetensors, "missing: the folder has no weights (model.safetensors).",
                      "zip the whole folder save_pretrained() wrote (sharded weights are not read yet).")
    h = hashlib.sha256()
    for name in ("config.json", *TOKENIZER_FILES):
        if (root / name).is_file():
            h.update(name.encode() + b"\0" + (root / name).read_bytes())
    return FolderCheck(config, weights, h.hexdigest())


def load_pretrained(folder: str | os.PathLike[str], *, task: str = "sequence",
                    trust_pickle: bool = False) -> tuple[Any, Any, str]:
    """(model, fast tokeniser, files' fingerprint) from a checked local folder, in eval mode.

    ``task="sequence"`` loads ``AutoModelForSequenceClassification``; ``"encoder"`` ``AutoModel``.
    """
    checked = check_folder(folder, task=task, trust_pickle=trust_pickle)
    import transformers
    from transformers import AutoModel, AutoModelForSequenceClassification, AutoTokenizer

    loader = AutoModelForSequenceClassification if task == "sequence" else AutoModel
    with _load_lock:
        previous = os.environ.get("HF_HUB_OFFLINE")
        os.environ["HF_HUB_OFFLINE"] = "1"
        transformers.utils.logging.disable_progress_bar()
        try:
            tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True, trust_remote_code=False)
            model = loader.from_pretrained(folder, local_files_only=True, trust_remote_code=False,
                                           attn_implementation="eager",
                                           use_safetensors=checked.weights == "model.safetensors")
        except (OSError, ValueError, KeyError, RuntimeError) as exc:
            raise FolderRefusedError(f"{Path(folder).name}: transformers could not load it ({exc}).",
                                     hint="check that config.json, the weights and the tokeniser come from the same "
                                          "save_pretrained() call.") from None
        finally:
            if previous is None:
                os.environ.pop("HF_HUB_OFFLINE", None)
            else:
                os.environ["HF_HUB_OFFLINE"] = previous
    if not getattr(tokenizer, "is_fast", False):
        raise FolderRefusedError(f"{Path(folder).name}: the tokeniser is not a fast tokeniser.",
                                 hint="save a fast tokeniser (tokenizer.json) beside the model.")
    return model.eval(), tokenizer, checked.fingerprint
