"""Turn a user's data files into DataBundles, in memory and within limits.

- images: one PNG / JPEG, or a ZIP with one folder per class (``cat/1.png``, ``dog/2.png``, or
  the same under one top folder); integer folders (``0``, ``3``...) are output indices. Members whose path escapes the archive (``../``, absolute
  paths, drive letters), links, and archives whose extracted size or file count passes the
  limits (ZIP bombs) are refused; every image goes through :func:`core.upload.image_upload.load_image`
  (size and decompression-bomb limits). Nothing is extracted to disk.
- text: a CSV with a text column and an optional label column, or pasted text (one document
  per paragraph). Non-UTF-8 bytes are decoded with replacement characters and reported.
- tables: CSV or Parquet with a target column; every other column must be numeric and filled.
- class names: a text file (one per line) or JSON (a list, or ``{"0": "cat", ...}``).

Every problem is an :class:`~core.errors.InputShapeError` naming the file, member, column or
row, what was expected and what to try.
"""

from __future__ import annotations

import io
import json
import posixpath
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from core.bundle import DataBundle
from core.errors import InputShapeError

MAX_ARCHIVE_BYTES = 200 * 1024 * 1024  # extracted, summed over members
MAX_MEMBER_BYTES = 20 * 1024 * 1024
MAX_FILES = 5000
MAX_RATIO = 200  # extracted / compressed, per member: real images compress far less
MAX_TABLE_BYTES = 50 * 1024 * 1024
MAX_ROWS = 100_000
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")


@dataclass(frozen=True)
class LoadedData:
    """A bundle plus what the user should know about how it was read.

    ``index_labels`` is True when the labels are the model's output indices read from integer
    folder names (``0``, ``1``, ...), not positions in a list of names: the bundle's class names
    are then ``"0".."max"``, and the model's output width says how many classes there really are
    (folders for some classes may be missing; see :func:`core.upload.byom.open_upload`).
    """

    bundle: DataBundle
    labelled: bool
    notes: tuple[str, ...] = field(default_factory=tuple)
    index_labels: bool = False
    # Raw-column tables (:func:`raw_matrix`): column -> its texts, whose positions are the codes in ``bundle.x``.
    categories: dict[str, tuple[str, ...]] | None = None


# -- class names ------------------------------------------------------------------------------------
def parse_class_names(data: bytes, filename: str = "classes") -> tuple[str, ...]:
    """Class names from a text file (one per line) or JSON (list, or dict index -> name)."""
    if not data.strip():
        raise InputShapeError(f"{filename!r} is empty.", hint="write one class name per line, in the model's output order.")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputShapeError(f"{filename!r} is not UTF-8 text (byte {exc.start}).",
                              hint="save the class names as UTF-8, one per line.") from None
    stripped = text.strip()
    if stripped[:1] in "[{":
        try:
            doc = json.loads(stripped)
        except json.JSONDecodeError as exc:
            raise InputShapeError(f"{filename!r} looks like JSON but is not valid ({exc}).") from None
        if isinstance(doc, dict):
            try:
                items = sorted(((int(k), str(v)) for k, v in doc.items()))
            except ValueError:
                raise InputShapeError(f"{filename!r}: JSON object keys must be class indices; got {list(doc)[:5]}.") from None
            if [i for i, _ in items] != list(range(len(items))):
                raise InputShapeError(f"{filename!r}: class indices must be 0..{len(items) - 1}; got {[i for i, _ in items]}.")
            names = [v for _, v in items]
        elif isinstance(doc, list):
            names = [str(v) for v in doc]
        else:
            raise InputShapeError(f"{filename!r}: expected a JSON list of names; got {type(doc).__name__}.")
    else:
        names = [line.strip() for line in text.splitlines() if line.strip()]
    if len(set(names)) != len(names):
        dupes = sorted({n for n in names if names.count(n) > 1})
        raise InputShapeError(f"{filename!r} repeats class names: {', '.join(dupes)}.")
    return tuple(names)


