"""Uploads as people make them: integer class folders are output indices; ``inspect-model --data``.

A ZIP of digits in ``digits/0`` ... ``digits/9`` with one digit missing must open with the class
names "0".."9" (the model's output width, not the folders present) and each image labelled with
its folder's output index; non-integer folders keep naming the classes.
"""

from __future__ import annotations

import io
import json
import zipfile

import numpy as np
import pytest

from core.upload import byom
from core.upload.byom import DataSource
from core.cli import main
from core.upload.data_upload import load_image_zip
from core.errors import InputShapeError
from tests.hostile import FILES

torch = pytest.importorskip("torch")
nn = torch.nn


@pytest.fixture(autouse=True)
def _fresh_registry():
    byom.forget()
    yield
    byom.forget()


def templates() -> np.ndarray:
    """One random +-1 pattern per digit, shape (10, 8, 8)."""
    return np.sign(np.random.RandomState(0).randn(10, 8, 8)).astype(np.float32)


def template_cnn() -> nn.Module:
    """A one-layer CNN with 10 outputs: output k is the image's match with pattern k (an 8x8 convolution)."""
    conv = nn.Conv2d(1, 10, 8)
    with torch.no_grad():
        conv.weight.copy_(torch.as_tensor(templates())[:, None])
        conv.bias.zero_()
    return nn.Sequential(conv, nn.Flatten()).eval()


def torchscript(module: nn.Module) -> bytes:
    buffer = io.BytesIO()
    torch.jit.save(torch.jit.trace(module, torch.rand(1, 1, 8, 8)), buffer)
    return buffer.getvalue()


def png(pixels: np.ndarray) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(pixels, "L").save(buffer, "PNG")
    return buffer.getvalue()


def digit_zip(missing: int | None = 5, top: str = "digits/", per_class: int = 3, names=None,
              flip: int = 0) -> tuple[bytes, list[tuple[str, np.ndarray]]]:
    """30-odd 8x8 "digits" drawn from their digit's pattern plus noise, in ``{top}{folder}/{i}.png``.

    One image of each of the first ``flip`` digits goes in the next digit's folder (mislabelled), so
    accuracy is not 1.
    Returns the ZIP and, in archive order, (folder, uint8 pixels) per image.
    """
    rng = np.random.RandomState(1)
    members = []
    for digit in range(10):
        if digit == missing:
            continue
        for _ in range(per_class):
            pixels = np.clip(0.5 + 0.35 * templates()[digit] + 0.15 * rng.randn(8, 8), 0, 1)
            members.append((digit, np.round(pixels * 255).astype(np.uint8)))
    out, order = io.BytesIO(), []
    with zipfile.ZipFile(out, "w") as archive:
        for i, (digit, pixels) in enumerate(members):
            label = digit
            if i % per_class == 0 and i // per_class < flip:  # one image of each of the first `flip` digits
                label = next(d % 10 for d in range(digit + 1, digit + 11) if d % 10 != missing)
            folder = names[label] if names else str(label)
            archive.writestr(f"{top}{folder}/{i}.png", png(pixels))
            order.append((folder, pixels))
    return out.getvalue(), order


def direct_accuracy(order: list[tuple[str, np.ndarray]], split: str = "test") -> float:
    """Accuracy of the plain nn.Module on the PNG round trip, each folder read as an output index."""
    x = np.stack([p for _, p in order]).astype(np.float32)[:, None] / 255.0
    with torch.no_grad():
        predicted = template_cnn()(torch.as_tensor(x)).argmax(1).numpy()
    labels = np.array([int(f) for f, _ in order])
    rows = byom.split_positions(len(order))[split]
    return float(np.mean(predicted[rows] == labels[rows]))


