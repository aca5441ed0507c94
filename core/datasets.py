"""Dataset loaders for the built-in scenarios.

Where the data comes from, in order:

1. Embedded in scikit-learn (digits, breast cancer): always offline.
2. ``$TRUSTLENS_DATA_DIR`` (MNIST IDX files, the 20 Newsgroups archive, Titanic's CSV), laid out
   as in ``../shared/data`` (see README.md, "Offline data").
3. The canonical public download through scikit-learn's fetchers, for users with internet.

When none works, a :class:`DataUnavailableError` says which files were looked for and where.
Every split is deterministic (fixed seeds), so fingerprints and cached models stay valid.
"""

from __future__ import annotations

import gzip
import os
import struct
import tarfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from core.bundle import DataBundle
from core.errors import DataUnavailableError

ENV_VAR = "TRUSTLENS_DATA_DIR"
SEED = 0
Splits = dict[str, DataBundle]

NEWSGROUPS_CATEGORIES = ("alt.atheism", "soc.religion.christian")
NEWSGROUPS_ARCHIVES = ("20news-bydate-atheism-christian.tar.gz", "20news-bydate-reconstructed.tar.gz")
MNIST_FILES = {
    "train_x": "train-images-idx3-ubyte.gz",
    "train_y": "train-labels-idx1-ubyte.gz",
    "test_x": "t10k-images-idx3-ubyte.gz",
    "test_y": "t10k-labels-idx1-ubyte.gz",
}
# UCI Adult: the model's columns (education, one-to-one with education-num, is kept for the data browser
# only; fnlwgt, the census's sampling weight, is dropped). Categorical columns hold codes into ADULT_CATEGORIES,
# the value lists of adult.names; a missing value ("?") gets the code after the last category.
ADULT_FEATURES = ("age", "workclass", "education-num", "marital-status", "occupation", "relationship", "race", "sex",
                  "capital-gain", "capital-loss", "hours-per-week", "native-country")
ADULT_COLUMNS = ("age", "workclass", "fnlwgt", "education", "education-num", "marital-status", "occupation",
                 "relationship", "race", "sex", "capital-gain", "capital-loss", "hours-per-week", "native-country", "income")
ADULT_CATEGORIES: dict[str, tuple[str, ...]] = {
    "workclass": ("Private", "Self-emp-not-inc", "Self-emp-inc", "Federal-gov", "Local-gov", "State-gov", "Without-pay",
                  "Never-worked"),
    "marital-status": ("Married-civ-spouse", "Divorced", "Never-married", "Separated", "Widowed", "Married-spouse-absent",
                       "Married-AF-spouse"),
    "occupation": ("Tech-support", "Craft-repair", "Other-service", "Sales", "Exec-managerial", "Prof-specialty",
                   "Handlers-cleaners", "Machine-op-inspct", "Adm-clerical", "Farming-fishing", "Transport-moving",
                   "Priv-house-serv", "Protective-serv", "Armed-Forces"),
    "relationship": ("Wife", "Own-child", "Husband", "Not-in-family", "Other-relative", "Unmarried"),
    "race": ("White", "Asian-Pac-Islander", "Amer-Indian-Eskimo", "Other", "Black"),
    "sex": ("Female", "Male"),
    "native-country": ("United-States", "Cambodia", "England", "Puerto-Rico", "Canada", "Germany",
                       "Outlying-US(Guam-USVI-etc)", "India", "Japan", "Greece", "South", "China", "Cuba", "Iran",
                       "Honduras", "Philippines", "Italy", "Poland", "Jamaica", "Vietnam", "Mexico", "Portugal", "Ireland",
                       "France", "Dominican-Republic", "Laos", "Ecuador", "Taiwan", "Haiti", "Columbia", "Hungary",
                       "Guatemala", "Nicaragua", "Scotland", "Thailand", "Yugoslavia", "El-Salvador", "Trinadad&Tobago",
                       "Peru", "Hong", "Holand-Netherlands"),
}
# Age bands for group comparisons (a derived display column, declared sensitive by the scenario).
ADULT_AGE_BANDS = ((0, 25, "under 25"), (25, 45, "25-44"), (45, 65, "45-64"), (65, 200, "65 and over"))
TITANIC_FEATURES = ("Pclass", "Sex_male", "Age", "SibSp", "Parch", "Fare", "Embarked_C", "Embarked_Q", "Embarked_S")