def _labels_for(names: Sequence[str], class_names: Sequence[str] | None, source: str) -> tuple[np.ndarray, tuple[str, ...]]:
    """Indices of ``names`` into ``class_names`` (default: the sorted distinct names)."""
    names = [str(n) for n in names]
    classes = tuple(class_names) if class_names else tuple(sorted(set(names)))
    lookup = {c: i for i, c in enumerate(classes)}
    unknown = sorted(set(names) - set(lookup))
    if unknown and all(n.isdigit() and int(n) < len(classes) for n in names):
        # Labels 0..k-1 with class names given in words: the labels are output indices.
        return np.asarray([int(n) for n in names], dtype=np.int64), classes
    if unknown:
        raise InputShapeError(
            f"The {source} holds label(s) {', '.join(repr(u) for u in unknown[:6])} that are not among the class names "
            f"({', '.join(classes[:10])}{'...' if len(classes) > 10 else ''}).",
            hint="name the labels exactly like the model's classes, or give the class names in the data's terms.",
        )
    return np.asarray([lookup[n] for n in names], dtype=np.int64), classes


# -- images -----------------------------------------------------------------------------------------
def _safe_member(info: zipfile.ZipInfo, archive: str) -> None:
    name = info.filename
    normal = posixpath.normpath(name.replace("\\", "/"))
    if (name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":") or normal == ".."
            or normal.startswith("../") or "/../" in f"/{name.replace(chr(92), '/')}/"):
        raise InputShapeError(f"{archive!r} contains the path {name!r}, which escapes the archive's folder.",
                              hint="zip the class folders themselves (cat/1.png, dog/2.png) without '..' or absolute paths.")
    mode = (info.external_attr >> 16) & 0o170000
    if mode == 0o120000:
        raise InputShapeError(f"{archive!r} contains a symbolic link ({name!r}); links are not followed.",
                              hint="zip the image files themselves.")


def load_image_zip(data: bytes, shape: tuple[int, int, int] | None = None, filename: str = "images.zip",
                   class_names: Sequence[str] | None = None) -> LoadedData:
    """A ZIP of one folder per class -> image DataBundle (labels from the folder names).

    Parameters
    ----------
    shape : (channels, height, width), optional
        Model input size; default: the first image's size (grey -> 1 channel, else 3).
    class_names : sequence of str, optional
        The model's classes; folder names must be among them, or be indices into them (default:
        the sorted folder names; when every folder is an integer, the folders are output indices,
        the class names ``"0".."max"`` and ``index_labels`` is set).
    """
    from core.upload.image_upload import load_image

    if not data:
        raise InputShapeError(f"{filename!r} is empty (0 bytes).", hint="upload a ZIP with one folder of images per class.")
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        infos = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        raise InputShapeError(f"{filename!r} is not a readable ZIP archive ({exc}).",
                              hint="zip the class folders again and upload the complete file.") from None
    files = []
    for info in infos:
        _safe_member(info, filename)
        if info.is_dir():
            continue
        parts = [p for p in info.filename.replace("\\", "/").split("/") if p]
        if any(p.startswith((".", "__MACOSX")) for p in parts):
            continue
        if not parts[-1].lower().endswith(IMAGE_SUFFIXES):
            continue
        files.append((info, parts))
    if not files:
        raise InputShapeError(f"{filename!r} holds no images ({', '.join(IMAGE_SUFFIXES)}).",
                              hint="put the images in one folder per class: cat/1.png, dog/2.png.")
    if len(files) > MAX_FILES:
        raise InputShapeError(f"{filename!r} holds {len(files)} images; up to {MAX_FILES} are accepted.",
                              hint="upload a sample of the test set.")
    declared = sum(info.file_size for info, _ in files)
    if declared > MAX_ARCHIVE_BYTES:
        raise InputShapeError(f"{filename!r} would extract to {declared / 2**20:.0f} MiB; up to "
                              f"{MAX_ARCHIVE_BYTES // 2**20} MiB is accepted (a ZIP bomb, or too many images).",
                              hint="upload fewer or smaller images.")
    depth = {len(parts) for _, parts in files}
    labels, images, total = [], [], 0
    for info, parts in files:
        if info.file_size > MAX_MEMBER_BYTES or (info.compress_size and info.file_size / max(info.compress_size, 1) > MAX_RATIO
                                                 and info.file_size > 1_000_000):
            raise InputShapeError(f"{filename!r}: member {info.filename!r} would extract to {info.file_size / 2**20:.1f} MiB "
                                  f"from {info.compress_size} bytes (a ZIP bomb?).", hint="upload ordinary image files.")
        with archive.open(info) as handle:  # read at most the limit, whatever the header claims
            content = handle.read(MAX_MEMBER_BYTES + 1)
        total += len(content)
        if len(content) > MAX_MEMBER_BYTES or total > MAX_ARCHIVE_BYTES:
            raise InputShapeError(f"{filename!r} extracts to more than its limits (member {info.filename!r}).",
                                  hint="upload fewer or smaller images.")
        if shape is None:
            shape = _first_shape(content, info.filename)
        try:
            images.append(load_image(content, shape, invert=False).x)
        except InputShapeError as exc:
            raise InputShapeError(f"{filename!r}: {info.filename!r}: {exc.message}", hint=exc.hint) from None
        labels.append(parts[-2] if len(parts) >= 2 else "")
    notes = []
    if any(not label for label in labels):
        raise InputShapeError(f"{filename!r} has images outside any class folder (e.g. "
                              f"{next(i.filename for i, p in files if len(p) < 2)!r}).",
                              hint="put every image in a folder named after its class.")
    if len(depth) > 1:
        notes.append("Images sit at different folder depths; the class is each image's own folder.")
    index_labels = not class_names and all(_is_index(label) for label in labels)
    if index_labels:
        # Folders 0, 1, ... are output indices, even with some missing: "0".."max" for now, and the
        # model's output width completes the list (core.upload.byom.open_upload).
        y = np.asarray([int(label) for label in labels], dtype=np.int64)
        classes = tuple(str(i) for i in range(int(y.max()) + 1))
    else:
        y, classes = _labels_for(labels, class_names, f"archive {filename!r}")
    if len(set(labels)) == 1:
        notes.append(f"Only one class in the data ({labels[0]!r}).")
    x = np.stack(images).astype(np.float32)
    bundle = DataBundle(kind="image", x=x, y=y, class_names=classes, name=filename)
    return LoadedData(bundle, True, tuple(notes), index_labels)