@pytest.mark.parametrize("missing", [5, 9])
@pytest.mark.parametrize("top", ["digits/", ""])
def test_integer_folders_are_output_indices_with_a_digit_missing(missing, top):
    data, order = digit_zip(missing=missing, top=top, flip=4)
    uploaded = byom.open_upload(torchscript(template_cnn()), "mnist_cnn.pt", DataSource("image_zip", data, "digits.zip"))
    assert uploaded.spec.class_names == tuple(str(i) for i in range(10))  # no class names typed
    assert uploaded.model_spec.class_names == uploaded.spec.class_names
    # every image carries its folder's number as label, in every split
    labels = np.array([int(f) for f, _ in order])
    for split, rows in byom.split_positions(len(order)).items():
        assert uploaded.splits[split].y.tolist() == labels[rows].tolist()
        assert uploaded.splits[split].class_names == uploaded.spec.class_names
    assert missing not in labels
    expected = direct_accuracy(order)
    assert 0.5 < expected < 1.0  # the flipped images are wrong, the rest right: a shifted label would show
    assert uploaded.trained.metrics["test_accuracy"] == pytest.approx(expected)
    assert any(f"no images of {missing}" in note for note in uploaded.notes), uploaded.notes


def test_load_image_zip_reads_integer_folders_as_indices():
    data, order = digit_zip(missing=9, per_class=1)
    loaded = load_image_zip(data, filename="digits.zip")
    assert loaded.index_labels and loaded.bundle.class_names == tuple(str(i) for i in range(9))
    assert loaded.bundle.y.tolist() == [int(f) for f, _ in order]
    named = load_image_zip(data, filename="digits.zip", class_names=[f"d{i}" for i in range(10)])
    assert not named.index_labels and named.bundle.y.tolist() == [int(f) for f, _ in order]


def test_non_integer_folders_still_name_the_classes_and_a_mismatch_is_a_clear_error():
    names = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
    data, _ = digit_zip(missing=5, names=names)  # 9 word folders for a 10-output model
    with pytest.raises(InputShapeError) as caught:
        byom.open_upload(torchscript(template_cnn()), "cnn.pt", DataSource("image_zip", data, "words.zip"))
    message = str(caught.value)
    assert "returns 10 scores per sample but 9 class names were given" in message
    assert "expected output shape (1, 9), received (1, 10)" in message
    # with the class names given, word folders name them (their count no longer matters)
    uploaded = byom.open_upload(torchscript(template_cnn()), "cnn.pt", DataSource("image_zip", data, "words.zip"),
                                {"class_names": names})
    assert uploaded.spec.class_names == tuple(names)


def test_folders_numbered_from_one_are_classes_in_numeric_order():
    rng = np.random.RandomState(2)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for label in range(1, 11):  # 1..10 for 10 outputs: "10" cannot be an output index
            pixels = np.round(np.clip(0.5 + 0.35 * templates()[label - 1] + 0.1 * rng.randn(8, 8), 0, 1) * 255)
            archive.writestr(f"{label}/a.png", png(pixels.astype(np.uint8)))
    uploaded = byom.open_upload(torchscript(template_cnn()), "cnn.pt", DataSource("image_zip", out.getvalue(), "d.zip"))
    assert uploaded.spec.class_names == tuple(str(i) for i in range(1, 11))  # numeric, not "1", "10", "2"
    assert any("numeric order" in note for note in uploaded.notes)


def test_integer_folders_beyond_the_output_width_are_refused_with_a_reason():
    rng = np.random.RandomState(3)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for label in (3, 12):
            archive.writestr(f"{label}/a.png", png((rng.rand(8, 8) * 255).astype(np.uint8)))
    with pytest.raises(InputShapeError, match=r"folder '12' would be output index 12, but the model returns 10 scores"):
        byom.open_upload(torchscript(template_cnn()), "cnn.pt", DataSource("image_zip", out.getvalue(), "d.zip"))