def data_dir() -> Path | None:
    """The folder named by ``TRUSTLENS_DATA_DIR``, or None when unset."""
    value = os.environ.get(ENV_VAR)
    return Path(value).expanduser() if value else None


@dataclass(frozen=True)
class Availability:
    available: bool
    source: str


# -- local file discovery --------------------------------------------------------------------
def _mnist_dir() -> Path | None:
    root = data_dir()
    if root is None:
        return None
    for candidate in (root / "mnist", root / "MNIST" / "raw", root):
        if all((candidate / f).is_file() for f in MNIST_FILES.values()):
            return candidate
    return None


def _newsgroups_archive() -> Path | None:
    root = data_dir()
    if root is None:
        return None
    for name in NEWSGROUPS_ARCHIVES:
        if (root / name).is_file():
            return root / name
    return None


def _titanic_csv() -> Path | None:
    root = data_dir()
    if root is None:
        return None
    for candidate in (root / "titanic" / "train.csv", root / "titanic.csv"):
        if candidate.is_file():
            return candidate
    return None


def _adult_dir() -> Path | None:
    root = data_dir()
    if root is None:
        return None
    folder = root / "adult"
    return folder if (folder / "adult.data").is_file() and (folder / "adult.test").is_file() else None


def availability(dataset: str) -> Availability:
    """Whether ``dataset`` can be loaded without a download, and from where."""
    embedded = {"digits", "breast-cancer"}
    if dataset in embedded:
        return Availability(True, "embedded in scikit-learn")
    local = {"mnist": _mnist_dir, "newsgroups": _newsgroups_archive, "titanic": _titanic_csv,
             "adult": _adult_dir}[dataset]()
    if local is not None:
        return Availability(True, str(local))
    return Availability(False, f"not in {ENV_VAR}; would be downloaded on first use (needs internet)")


def _unavailable(dataset: str, looked_for: str, exc: BaseException) -> DataUnavailableError:
    where = data_dir()
    place = f"{ENV_VAR}={str(where)!r}" if where else f"{ENV_VAR} is not set"
    return DataUnavailableError(
        f"The {dataset} data is not available offline ({place}; looked for {looked_for}) and the "
        f"download failed: {type(exc).__name__}: {exc}.",
        hint=f"set {ENV_VAR} to a folder holding {looked_for} (e.g. ../shared/data), or connect to the "
        "internet once so scikit-learn can download it, or pick the 'digits' or 'breast-cancer' scenario, "
        "which work offline.",
    )


# -- splitting -------------------------------------------------------------------------------
def _split_indices(y: np.ndarray, test: float, val: float, seed: int = SEED) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    from sklearn.model_selection import train_test_split

    idx = np.arange(len(y))
    rest, test_idx = train_test_split(idx, test_size=test, random_state=seed, stratify=y)
    train_idx, val_idx = train_test_split(rest, test_size=val / (1 - test), random_state=seed, stratify=y[rest])
    return np.sort(train_idx), np.sort(val_idx), np.sort(test_idx)


def _bundles(name: str, make: Callable[[np.ndarray, str], DataBundle], parts: dict[str, np.ndarray]) -> Splits:
    return {split: make(idx, f"{name}/{split}") for split, idx in parts.items()}


# -- digits ----------------------------------------------------------------------------------
def load_digits() -> Splits:
    """scikit-learn's 8x8 digits (1,797 images), 60/15/25 train/val/test, pixels in [0, 1]."""
    from sklearn.datasets import load_digits as sk_load

    raw = sk_load()
    x = (raw.images / 16.0).astype(np.float32)[:, None]
    y = raw.target.astype(np.int64)
    classes = tuple(str(c) for c in range(10))
    train, val, test = _split_indices(y, test=0.25, val=0.15)
    return _bundles(
        "digits",
        lambda idx, name: DataBundle("image", x[idx], y[idx], classes, name=name),
        {"train": train, "val": val, "test": test},
    )


# -- MNIST -----------------------------------------------------------------------------------
def _read_idx(path: Path) -> np.ndarray:
    with gzip.open(path, "rb") as fh:
        magic = struct.unpack(">I", fh.read(4))[0]
        ndim = magic & 0xFF
        if magic >> 8 != 0x08:
            raise DataUnavailableError(f"{path} is not an unsigned-byte IDX file (magic {magic:#010x}).")
        shape = struct.unpack(">" + "I" * ndim, fh.read(4 * ndim))
        data = np.frombuffer(fh.read(), dtype=np.uint8)
    if data.size != int(np.prod(shape)):
        raise DataUnavailableError(f"{path} is truncated: {data.size} bytes for shape {shape}.")
    return data.reshape(shape)