def _is_index(name: str) -> bool:
    """A folder name that is a class index: ASCII digits only (``"3"``, ``"07"``), at most 6 of them."""
    return name.isascii() and name.isdigit() and len(name) <= 6


def _first_shape(content: bytes, member: str) -> tuple[int, int, int]:
    from PIL import Image

    from core.upload.image_upload import MAX_PIXELS

    try:
        image = Image.open(io.BytesIO(content))
    except Exception as exc:  # noqa: BLE001 - Pillow raises many types for bad files
        raise InputShapeError(f"{member!r} is not an image TrustLens can read ({type(exc).__name__}).") from None
    if image.width * image.height > MAX_PIXELS:
        raise InputShapeError(f"{member!r} is {image.width}x{image.height} pixels, too large to decode safely.",
                              hint="upload images under 40 megapixels.")
    channels = 1 if image.mode in ("1", "L", "LA", "I", "I;16", "F") else 3
    return (channels, int(image.height), int(image.width))


def load_single_image(data: bytes, shape: tuple[int, int, int] | None = None, filename: str = "image.png",
                      class_names: Sequence[str] | None = None) -> LoadedData:
    """One PNG / JPEG -> a bundle of one unlabelled image."""
    from core.upload.image_upload import load_image

    if not data:
        raise InputShapeError(f"{filename!r} is empty (0 bytes).", hint="upload a PNG or JPEG image.")
    shape = shape or _first_shape(data, filename)
    try:
        x = load_image(data, shape, invert=False).x
    except InputShapeError as exc:
        raise InputShapeError(f"{filename!r}: {exc.message}", hint=exc.hint) from None
    classes = tuple(class_names or ())
    return LoadedData(DataBundle(kind="image", x=x[None], y=None, class_names=classes or ("?",), name=filename), False,
                      ("One unlabelled image: pages that need true labels show the model's prediction instead.",))