# -- python -m core inspect-model MODEL --data DATA ---------------------------------------------------
@pytest.fixture
def files(tmp_path):
    model = tmp_path / "mnist_cnn.pt"
    model.write_bytes(torchscript(template_cnn()))
    data, order = digit_zip(missing=9, flip=4)
    archive = tmp_path / "digits.zip"
    archive.write_bytes(data)
    return model, archive, order


def test_cli_inspect_model_with_data_prints_the_uploads_summary(files, capsys):
    model, archive, order = files
    assert main(["inspect-model", str(model), "--data", str(archive), "--json", "--quiet"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["format"] == "torchscript" and report["refused"] is None
    assert report["class_names"] == [str(i) for i in range(10)]
    assert report["accuracy"] == pytest.approx(direct_accuracy(order))
    assert {"gradient", "integrated_gradients", "occlusion"} <= set(report["methods_offered"])
    assert "grad_cam" in report["methods_refused"] and report["methods_refused"]["grad_cam"]  # with its reason
    assert not set(report["methods_offered"]) & set(report["methods_refused"])
    # the readable summary says the same
    assert main(["inspect-model", str(model), "--data", str(archive), "--quiet"]) == 0
    text = capsys.readouterr().out
    assert "TorchScript archive" in text and f"accuracy {direct_accuracy(order):.1%} on the test split" in text
    assert "classes (10): 0, 1, 2" in text and "methods offered: " in text and "not offered: grad_cam: " in text


def test_cli_inspect_model_with_data_exits_1_with_the_message_when_refused(tmp_path, capsys):
    model = tmp_path / "cnn.pt"
    model.write_bytes(torchscript(template_cnn()))
    names = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
    archive = tmp_path / "words.zip"
    archive.write_bytes(digit_zip(missing=5, names=names)[0])
    assert main(["inspect-model", str(model), "--data", str(archive), "--json", "--quiet"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert "returns 10 scores per sample but 9 class names were given" in report["refused"]
    assert main(["inspect-model", str(model), "--data", str(archive), "--quiet"]) == 1
    assert "refused: The model returns 10 scores" in capsys.readouterr().out
    # a spec file naming the classes makes the same upload pass
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({"class_names": names}))
    assert main(["inspect-model", str(model), "--data", str(archive), "--spec", str(spec), "--json", "--quiet"]) == 0
    assert json.loads(capsys.readouterr().out)["class_names"] == names
    # a refused model file: the page's refusal, exit 1
    assert main(["inspect-model", str(FILES / "creates_file.pkl"), "--data", str(archive), "--json", "--quiet"]) == 1
    assert "refuses pickle-based files" in json.loads(capsys.readouterr().out)["refused"]


def test_cli_trust_types_is_the_pages_i_trust_these_types(tmp_path, capsys):
    table = tmp_path / "rows.csv"
    rng = np.random.RandomState(0)
    table.write_text("a,b,c,target\n" + "".join(f"{r[0]:.3f},{r[1]:.3f},{r[2]:.3f},{i % 2}\n"
                                                for i, r in enumerate(rng.rand(20, 3))))
    model = str(FILES / "untrusted_types.skops")
    assert main(["inspect-model", model, "--data", str(table), "--json", "--quiet"]) == 1
    refused = json.loads(capsys.readouterr().out)["refused"]
    assert "_operator.neg" in refused and "--trust-types" in refused
    assert main(["inspect-model", model, "--data", str(table), "--trust-types", "--json", "--quiet"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["class_names"] == ["0", "1"] and report["spec"]["n_features"] == 3
    assert "shap/permutation" in report["methods_offered"] and "shap/tree" in report["methods_refused"]


def test_cli_inspect_model_without_data_is_unchanged(files, capsys):
    model, _, _ = files
    assert main(["inspect-model", str(model), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["format"] == "torchscript" and report["refused"] is None and report["inferred"]["input_kind"] == "image"
    assert main(["inspect-model", str(model), "--spec", "spec.json"]) == 1
    assert "--spec applies to the dry run on data" in capsys.readouterr().err
