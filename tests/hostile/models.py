"""Realistic uploads made from the built-in scenarios: what a user would bring (used by page and browser tests)."""

from __future__ import annotations

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