# -- text -------------------------------------------------------------------------------------------
def decode_text(data: bytes, filename: str) -> tuple[str, list[str]]:
    """UTF-8 text (BOM stripped); other bytes become U+FFFD with a note naming the first bad byte."""
    try:
        return data.decode("utf-8-sig"), []
    except UnicodeDecodeError as exc:
        return data.decode("utf-8", errors="replace"), [
            f"{filename!r} is not valid UTF-8 (first bad byte at offset {exc.start}); undecodable bytes are shown as �."]


def load_text_csv(data: bytes, filename: str = "texts.csv", text_column: str | None = None,
                  label_column: str | None = None, class_names: Sequence[str] | None = None) -> LoadedData:
    """A CSV with a text column (default: ``text``, else the first string column) and an optional label column."""
    frame, notes = _read_csv(data, filename)
    if text_column is None:
        text_column = "text" if "text" in frame.columns else next(
            (c for c in frame.columns if frame[c].dtype == object and c != label_column), None)
    if text_column is None or text_column not in frame.columns:
        raise InputShapeError(f"{filename!r} has no text column {text_column!r}; its columns are "
                              f"{', '.join(map(repr, frame.columns[:12]))}.", hint="name the column holding the documents 'text'.")
    if label_column is None and "label" in frame.columns and label_column != text_column:
        label_column = "label"
    texts = frame[text_column]
    if texts.isna().any():
        row = int(np.flatnonzero(texts.isna().to_numpy())[0])
        raise InputShapeError(f"{filename!r}: column {text_column!r} is empty in row {row + 1}.",
                              hint="drop rows without text.")
    x = np.asarray([str(t) for t in texts], dtype=object)
    if label_column:
        if label_column not in frame.columns:
            raise InputShapeError(f"{filename!r} has no label column {label_column!r}; its columns are "
                                  f"{', '.join(map(repr, frame.columns[:12]))}.")
        labels = frame[label_column]
        if labels.isna().any():
            row = int(np.flatnonzero(labels.isna().to_numpy())[0])
            raise InputShapeError(f"{filename!r}: column {label_column!r} has no label in row {row + 1}.",
                                  hint="fill in every label, or drop the label column.")
        y, classes = _labels_for([str(v) for v in labels], class_names, f"column {label_column!r} of {filename!r}")
        if len(set(y.tolist())) == 1:
            notes.append(f"Only one class in the data ({classes[int(y[0])]!r}).")
        return LoadedData(DataBundle(kind="text", x=x, y=y, class_names=classes, name=filename), True, tuple(notes))
    return LoadedData(DataBundle(kind="text", x=x, y=None, class_names=tuple(class_names or ("?",)), name=filename), False,
                      tuple(notes + ["No label column: pages that need true labels show the model's prediction instead."]))


def load_pasted_text(text: str, class_names: Sequence[str] | None = None) -> LoadedData:
    """Pasted text -> one document per paragraph (blocks separated by a blank line)."""
    docs = [block.strip() for block in text.replace("\r\n", "\n").split("\n\n") if block.strip()]
    if not docs:
        raise InputShapeError("The pasted text is empty.", hint="paste at least one document.")
    return LoadedData(DataBundle(kind="text", x=np.asarray(docs, dtype=object), y=None,
                                 class_names=tuple(class_names or ("?",)), name="pasted text"), False,
                      ("Pasted text has no labels: pages that need true labels show the model's prediction instead.",))


# -- tables -----------------------------------------------------------------------------------------
def _read_csv(data: bytes, filename: str) -> tuple[pd.DataFrame, list[str]]:
    if not data:
        raise InputShapeError(f"{filename!r} is empty (0 bytes).", hint="upload a CSV with a header row.")
    if len(data) > MAX_TABLE_BYTES:
        raise InputShapeError(f"{filename!r} is {len(data) / 2**20:.0f} MiB; up to {MAX_TABLE_BYTES // 2**20} MiB is accepted.")
    text, notes = decode_text(data, filename)
    try:
        frame = pd.read_csv(io.StringIO(text), nrows=MAX_ROWS + 1)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError) as exc:
        raise InputShapeError(f"{filename!r} is not a CSV table TrustLens can read ({type(exc).__name__}: {str(exc)[:200]}).",
                              hint="save it as comma-separated values with a header row.") from None
    if len(frame) > MAX_ROWS:
        raise InputShapeError(f"{filename!r} has more than {MAX_ROWS} rows.", hint=f"upload at most {MAX_ROWS} rows.")
    if len(frame) == 0:
        raise InputShapeError(f"{filename!r} has a header but no rows.")
    frame.columns = [str(c).strip() for c in frame.columns]
    return frame, notes