def load_mnist() -> Splits:
    """MNIST: 55,000 train / 5,000 val (the last of the official train set) / 10,000 test."""
    folder = _mnist_dir()
    if folder is not None:
        train_x = _read_idx(folder / MNIST_FILES["train_x"])
        train_y = _read_idx(folder / MNIST_FILES["train_y"])
        test_x = _read_idx(folder / MNIST_FILES["test_x"])
        test_y = _read_idx(folder / MNIST_FILES["test_y"])
    else:
        try:
            from sklearn.datasets import fetch_openml

            bunch = fetch_openml("mnist_784", version=1, as_frame=False, parser="liac-arff", n_retries=1)
        except Exception as exc:  # network errors come in many types
            raise _unavailable("MNIST", "mnist/" + ", mnist/".join(MNIST_FILES.values()), exc) from exc
        images = bunch.data.reshape(-1, 28, 28).astype(np.uint8)
        labels = bunch.target.astype(np.uint8)
        train_x, test_x, train_y, test_y = images[:60000], images[60000:], labels[:60000], labels[60000:]
    classes = tuple(str(c) for c in range(10))

    def bundle(x: np.ndarray, y: np.ndarray, name: str) -> DataBundle:
        return DataBundle("image", (x.astype(np.float32) / 255.0)[:, None], y.astype(np.int64), classes, name=name)

    return {
        "train": bundle(train_x[:55000], train_y[:55000], "mnist/train"),
        "val": bundle(train_x[55000:], train_y[55000:], "mnist/val"),
        "test": bundle(test_x, test_y, "mnist/test"),
    }


# -- 20 Newsgroups ---------------------------------------------------------------------------
def strip_headers(text: str) -> str:
    """Drop everything before the first blank line (the Usenet headers), as scikit-learn does."""
    _before, _blank, after = text.partition("\n\n")
    return after


def _read_newsgroups_archive(archive: Path) -> dict[str, tuple[list[str], list[int]]]:
    """Documents of the two categories per split, read straight from the tar (latin-1).

    Members are read in memory, never extracted, so a crafted archive cannot write outside
    any folder. Documents are sorted by path for a deterministic order.
    """
    found: dict[str, list[tuple[str, int, str]]] = {"train": [], "test": []}
    with tarfile.open(archive, "r:gz") as tar:
        for member in tar:
            if not member.isfile():
                continue
            parts = Path(member.name).parts
            if len(parts) < 3:
                continue
            split_dir, category = parts[-3], parts[-2]
            if category not in NEWSGROUPS_CATEGORIES or not split_dir.startswith("20news-bydate-"):
                continue
            split = split_dir.removeprefix("20news-bydate-")
            if split not in found:
                continue
            fh = tar.extractfile(member)
            if fh is None:
                continue
            text = fh.read().decode("latin-1")
            found[split].append((member.name, NEWSGROUPS_CATEGORIES.index(category), text))
    result = {}
    for split, docs in found.items():
        docs.sort()
        result[split] = ([d[2] for d in docs], [d[1] for d in docs])
    return result


def load_newsgroups(remove_headers: bool = False) -> Splits:
    """alt.atheism vs soc.religion.christian, the classic LIME example.

    train 90% / val 10% of the official "bydate" train set; test = the official test set.
    With ``remove_headers`` the Usenet headers (From:, Subject:, NNTP-Posting-Host: ...) are cut.
    """
    archive = _newsgroups_archive()
    if archive is not None:
        docs = _read_newsgroups_archive(archive)
        train_texts, train_y = docs["train"]
        test_texts, test_y = docs["test"]
    else:
        try:
            from sklearn.datasets import fetch_20newsgroups

            kw = dict(categories=list(NEWSGROUPS_CATEGORIES), remove=(), shuffle=False)
            tr, te = fetch_20newsgroups(subset="train", **kw), fetch_20newsgroups(subset="test", **kw)
        except Exception as exc:
            raise _unavailable("20 Newsgroups", " or ".join(NEWSGROUPS_ARCHIVES), exc) from exc
        train_texts, train_y, test_texts, test_y = tr.data, list(tr.target), te.data, list(te.target)
    if not train_texts or not test_texts:
        raise DataUnavailableError(f"{archive} holds no alt.atheism / soc.religion.christian documents.")
    if remove_headers:
        train_texts = [strip_headers(t) for t in train_texts]
        test_texts = [strip_headers(t) for t in test_texts]
    classes = ("atheism", "christian")
    x_all = np.array(train_texts, dtype=object)
    y_all = np.asarray(train_y, dtype=np.int64)
    from sklearn.model_selection import train_test_split

    train_idx, val_idx = train_test_split(np.arange(len(y_all)), test_size=0.1, random_state=SEED, stratify=y_all)
    train_idx, val_idx = np.sort(train_idx), np.sort(val_idx)
    name = "newsgroups" + ("-noheaders" if remove_headers else "")

    def bundle(x: np.ndarray, y: np.ndarray, split: str) -> DataBundle:
        first_lines = [_subject(t) for t in x]
        return DataBundle("text", x, y, classes, name=f"{name}/{split}", display=pd.DataFrame({"subject": first_lines}))

    return {
        "train": bundle(x_all[train_idx], y_all[train_idx], "train"),
        "val": bundle(x_all[val_idx], y_all[val_idx], "val"),
        "test": bundle(np.array(test_texts, dtype=object), np.asarray(test_y, dtype=np.int64), "test"),
    }


