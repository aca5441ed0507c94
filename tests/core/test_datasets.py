"""Dataset loaders (core/datasets.py), checked against counts published in ../shared/data/README.md."""

from __future__ import annotations

import re
from collections import Counter

import numpy as np
import pytest

from core import datasets
from core.errors import DataUnavailableError
from tests.conftest import require_dataset


def row_multiset(x: np.ndarray, y: np.ndarray) -> Counter:
    return Counter(xi.tobytes() + b"|" + str(int(yi)).encode() for xi, yi in zip(x, y))


# -- digits ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def digits():
    return datasets.load_digits()


def test_digits_shapes_and_pixel_range(digits):
    assert set(digits) == {"train", "val", "test"}
    for split, b in digits.items():
        assert b.kind == "image" and b.x.dtype == np.float32 and b.x.shape[1:] == (1, 8, 8)
        assert b.y.dtype == np.int64 and b.y.shape == (len(b),)
        assert b.x.min() >= 0.0 and b.x.max() <= 1.0
        assert b.class_names == tuple(str(i) for i in range(10))
        assert set(np.unique(b.y)) == set(range(10))  # stratified: every class in every split
        assert b.name == f"digits/{split}"
    assert max(b.x.max() for b in digits.values()) == 1.0  # scaled by 16, not left in [0, 16]


def test_digits_splits_partition_all_1797_samples(digits):
    from sklearn.datasets import load_digits

    raw = load_digits()
    sizes = {k: len(b) for k, b in digits.items()}
    assert sum(sizes.values()) == 1797
    assert sizes["test"] == pytest.approx(0.25 * 1797, abs=2)
    assert sizes["val"] == pytest.approx(0.15 * 1797, abs=2)
    full = row_multiset((raw.images / 16.0).astype(np.float32)[:, None], raw.target)
    union = Counter()
    for b in digits.values():
        union += row_multiset(b.x, b.y)
    assert union == full  # disjoint and covering (as multisets: a few digits images repeat)
    # no sample appears in two splits more often than it exists in the data
    train, val, test = (row_multiset(digits[k].x, digits[k].y) for k in ("train", "val", "test"))
    for a, b in ((train, val), (train, test), (val, test)):
        for row in set(a) & set(b):
            assert a[row] + b[row] <= full[row]


def test_digits_deterministic(digits):
    again = datasets.load_digits()
    for k in digits:
        assert again[k].fingerprint == digits[k].fingerprint


# -- breast cancer ---------------------------------------------------------------------------
def test_breast_cancer_shapes():
    splits = datasets.load_breast_cancer()
    assert sum(len(b) for b in splits.values()) == 569
    for b in splits.values():
        assert b.kind == "tabular" and b.x.shape[1] == 30 and len(b.feature_names) == 30
        assert b.x.dtype == np.float32 and not np.isnan(b.x).any()
        assert list(b.display.columns) == list(b.feature_names)
        np.testing.assert_allclose(b.display.to_numpy(), b.x, rtol=1e-6)
    assert splits["test"].class_names == ("malignant", "benign")
    assert sum(int((b.y == 0).sum()) for b in splits.values()) == 212  # malignant cases


# -- newsgroups ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def newsgroups():
    require_dataset("newsgroups")
    return datasets.load_newsgroups(remove_headers=False), datasets.load_newsgroups(remove_headers=True)


def test_newsgroups_counts(newsgroups):
    for splits in newsgroups:
        assert len(splits["train"]) + len(splits["val"]) == 1079
        assert len(splits["test"]) == 717
        assert len(splits["val"]) == pytest.approx(108, abs=1)
        # README: train 480 atheism + 599 christian; test 319 + 398
        assert np.bincount(np.concatenate([splits["train"].y, splits["val"].y])).tolist() == [480, 599]
        assert np.bincount(splits["test"].y).tolist() == [319, 398]
        for b in splits.values():
            assert b.kind == "text" and b.x.dtype == object and all(isinstance(t, str) for t in b.x)
            assert b.class_names == ("atheism", "christian")


def test_newsgroups_headers_present_only_in_header_variant(newsgroups):
    with_headers, without = newsgroups
    docs = np.concatenate([b.x for b in with_headers.values()])
    stripped = np.concatenate([b.x for b in without.values()])
    assert len(docs) == len(stripped) == 1796
    assert sum("NNTP-Posting-Host" in t for t in docs) >= 100
    assert sum("Subject:" in t for t in docs) >= 0.9 * len(docs)
    headers = [t.partition("\n\n")[0] for t in docs]
    assert sum("Subject:" in h for h in headers) >= 0.95 * len(docs)  # posts start with headers
    line_start = re.compile(r"^NNTP-Posting-Host:", re.M)
    assert not any(line_start.search(t) for t in stripped)
    subject_line = re.compile(r"^Subject:", re.M)
    assert sum(bool(subject_line.search(t)) for t in stripped) <= 0.01 * len(stripped)  # quotes only
    # the body is kept: each stripped doc is the tail of its original
    for full, body in zip(with_headers["test"].x[:50], without["test"].x[:50]):
        assert full.endswith(body) and len(body) < len(full)