def read_table(data: bytes, filename: str) -> tuple[pd.DataFrame, list[str]]:
    """A CSV or Parquet file as a DataFrame (Parquet by its ``PAR1`` magic, not its name)."""
    if data[:4] == b"PAR1":
        if len(data) > MAX_TABLE_BYTES:
            raise InputShapeError(f"{filename!r} is {len(data) / 2**20:.0f} MiB; up to {MAX_TABLE_BYTES // 2**20} MiB is accepted.")
        try:
            frame = pd.read_parquet(io.BytesIO(data))
        except Exception as exc:  # noqa: BLE001 - pyarrow raises many types for broken files
            raise InputShapeError(f"{filename!r} is not a Parquet file TrustLens can read ({type(exc).__name__}: "
                                  f"{str(exc)[:200]}).") from None
        if len(frame) > MAX_ROWS or len(frame) == 0:
            raise InputShapeError(f"{filename!r} has {len(frame)} rows; 1 to {MAX_ROWS} are accepted.")
        frame.columns = [str(c) for c in frame.columns]
        return frame, []
    return _read_csv(data, filename)


def numeric_matrix(frame: pd.DataFrame, features: Sequence[str], prefix: str = "") -> np.ndarray:
    """The ``features`` columns of ``frame`` as float32 of shape (n_rows, n_features).

    Raises InputShapeError naming the column and the first bad row for text, missing (NaN) or
    infinite values; ``prefix`` starts each message (e.g. the file name).
    """
    def refuse(message: str, hint: str | None = None) -> InputShapeError:
        text = prefix + message
        return InputShapeError(text[:1].upper() + text[1:], hint=hint)

    columns = []
    for feature in features:
        values = pd.to_numeric(frame[feature], errors="coerce")
        bad = values.isna() & frame[feature].notna()
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0])
            raise refuse(f"column {feature!r} must be numeric; row {row + 1} holds {frame[feature].iloc[row]!r}.",
                         "encode categories as numbers first.")
        if values.isna().any():
            rows = np.flatnonzero(values.isna().to_numpy())
            raise refuse(f"column {feature!r} has {len(rows)} missing (NaN) value(s), the first in row {int(rows[0]) + 1}.",
                         "fill them in or drop those rows: the model needs every feature.")
        column = values.to_numpy(dtype=np.float64)
        if not np.isfinite(column).all():
            row = int(np.flatnonzero(~np.isfinite(column))[0])
            raise refuse(f"column {feature!r} holds an infinite value in row {row + 1}.", "replace it by a finite number.")
        columns.append(column)
    return np.column_stack(columns).astype(np.float32)


def raw_matrix(frame: pd.DataFrame, features: Sequence[str], prefix: str = "") -> tuple[np.ndarray, dict[str, tuple[str, ...]]]:
    """The ``features`` columns of ``frame`` as a pipeline takes them: (float32 matrix, categories).

    For a model that takes raw columns (a scikit-learn pipeline fitted on a DataFrame, whose own
    encoders and imputers turn text and missing values into numbers). A numeric column stays numeric,
    missing values as NaN; a column holding text becomes codes into its sorted distinct texts
    (``categories[column]``), a missing text NaN. :meth:`core.adapters.sklearn_adapter.SklearnAdapter.with_columns`
    turns the codes back into the texts before the pipeline sees them. Infinite numbers are refused,
    naming the column and row.
    """
    columns, categories = [], {}
    for feature in features:
        raw = frame[feature]
        values = pd.to_numeric(raw, errors="coerce")
        if (values.isna() & raw.notna()).any():  # some text: the whole column is categorical
            texts = raw.astype("string").str.strip()
            names = tuple(sorted(set(texts.dropna().tolist())))
            codes = pd.Categorical(texts, categories=list(names)).codes.astype(np.float64)
            codes[codes < 0] = np.nan
            categories[str(feature)] = names
            columns.append(codes)
            continue
        column = values.to_numpy(dtype=np.float64)
        bad = np.isinf(column)
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            text = f"{prefix}column {feature!r} holds an infinite value in row {row + 1}."
            raise InputShapeError(text[:1].upper() + text[1:], hint="replace it by a finite number.")
        columns.append(column)
    return np.column_stack(columns).astype(np.float32), categories


