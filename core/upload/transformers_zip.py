"""A Hugging Face classifier (text or image) uploaded as a ZIP of its ``save_pretrained`` folder.

What a user zips is the folder ``model.save_pretrained(folder)`` and ``tokenizer.save_pretrained(folder)``
wrote (config.json, model.safetensors, tokenizer.json, ...), or for an image classifier the model's and its
image processor's ``save_pretrained`` (config.json, model.safetensors, preprocessor_config.json), either the
folder itself or its files at the ZIP's root. Whether it is a text or an image classifier is read from
config.json's ``architectures`` (``*ForSequenceClassification`` or ``*ForImageClassification``); the format is
``"transformers"`` either way. Three steps, each refusing with the ZIP's name, the member and the field at fault:

- :func:`model_folder` recognises such a ZIP by its member names (a ``config.json`` at the root or one
  folder down, exactly one of them), never by the file's name;
- :func:`extracted` unpacks the model folder's files into a fresh temporary folder, removed afterwards:
  every member path must stay inside it (no absolute paths, no ``..``, no links), at most
  :data:`MAX_MEMBERS` members and :data:`MAX_UNPACKED_BYTES` bytes, both as declared and as counted
  while inflating (a member that inflates to more than it declares is a ZIP bomb);
- :func:`core.upload.transformers_folder.check_folder` and ``load_pretrained`` (``load_image_pretrained``)
  then read it: no remote code, only built-in ``*ForSequenceClassification`` / ``*ForImageClassification``
  architectures, safetensors weights (a ``pytorch_model.bin`` pickle only when the user trusts the file, as
  for every pickle-based upload), an image processor whose size agrees with the model's ``image_size``.

:func:`inspect_zip` reads the configuration only (for the upload page and ``inspect-model``);
:func:`load_adapter` loads the model behind a
:class:`core.adapters.transformer_adapter.TransformerTextAdapter`, or an image classifier behind a
:class:`core.adapters.hf_image_adapter.HFImageAdapter` (images at the data's own size, resized and
normalised inside the model as its processor would). The class names are the config's
``id2label`` in index order; the user's class names win, which matters when ``id2label`` holds
transformers' defaults (``LABEL_0``, ``LABEL_1``, ...). Texts are cut to their first
``DEFAULT_MAX_TOKENS`` (128) tokens, or fewer when the model has fewer positions.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import shutil
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from core.upload.model_upload import FORMAT_TITLES, ModelRefusedError, ModelSpecification

FORMAT = "transformers"
TITLE = FORMAT_TITLES[FORMAT]  # "Hugging Face classifier (zip of a save_pretrained folder)"
MAX_MEMBERS = 1000  # a save_pretrained folder holds about ten files
MAX_UNPACKED_BYTES = 2 << 30  # summed over every member, as declared and as inflated
_CHUNK = 1 << 20
_DEFAULT_LABEL = re.compile(r"LABEL_(\d+)")
_ZIP_HINT = ("zip the folder model.save_pretrained() and tokenizer.save_pretrained() (or, for an image classifier, "
             "image_processor.save_pretrained()) wrote, and nothing else.")


def _refuse(filename: str, what: str, hint: str) -> ModelRefusedError:
    return ModelRefusedError(f"{filename!r}: {what}", hint=hint)


def _parts(name: str) -> list[str]:
    return name.replace("\\", "/").split("/")


def _normal(name: str) -> str:
    """A member's path with ``\\`` as ``/`` and without empty or ``.`` parts (``./config.json`` is
    ``config.json``; ``..`` and absolute paths are refused separately)."""
    return "/".join(p for p in _parts(name) if p not in ("", "."))


# -- detection -------------------------------------------------------------------------------------------
def config_members(names: list[str]) -> list[str]:
    """The members named ``config.json`` at the root or one folder down (macOS' ``__MACOSX`` copies aside),
    each once, in archive order."""
    found = []
    for name in map(_normal, names):
        parts = name.split("/")
        if parts[-1] == "config.json" and len(parts) <= 2 and not parts[0].startswith("__MACOSX"):
            found.append(name)
    return list(dict.fromkeys(found))


def model_folder(names: list[str], filename: str = "model.zip") -> str | None:
    """The model folder inside a ZIP with these member names: ``""`` (the root) or ``"name/"``; None when
    no ``config.json`` sits at the root or one folder down.

    Raises
    ------
    ModelRefusedError
        Two or more model folders, naming them.
    """
    found = config_members(names)
    if not found:
        return None
    if len(found) > 1:
        shown = ", ".join(found[:4]) + ("..." if len(found) > 4 else "")
        raise _refuse(filename, f"holds {len(found)} model folders ({shown}), each with its config.json; TrustLens "
                                "takes one Hugging Face model per ZIP.",
                      "zip the one save_pretrained folder you want explained (a Trainer's output folder holds "
                      "checkpoint-*/ folders too: zip the final model's folder only).")
    return found[0][: -len("config.json")]


# -- safe extraction -------------------------------------------------------------------------------------
def _check_member(info: zipfile.ZipInfo, filename: str) -> None:
    name = info.filename
    parts = _parts(name)
    if name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name) or ".." in parts:
        raise _refuse(filename, f"member {name!r} would be written outside the folder it is extracted into "
                                "(an absolute path or '..').", _ZIP_HINT)
    if (info.external_attr >> 16) & 0o170000 == 0o120000:
        raise _refuse(filename, f"member {name!r} is a symbolic link; links are not followed.",
                      "zip the files themselves (zip -r without --symlinks).")
    if info.flag_bits & 0x1:
        raise _refuse(filename, f"member {name!r} is encrypted.", "zip the folder without a password.")


def _members(archive: zipfile.ZipFile, filename: str, prefix: str) -> list[tuple[zipfile.ZipInfo, str]]:
    """The model folder's own files (not its subfolders, not hidden files) as (info, file name), after
    checking every member of the archive."""
    infos = archive.infolist()
    if len(infos) > MAX_MEMBERS:
        raise _refuse(filename, f"holds {len(infos):,} members; up to {MAX_MEMBERS:,} are accepted.", _ZIP_HINT)
    seen: set[str] = set()
    for info in infos:
        _check_member(info, filename)
        key = _normal(info.filename)
        if key in seen and not info.is_dir():
            raise _refuse(filename, f"holds the member {info.filename!r} twice.", _ZIP_HINT)
        seen.add(key)
    declared = sum(info.file_size for info in infos)
    if declared > MAX_UNPACKED_BYTES:
        raise _refuse(filename, f"would extract to {declared / 2**20:,.0f} MiB; up to {MAX_UNPACKED_BYTES // 2**20:,} "
                                "MiB is accepted (a ZIP bomb, or more than one model's files).", _ZIP_HINT)
    out = []
    for info in infos:
        name = _normal(info.filename)
        if info.is_dir() or not name.startswith(prefix):
            continue
        rest = name[len(prefix):]
        if not rest or "/" in rest or rest.startswith("."):
            continue  # subfolders (checkpoints, runs/) and hidden files: not read by from_pretrained
        out.append((info, rest))
    return out


@contextlib.contextmanager
def extracted(data: bytes, filename: str = "model.zip") -> Iterator[tuple[Path, str]]:
    """(folder, prefix): the ZIP's model folder unpacked into a fresh temporary folder, removed on exit.

    ``prefix`` is the model folder's path inside the ZIP (``""`` or ``"name/"``).

    Raises
    ------
    ModelRefusedError
        Not a readable ZIP, no or two model folders, a member escaping the folder, a link, an encrypted
        member, too many members, too many bytes declared, or a member inflating past its declared size.
    """
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        raise _refuse(filename, f"not a readable ZIP archive ({exc}).", "zip the folder again and upload the "
                                "complete file.") from None
    with archive:
        prefix = model_folder(archive.namelist(), filename)
        if prefix is None:
            raise _refuse(filename, "holds no config.json at its root or one folder down.", _ZIP_HINT)
        members = _members(archive, filename, prefix)
        root = Path(tempfile.mkdtemp(prefix="trustlens-hf-"))
        try:
            folder = root / (prefix.rstrip("/") or "model")
            folder.mkdir()
            inside = folder.resolve()
            total = 0
            for info, name in members:
                target = folder / name
                if target.resolve().parent != inside:
                    raise _refuse(filename, f"member {info.filename!r} would be written outside the folder it is "
                                            "extracted into.", _ZIP_HINT)
                written = 0
                try:
                    with archive.open(info) as source, open(target, "xb") as sink:
                        while chunk := source.read(_CHUNK):
                            written += len(chunk)
                            total += len(chunk)
                            if written > info.file_size or total > MAX_UNPACKED_BYTES:
                                raise _refuse(filename, f"member {info.filename!r} inflates past its declared "
                                                        f"{info.file_size:,} bytes (a ZIP bomb).", _ZIP_HINT)
                            sink.write(chunk)
                except (zipfile.BadZipFile, EOFError, OSError, RuntimeError, NotImplementedError, ValueError) as exc:
                    # zipfile stops at the declared size, then finds the CRC wrong: a lying size ends here too.
                    raise _refuse(filename, f"member {info.filename!r} does not inflate to its declared "
                                            f"{info.file_size:,} bytes (a ZIP bomb, or a corrupt archive: {exc}).",
                                  "zip the folder again and upload the complete file.") from None
            yield folder, prefix
        finally:
            shutil.rmtree(root, ignore_errors=True)


def _named(exc: Any, filename: str, prefix: str, folder: Path) -> ModelRefusedError:
    """A refusal of the extracted folder, naming the ZIP and the member inside it."""
    message = exc.message
    if message.startswith(f"{folder.name}: "):
        message = message[len(folder.name) + 2:]
        return _refuse(filename, f"{prefix or 'the model folder'}: {message}", exc.hint or _ZIP_HINT)
    return _refuse(filename, f"{prefix}{message}", exc.hint or _ZIP_HINT)


@contextlib.contextmanager
def _naming(filename: str, prefix: str, folder: Path) -> Iterator[None]:
    """Re-raise the folder checks' refusals (:class:`FolderRefusedError`) as :func:`_named` ones."""
    from core.upload.transformers_folder import FolderRefusedError

    try:
        yield
    except FolderRefusedError as exc:
        raise _named(exc, filename, prefix, folder) from None


# -- what the configuration says ---------------------------------------------------------------------------
def class_names(config: dict[str, Any], where: str = "config.json") -> tuple[tuple[str, ...], bool]:
    """(the config's ``id2label`` names in index order, whether they are transformers' ``LABEL_k`` defaults).

    Raises
    ------
    ModelRefusedError
        ``id2label`` that is not an object of indices 0..n-1 to distinct names.
    """
    raw = config.get("id2label")
    if raw is None:
        n = config.get("num_labels", 2)
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ModelRefusedError(f"{where}: field 'num_labels' is {n!r}, not a positive integer.",
                                    hint="save the classifier again with save_pretrained().")
        names = tuple(f"LABEL_{i}" for i in range(n))
    else:
        try:
            by_index = {int(k): str(v) for k, v in raw.items()}
        except (AttributeError, TypeError, ValueError):
            raise ModelRefusedError(f"{where}: field 'id2label' is not an object of output indices to class names "
                                    f"(got {str(raw)[:80]}).", hint="save the classifier again with "
                                    "save_pretrained(), with id2label={0: 'neg', 1: 'pos'} in its config.") from None
        if sorted(by_index) != list(range(len(by_index))) or not by_index:
            raise ModelRefusedError(f"{where}: field 'id2label' has keys {sorted(by_index)[:8]}, not the output "
                                    f"indices 0..{len(by_index) - 1}.", hint="number the labels from 0.")
        names = tuple(by_index[i] for i in range(len(by_index)))
        if len(set(names)) != len(names):
            raise ModelRefusedError(f"{where}: field 'id2label' names a class twice ({', '.join(names[:8])}).",
                                    hint="give each output its own label, or give the class names in the spec.")
    default = all((m := _DEFAULT_LABEL.fullmatch(name)) and int(m.group(1)) == i for i, name in enumerate(names))
    return names, default


def max_tokens(config: Any, model_max_length: Any = None) -> int:
    """``DEFAULT_MAX_TOKENS`` (128), or fewer when the model or its tokeniser takes fewer positions."""
    from core.adapters.transformer_adapter import DEFAULT_MAX_TOKENS

    limits = [DEFAULT_MAX_TOKENS]
    for value in (getattr(config, "max_position_embeddings", None), model_max_length):
        if isinstance(value, int) and not isinstance(value, bool) and 1 < value < 1_000_000:
            limits.append(value)
    return min(limits)


def _config_object(config: dict[str, Any], where: str) -> Any:
    from transformers import CONFIG_MAPPING

    try:
        return CONFIG_MAPPING[config["model_type"]].from_dict(dict(config))
    except Exception as exc:  # noqa: BLE001 - a broken config must become a message naming it
        text = " ".join(str(exc).split())[:200]  # pydantic-style errors span lines
        raise ModelRefusedError(f"{where}: transformers cannot read it ({type(exc).__name__}: {text}).",
                                hint="save the classifier again with save_pretrained().") from None


def inspect_zip(data: bytes, filename: str = "model.zip") -> tuple[dict[str, Any], list[str], bool]:
    """(inferred spec and description, notes, whether the weights are a pickle) from the ZIP's
    configuration files; nothing is loaded and no weights are read beyond the safetensors header."""
    from core.upload.transformers_folder import check_folder, folder_task

    with extracted(data, filename) as (folder, prefix):
        with _naming(filename, prefix, folder):
            task = folder_task(folder)
            checked = check_folder(folder, task=task, trust_pickle=True)  # the pickle question is the caller's
        if task == "image":
            return _inspect_image(checked, filename, prefix)
        tokenizer_config: dict[str, Any] = {}
        if (folder / "tokenizer_config.json").is_file():
            tokenizer_config = json.loads((folder / "tokenizer_config.json").read_bytes())  # checked: an object
    where = f"{filename!r}: {prefix}config.json"
    names, default = class_names(checked.config, where)
    config = _config_object(checked.config, where)
    tokens = max_tokens(config, tokenizer_config.get("model_max_length"))
    tokenizer = str(tokenizer_config.get("tokenizer_class") or "a fast tokeniser") + " (tokenizer.json)"
    layers = int(getattr(config, "num_hidden_layers", 0) or 0)
    inferred: dict[str, Any] = {
        "input_kind": "text", "architecture": checked.architecture, "model_type": str(checked.config["model_type"]),
        "layers": layers, "hidden_size": getattr(config, "hidden_size", None), "tokenizer": tokenizer,
        "max_tokens": tokens, "weights": checked.weights, "n_classes": len(names), "class_names": list(names),
        "outputs": "logits",
    }
    notes = [f"{checked.architecture} ({prefix or 'the ZIP root'}): {layers} layers, tokeniser {tokenizer}; texts "
             f"are cut to their first {tokens} tokens."]
    if default:
        notes.append(f"config.json's id2label holds transformers' default names ({names[0]}..{names[-1]}): give the "
                     "class names (in output order) to use yours.")
    else:
        notes.append(f"Class names from config.json's id2label: {', '.join(names)}.")
    return inferred, notes, checked.weights != "model.safetensors"


def _inspect_image(checked: Any, filename: str, prefix: str) -> tuple[dict[str, Any], list[str], bool]:
    """:func:`inspect_zip` for a ``*ForImageClassification``: no image size is inferred (the data keeps its own
    size; the model resizes it as its processor would)."""
    where = f"{filename!r}: {prefix}config.json"
    names, default = class_names(checked.config, where)
    config = _config_object(checked.config, where)
    image = checked.image
    layers = int(getattr(config, "num_hidden_layers", 0) or 0)
    patch = getattr(config, "patch_size", None)
    inferred: dict[str, Any] = {
        "input_kind": "image", "architecture": checked.architecture, "model_type": str(checked.config["model_type"]),
        "layers": layers, "hidden_size": getattr(config, "hidden_size", None),
        "image_size": f"{image.height}x{image.width}", "patch_size": patch, "model_channels": image.channels,
        "preprocessing": image.describe(), "weights": checked.weights, "n_classes": len(names),
        "class_names": list(names), "outputs": "logits",
    }
    notes = [f"{checked.architecture} ({prefix or 'the ZIP root'}): {layers} layers, {image.height}x{image.width} "
             f"input in {image.channels} channels; {image.describe()}. Upload images at any size: the model resizes "
             "them as its processor would, and explanations stay on your pixels."]
    if default:
        notes.append(f"config.json's id2label holds transformers' default names ({names[0]}..{names[-1]}): give the "
                     "class names (in output order) to use yours.")
    else:
        notes.append(f"Class names from config.json's id2label: {', '.join(names)}.")
    return inferred, notes, checked.weights != "model.safetensors"


# -- loading -----------------------------------------------------------------------------------------------
def load_adapter(data: bytes, filename: str, spec: ModelSpecification, *, trust_pickle: bool = False,
                 name: str = "uploaded") -> Any:
    """The ZIP's classifier as a :class:`TransformerTextAdapter`, or an image classifier's as an
    :class:`core.adapters.hf_image_adapter.HFImageAdapter` (class names: the spec's, else ``id2label``).

    ``trust_pickle``: load ``pytorch_model.bin`` weights (the server's opt-in and the user's confirmation).

    Raises
    ------
    ModelRefusedError
        Everything :func:`extracted` and :func:`check_folder` refuse, a spec that is not for text, and a
        folder transformers cannot load.
    """
    from core.adapters.transformer_adapter import TransformerClassifier, TransformerTextAdapter
    from core.upload.transformers_folder import check_folder, folder_task, load_pretrained

    with extracted(data, filename) as (folder, prefix):
        with _naming(filename, prefix, folder):
            task = folder_task(folder)
        if task == "image":
            return _load_image_adapter(folder, prefix, filename, spec, trust_pickle=trust_pickle, name=name)
        if spec.input_kind != "text":
            # Not an image classifier: a folder that is not a text classifier either (a base ViTModel saved beside
            # image data) is refused for what it is, not for the data it came with.
            with _naming(filename, prefix, folder):
                check_folder(folder, trust_pickle=True)  # the pickle question does not arise: nothing is loaded
            raise _refuse(filename, f"a Hugging Face text classifier takes text, not {spec.input_kind} input.",
                          "pick input kind 'text' and upload a CSV of texts (or paste them).")
        with _naming(filename, prefix, folder):
            model, tokenizer, files = load_pretrained(folder, trust_pickle=trust_pickle)
    # The weights are in memory now (a memory map outlives the deleted file on POSIX systems).
    names = spec.class_names or class_names(model.config.to_dict(), f"{filename!r}: {prefix}config.json")[0]
    return TransformerTextAdapter(TransformerClassifier(model), tokenizer,
                                  max_tokens=max_tokens(model.config, getattr(tokenizer, "model_max_length", None)),
                                  name=name, class_names=names, input_kind="text", outputs=spec.outputs,
                                  encoder_fingerprint=f"hf-zip:{files}",
                                  description=f"Uploaded {TITLE} ({filename}): {type(model).__name__}, "
                                              f"{model.config.num_hidden_layers} layers, {type(tokenizer).__name__}")


def _load_image_adapter(folder: Path, prefix: str, filename: str, spec: ModelSpecification, *, trust_pickle: bool,
                        name: str) -> Any:
    """The extracted folder's ``*ForImageClassification`` as an :class:`HFImageAdapter`."""
    from core.adapters.hf_image_adapter import HFImageAdapter, HFImageClassifier, channel_note
    from core.upload.transformers_folder import load_image_pretrained

    if spec.input_kind != "image":
        raise _refuse(filename, f"a Hugging Face image classifier takes images, not {spec.input_kind} input.",
                      "pick input kind 'image' and upload a ZIP of images (one folder per class) or one image.")
    with _naming(filename, prefix, folder):
        model, processing, files = load_image_pretrained(folder, trust_pickle=trust_pickle)
    if spec.channels is not None and channel_note(spec.channels, processing.channels).endswith("not taken"):
        raise _refuse(filename, f"{prefix}config.json: the model takes {processing.channels}-channel images, and "
                                f"the data has {spec.channels} channels.", "upload grey or RGB images.")
    names = spec.class_names or class_names(model.config.to_dict(), f"{filename!r}: {prefix}config.json")[0]
    layers = int(getattr(model.config, "num_hidden_layers", 0) or 0)
    return HFImageAdapter(HFImageClassifier(model, processing), data_channels=spec.channels, name=name,
                          class_names=names, outputs=spec.outputs, encoder_fingerprint=f"hf-zip:{files}",
                          description=f"Uploaded {TITLE} ({filename}): {type(model).__name__}, {layers} layers, "
                                      f"{processing.height}x{processing.width} input")


def folder_zip(folder: str | Path) -> bytes:
    """A ``save_pretrained`` folder given as a path (``serve``, ``--upload``) as the ZIP the upload page takes.

    Its regular files only (the folder ``save_pretrained`` writes is flat; links and sub-folders are left out, so
    nothing outside the folder is read), at most :data:`MAX_MEMBERS` files and :data:`MAX_UNPACKED_BYTES` bytes, as
    for an uploaded ZIP; stored uncompressed. Everything else (remote code, weights, bounds) is checked by the same
    code as an uploaded ZIP's.
    """
    root = Path(folder)
    if not (root / "config.json").is_file():
        raise _refuse(root.name, "is a folder without config.json, so not a save_pretrained folder.", _ZIP_HINT)
    files = sorted(p for p in root.iterdir() if p.is_file() and not p.is_symlink())
    if len(files) > MAX_MEMBERS:
        raise _refuse(root.name, f"holds {len(files):,} files, over the {MAX_MEMBERS:,} of a model folder.", _ZIP_HINT)
    total = sum(p.stat().st_size for p in files)
    if total > MAX_UNPACKED_BYTES:
        raise _refuse(root.name, f"holds {total:,} bytes, over the {MAX_UNPACKED_BYTES:,}-byte bound.",
                      "TrustLens explains models that fit one machine's memory; use a smaller model.")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        for path in files:
            archive.write(path, arcname=path.name)
    return buffer.getvalue()