def test_newsgroups_splits_disjoint(newsgroups):
    splits = newsgroups[0]
    train, val, test = (set(splits[k].x) for k in ("train", "val", "test"))
    assert not (train & val)
    assert len(train | val) >= 1070  # nearly all distinct documents
    assert splits["test"].display["subject"].str.len().gt(0).mean() > 0.95


# -- MNIST -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def mnist():
    require_dataset("mnist")
    from core import scenarios

    return scenarios.load_data("mnist")  # shared with the model tests in this process


def test_mnist_shapes_and_label_counts(mnist):
    assert {k: len(b) for k, b in mnist.items()} == {"train": 55000, "val": 5000, "test": 10000}
    for b in mnist.values():
        assert b.x.shape[1:] == (1, 28, 28) and b.x.dtype == np.float32
        assert b.x.min() == 0.0 and b.x.max() == 1.0
    # README: per-digit counts of the official files
    assert np.bincount(mnist["test"].y).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    train_all = np.concatenate([mnist["train"].y, mnist["val"].y])
    assert np.bincount(train_all).tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]


# -- Titanic ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def titanic():
    require_dataset("titanic")
    return datasets.load_titanic()


def test_titanic_features(titanic):
    x = np.concatenate([b.x for b in titanic.values()])
    y = np.concatenate([b.y for b in titanic.values()])
    assert x.shape == (891, 9)
    assert not np.isnan(x).any()
    assert titanic["train"].feature_names == datasets.TITANIC_FEATURES
    names = list(datasets.TITANIC_FEATURES)
    assert int(y.sum()) == 342  # README: 342 survivors
    assert int(x[:, names.index("Sex_male")].sum()) == 577
    embarked = x[:, [names.index(c) for c in ("Embarked_C", "Embarked_Q", "Embarked_S")]]
    assert set(embarked.sum(axis=1).tolist()) == {0.0, 1.0}
    assert int((embarked.sum(axis=1) == 0).sum()) == 2  # two passengers with no port
    assert set(np.unique(x[:, names.index("Pclass")]).tolist()) == {1.0, 2.0, 3.0}
    for b in titanic.values():
        assert len(b.display) == len(b) and "Name" in b.display.columns


# -- unavailable data ------------------------------------------------------------------------
@pytest.fixture
def offline_empty_dir(tmp_path, monkeypatch):
    import sklearn.datasets

    def no_network(*args, **kwargs):
        raise OSError("network is unreachable")

    monkeypatch.setenv("TRUSTLENS_DATA_DIR", str(tmp_path))
    monkeypatch.setattr(sklearn.datasets, "fetch_openml", no_network)
    monkeypatch.setattr(sklearn.datasets, "fetch_20newsgroups", no_network)
    return tmp_path


def test_mnist_unavailable_names_env_and_files(offline_empty_dir):
    assert datasets.availability("mnist").available is False
    assert "TRUSTLENS_DATA_DIR" in datasets.availability("mnist").source
    with pytest.raises(DataUnavailableError) as info:
        datasets.load_mnist()
    message = str(info.value)
    assert "TRUSTLENS_DATA_DIR" in message and str(offline_empty_dir) in message
    for name in datasets.MNIST_FILES.values():
        assert name in message
    assert "network is unreachable" in message
    assert "digits" in info.value.hint  # says what works offline


@pytest.mark.parametrize("dataset, loader, looked_for", [
    ("titanic", datasets.load_titanic, "titanic/train.csv"),
    ("newsgroups", datasets.load_newsgroups, "20news-bydate-atheism-christian.tar.gz"),
])
def test_other_datasets_unavailable(offline_empty_dir, dataset, loader, looked_for):
    assert datasets.availability(dataset).available is False
    with pytest.raises(DataUnavailableError) as info:
        loader()
    assert "TRUSTLENS_DATA_DIR" in str(info.value) and looked_for in str(info.value)


def test_unset_data_dir_is_reported(monkeypatch):
    import sklearn.datasets

    monkeypatch.delenv("TRUSTLENS_DATA_DIR", raising=False)
    monkeypatch.setattr(sklearn.datasets, "fetch_openml", lambda *a, **k: (_ for _ in ()).throw(OSError("offline")))
    assert datasets.data_dir() is None
    with pytest.raises(DataUnavailableError, match="TRUSTLENS_DATA_DIR is not set"):
        datasets.load_mnist()


def test_embedded_datasets_always_available(offline_empty_dir):
    assert datasets.availability("digits").available
    assert datasets.availability("breast-cancer").available


def test_mnist_found_in_data_dir(monkeypatch):
    require_dataset("mnist")
    avail = datasets.availability("mnist")
    assert avail.available and avail.source.endswith("mnist")


def test_truncated_idx_file_is_reported(tmp_path):
    import gzip
    import struct

    path = tmp_path / "bad-idx.gz"
    with gzip.open(path, "wb") as fh:
        fh.write(struct.pack(">IIII", 0x00000803, 10, 28, 28) + b"\x00" * 100)
    with pytest.raises(DataUnavailableError, match="truncated"):
        datasets._read_idx(path)