def load_table(data: bytes, filename: str = "table.csv", target: str | None = "target",
               feature_names: Sequence[str] | None = None, class_names: Sequence[str] | None = None,
               raw_columns: bool = False) -> LoadedData:
    """A CSV / Parquet table with a ``target`` column -> tabular bundle.

    Parameters
    ----------
    target : str or None
        The label column (None: unlabelled rows).
    feature_names : sequence of str, optional
        The model's columns, in its order (a pipeline's ``feature_names_in_``); default: every
        column except the target, in file order.
    raw_columns : bool
        The model takes the columns as they are (text and missing values too; :func:`raw_matrix`),
        else every feature must be a number and filled (:func:`numeric_matrix`).
    """
    frame, notes = read_table(data, filename)
    if target is not None and target not in frame.columns:
        raise InputShapeError(f"{filename!r} has no target column {target!r}; its columns are "
                              f"{', '.join(map(repr, frame.columns[:15]))}{'...' if len(frame.columns) > 15 else ''}.",
                              hint="pick the column holding the true class, or choose 'no labels'.")
    features = list(feature_names) if feature_names else [c for c in frame.columns if c != target]
    missing = [f for f in features if f not in frame.columns]
    if missing:
        raise InputShapeError(f"{filename!r} lacks {len(missing)} of the model's feature columns: "
                              f"{', '.join(map(repr, missing[:8]))}.", hint="upload the table the model was trained on.")
    if not features:
        raise InputShapeError(f"{filename!r} has no feature columns besides the target {target!r}.")
    categories = None
    if raw_columns:
        x, categories = raw_matrix(frame, features, f"{filename!r}: ")
        missing_cells = [f for f in features if frame[f].isna().any()]
        if categories:
            notes.append(f"Text columns given to the model as text: {', '.join(categories)} (its pipeline encodes "
                         "them).")
        if missing_cells:
            notes.append(f"Missing values given to the model as they are, in {', '.join(missing_cells)} (its "
                         "pipeline imputes them, or the dry run says it cannot).")
        categories = categories or None
    else:
        x = numeric_matrix(frame, features, f"{filename!r}: ")
    display = frame.reset_index(drop=True)
    if target is None:
        return LoadedData(DataBundle(kind="tabular", x=x, y=None, class_names=tuple(class_names or ("?",)),
                                     feature_names=tuple(features), name=filename, display=display), False,
                          tuple(notes + ["No target column: pages that need true labels show the model's prediction instead."]),
                          categories=categories)
    labels = frame[target]
    if labels.isna().any():
        row = int(np.flatnonzero(labels.isna().to_numpy())[0])
        raise InputShapeError(f"{filename!r}: target column {target!r} is empty in row {row + 1}.",
                              hint="fill in every label or drop those rows.")
    y, classes = _labels_for([_label_text(v) for v in labels], class_names, f"target column {target!r} of {filename!r}")
    if len(set(y.tolist())) == 1:
        notes.append(f"Only one class in the data ({classes[int(y[0])]!r}).")
    return LoadedData(DataBundle(kind="tabular", x=x, y=y, class_names=classes, feature_names=tuple(features),
                                 name=filename, display=display), True, tuple(notes),
                      categories=categories)


def _label_text(value: object) -> str:
    # 1.0 read from a float column is the class "1" a scikit-learn model fitted on ints calls 1.
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)