def _subject(text: str) -> str:
    for line in text.splitlines()[:40]:
        if line.lower().startswith("subject:"):
            return line[8:].strip()
    stripped = text.strip()
    return stripped.splitlines()[0][:120] if stripped else ""


def _tabular_splits(name: str, x: np.ndarray, y: np.ndarray, classes: tuple[str, ...],
                    features: tuple[str, ...], display: pd.DataFrame) -> Splits:
    """60/15/25 stratified train/val/test bundles of a table, each with its display rows."""
    train, val, test = _split_indices(y, test=0.25, val=0.15)
    return _bundles(
        name,
        lambda idx, split_name: DataBundle("tabular", x[idx], y[idx], classes, features, name=split_name,
                                           display=display.iloc[idx].reset_index(drop=True)),
        {"train": train, "val": val, "test": test},
    )


# -- breast cancer ---------------------------------------------------------------------------
def load_breast_cancer() -> Splits:
    """Wisconsin breast cancer (569 rows, 30 features), 60/15/25 train/val/test."""
    from sklearn.datasets import load_breast_cancer as sk_load

    raw = sk_load()
    x = raw.data.astype(np.float32)
    y = raw.target.astype(np.int64)
    features = tuple(str(f) for f in raw.feature_names)
    classes = tuple(str(c) for c in raw.target_names)  # ("malignant", "benign")
    frame = pd.DataFrame(raw.data, columns=list(features))
    return _tabular_splits("breast-cancer", x, y, classes, features, frame)


# -- Titanic ---------------------------------------------------------------------------------
def _titanic_frame() -> pd.DataFrame:
    path = _titanic_csv()
    if path is not None:
        return pd.read_csv(path)
    try:
        from sklearn.datasets import fetch_openml

        frame = fetch_openml("titanic", version=1, as_frame=True, parser="auto", n_retries=1).frame
    except Exception as exc:
        raise _unavailable("Titanic", "titanic/train.csv", exc) from exc
    rename = {c: c.capitalize() for c in frame.columns}
    rename.update({"sibsp": "SibSp", "parch": "Parch", "pclass": "Pclass"})
    return frame.rename(columns=rename)


def titanic_features(frame: pd.DataFrame, age_fill: float, fare_fill: float) -> np.ndarray:
    """Numeric features of shape (n, 9) in the order of ``TITANIC_FEATURES``.

    Missing ages and fares are filled with the given medians (computed on the whole file,
    which holds no labels' information), Embarked is one-hot (missing -> all zero).
    """
    sex = frame["Sex"].astype(str).str.lower().eq("male").astype(float)
    embarked = frame["Embarked"].astype(str)
    cols = [
        pd.to_numeric(frame["Pclass"]).astype(float),
        sex,
        pd.to_numeric(frame["Age"], errors="coerce").fillna(age_fill),
        pd.to_numeric(frame["SibSp"]).astype(float),
        pd.to_numeric(frame["Parch"]).astype(float),
        pd.to_numeric(frame["Fare"], errors="coerce").fillna(fare_fill),
        embarked.eq("C").astype(float),
        embarked.eq("Q").astype(float),
        embarked.eq("S").astype(float),
    ]
    return np.column_stack([np.asarray(c, dtype=np.float32) for c in cols])


def load_titanic() -> Splits:
    """Kaggle Titanic train.csv (891 passengers), 60/15/25 train/val/test; died / survived."""
    frame = _titanic_frame()
    y = pd.to_numeric(frame["Survived"]).astype(np.int64).to_numpy()
    age_fill = float(pd.to_numeric(frame["Age"], errors="coerce").median())
    fare_fill = float(pd.to_numeric(frame["Fare"], errors="coerce").median())
    x = titanic_features(frame, age_fill, fare_fill)
    keep = [c for c in ("Name", "Pclass", "Sex", "Age", "SibSp", "Parch", "Fare", "Embarked", "Cabin", "Ticket") if c in frame]
    display = frame[keep]
    classes = ("died", "survived")
    return _tabular_splits("titanic", x, y, classes, TITANIC_FEATURES, display)


# -- UCI Adult -------------------------------------------------------------------------------
def adult_categorical_sizes() -> tuple[int, ...]:
    """Codes per model column: 0 for a numeric column, else its categories plus one for "missing"."""
    return tuple(len(ADULT_CATEGORIES[c]) + 1 if c in ADULT_CATEGORIES else 0 for c in ADULT_FEATURES)


def _adult_frame(path: Path) -> pd.DataFrame:
    frame = pd.read_csv(path, header=None, names=list(ADULT_COLUMNS), skipinitialspace=True, na_values="?",
                        comment="|", keep_default_na=False)
    frame = frame.dropna(subset=["income"])
    frame["income"] = frame["income"].str.rstrip(".")  # the test file writes ">50K."
    return frame.reset_index(drop=True)


def adult_features(frame: pd.DataFrame) -> np.ndarray:
    """Model columns (:data:`ADULT_FEATURES`) of raw Adult rows: numbers as they are, categories as codes."""
    columns = []
    for name in ADULT_FEATURES:
        if name in ADULT_CATEGORIES:
            values = ADULT_CATEGORIES[name]
            codes = pd.Categorical(frame[name], categories=list(values)).codes.astype(np.float32)
            codes[codes < 0] = len(values)  # missing, or a value adult.names does not list
            columns.append(codes)
        else:
            columns.append(pd.to_numeric(frame[name]).to_numpy(np.float32))
    return np.stack(columns, axis=1)


def adult_age_band(age: pd.Series) -> pd.Series:
    """The age band of each person, an ordered categorical (groups are listed youngest first)."""
    bands = pd.Series(index=age.index, dtype=object)
    for low, high, label in ADULT_AGE_BANDS:
        bands[(age >= low) & (age < high)] = label
    return bands.astype(pd.CategoricalDtype([label for _, _, label in ADULT_AGE_BANDS], ordered=True))


def load_adult() -> Splits:
    """UCI Adult (census income): the official adult.data (32,561 rows: 85 % train, 15 % validation,
    stratified) and adult.test (16,281 rows: test); classes <=50K / >50K. Offline only: the files come
    from ``$TRUSTLENS_DATA_DIR/adult``."""
    folder = _adult_dir()
    if folder is None:
        where = data_dir()
        raise DataUnavailableError(
            f"The UCI Adult data is not available ({f'{ENV_VAR}={str(where)!r}' if where else f'{ENV_VAR} is not set'}; "
            "looked for adult/adult.data and adult/adult.test). TrustLens never downloads it.",
            hint=f"set {ENV_VAR} to a folder holding adult/adult.data and adult/adult.test (e.g. ../shared/data), "
            "or pick the 'breast-cancer' scenario, which works offline.")
    frames = {"data": _adult_frame(folder / "adult.data"), "test": _adult_frame(folder / "adult.test")}
    classes = ("<=50K", ">50K")
    out: Splits = {}
    for source, frame in frames.items():
        y = (frame["income"] == ">50K").astype(np.int64).to_numpy()
        x = adult_features(frame)
        display = frame.drop(columns=["income", "fnlwgt"])  # fnlwgt: the census's sampling weight, not a trait
        display.insert(1, "age band", adult_age_band(display["age"]))
        parts = {"test": np.arange(len(y))}
        if source == "data":
            from sklearn.model_selection import train_test_split

            train_idx, val_idx = train_test_split(np.arange(len(y)), test_size=0.15, random_state=SEED, stratify=y)
            parts = {"train": np.sort(train_idx), "val": np.sort(val_idx)}
        for split, idx in parts.items():
            out[split] = DataBundle("tabular", x[idx], y[idx], classes, ADULT_FEATURES, name=f"adult/{split}",
                                    display=display.iloc[idx].reset_index(drop=True))
    return {split: out[split] for split in ("train", "val", "test")}
