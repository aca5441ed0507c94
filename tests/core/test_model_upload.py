"""Round trips of every supported model format, made in the test; spec inference; dry run; CLI."""

from __future__ import annotations

import io
import json
import subprocess
import sys

import numpy as np
import pytest

from core.upload import byom
from core.upload.byom import DataSource
from core.errors import InputShapeError
from core.upload.model_upload import (ModelRefusedError, ModelSpecification, detect_format, inspect_model, load_model_file)
from tests.conftest import ROOT
from tests.hostile import FILES

torch = pytest.importorskip("torch")
nn = torch.nn
MEAN, STD = (0.25,), (0.5,)


@pytest.fixture(autouse=True)
def _fresh_registry():
    byom.forget()
    yield
    byom.forget()


def cnn(n_out: int = 3, softmax: bool = False):
    torch.manual_seed(0)
    layers = [nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, n_out)]
    return nn.Sequential(*layers, *([nn.Softmax(dim=1)] if softmax else [])).eval()


def images(n: int = 6, seed: int = 0) -> np.ndarray:
    return np.random.RandomState(seed).rand(n, 1, 8, 8).astype(np.float32)


def expected_proba(module, x: np.ndarray, mean=MEAN, std=STD) -> np.ndarray:
    with torch.no_grad():
        out = module((torch.as_tensor(x) - mean[0]) / std[0])
    return torch.softmax(out, dim=1).double().numpy()


def torchscript_bytes(module, scripted: bool = False) -> bytes:
    buffer = io.BytesIO()
    saved = torch.jit.script(module) if scripted else torch.jit.trace(module, torch.rand(1, 1, 8, 8))
    torch.jit.save(saved, buffer)
    return buffer.getvalue()


def export_bytes(module) -> bytes:
    program = torch.export.export(module, (torch.rand(2, 1, 8, 8),), dynamic_shapes=({0: torch.export.Dim("batch")},))
    buffer = io.BytesIO()
    torch.export.save(program, buffer)
    return buffer.getvalue()


def onnx_bytes(module) -> bytes:
    buffer = io.BytesIO()
    torch.onnx.export(module, (torch.rand(1, 1, 8, 8),), buffer, input_names=["x"], dynamic_axes={"x": {0: "n"}},
                      dynamo=False)
    return buffer.getvalue()


def skops_pipeline(text: bool = False) -> bytes:
    import skops.io as sio

    return sio.dumps(sklearn_pipeline(text))


def sklearn_pipeline(text: bool = False):
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    if text:
        docs = ["good great fine", "bad awful poor", "great good", "poor bad", "fine good", "awful bad"]
        return Pipeline([("tfidf", TfidfVectorizer()), ("clf", LogisticRegression())]).fit(docs, ["pos", "neg"] * 3)
    rng = np.random.RandomState(0)
    x = rng.rand(60, 3)
    return Pipeline([("scale", StandardScaler()), ("clf", LogisticRegression())]).fit(x, (x[:, 0] > 0.5).astype(int))


SPEC = ModelSpecification(input_kind="image", channels=1, height=8, width=8, mean=MEAN, std=STD,
                          class_names=("a", "b", "c"))


@pytest.mark.parametrize("maker, fmt", [
    (lambda m: torchscript_bytes(m), "torchscript"),
    (lambda m: torchscript_bytes(m, scripted=True), "torchscript"),
    (export_bytes, "torch_export"),
    (onnx_bytes, "onnx"),
])
def test_torch_family_round_trip(maker, fmt):
    module = cnn()
    data = maker(module)
    assert detect_format(data, "model.bin") == fmt  # by content, not by name
    adapter = load_model_file(data, f"model.{fmt}", SPEC)
    x = images()
    np.testing.assert_allclose(adapter.predict_proba(x), expected_proba(module, x), atol=1e-5)
    np.testing.assert_allclose(adapter.predict_proba(x, batch_size=2), adapter.predict_proba(x, batch_size=64), atol=1e-6)
    if fmt == "onnx":
        assert adapter.torch_module() is None and "onnxruntime" in adapter.info.gradients_unavailable
    else:
        assert adapter.torch_module() is not None and adapter.info.gradients_unavailable is None


def test_fingerprint_covers_the_file_not_only_the_weights():
    """Traced and scripted copies of one CNN have the same weights and layers but different code."""
    module = cnn()
    traced, scripted = torchscript_bytes(module), torchscript_bytes(module, scripted=True)
    a = load_model_file(traced, "cnn.pt", SPEC)
    assert load_model_file(traced, "other-name.pt", SPEC).fingerprint == a.fingerprint  # content, not name
    assert load_model_file(scripted, "cnn.pt", SPEC).fingerprint != a.fingerprint
    assert a.with_module(a.torch_module(), "copy").fingerprint == a.fingerprint


def test_gradients_of_an_uploaded_torchscript_model_match_the_original():
    from core.attribution import explain_images
    from core.upload.model_upload import normalised_module
    from core.adapters.torch_adapter import TorchAdapter

    module = cnn()
    uploaded = load_model_file(torchscript_bytes(module), "cnn.pt", SPEC)
    original = TorchAdapter(normalised_module(cnn(), MEAN, STD, 1), name="original", class_names=SPEC.class_names,
                            input_kind="image")
    x, target = images(3), np.array([0, 1, 2])
    ours = explain_images(uploaded, x, target, "integrated_gradients").maps
    reference = explain_images(original, x, target, "integrated_gradients").maps
    np.testing.assert_allclose(ours, reference, atol=1e-5)
    assert np.abs(ours).sum() > 0


def test_onnx_offers_only_perturbation_methods():
    from core.attribution import supported_methods

    adapter = load_model_file(onnx_bytes(cnn()), "cnn.onnx", SPEC)
    support = supported_methods(adapter)
    assert support["occlusion"] is None
    assert "onnxruntime" in support["gradient"] and "onnxruntime" in support["integrated_gradients"]


@pytest.mark.parametrize("text", [False, True])
def test_skops_round_trip(text):
    import skops.io as sio

    data = skops_pipeline(text)
    inspection = inspect_model(data, "p.skops")
    assert inspection.format == "skops" and inspection.refused is None and inspection.untrusted_types == ()
    assert inspection.inferred["input_kind"] == ("text" if text else "tabular")
    estimator = sio.loads(data)
    spec = ModelSpecification(input_kind="text" if text else "tabular", class_names=tuple(inspection.inferred["class_names"]))
    adapter = load_model_file(data, "p.skops", spec)
    x = ["good fine", "bad poor awful"] if text else np.random.RandomState(1).rand(7, 3)
    np.testing.assert_allclose(adapter.predict_proba(x), estimator.predict_proba(x), atol=1e-12)


def test_pickle_loads_only_with_server_opt_in_and_confirmation():
    import joblib

    buffer = io.BytesIO()
    joblib.dump(sklearn_pipeline(), buffer)
    data = buffer.getvalue()
    spec = ModelSpecification(input_kind="tabular", class_names=("0", "1"))
    assert inspect_model(data, "m.joblib", allow_pickle=False).refused
    with pytest.raises(ModelRefusedError):
        load_model_file(data, "m.joblib", spec, allow_pickle=True)
    adapter = load_model_file(data, "m.joblib", spec, allow_pickle=True, confirm_pickle=True)
    assert adapter.predict_proba(np.zeros((2, 3))).shape == (2, 2)


def test_inspect_infers_the_spec():
    exported = inspect_model(export_bytes(cnn()), "m.pt2").inferred
    assert (exported["input_kind"], exported["channels"], exported["height"], exported["width"], exported["n_classes"]) \
        == ("image", 1, 8, 8, 3)
    onnx = inspect_model(onnx_bytes(cnn()), "m.onnx").inferred
    assert (onnx["input_kind"], onnx["channels"], onnx["height"], onnx["n_classes"]) == ("image", 1, 8, 3)
    script = inspect_model(torchscript_bytes(cnn(n_out=5)), "m.pt").inferred
    assert (script["input_kind"], script["channels"], script["n_classes"]) == ("image", 1, 5)
    tab = inspect_model(skops_pipeline(), "m.skops").inferred
    assert (tab["n_features"], tab["class_names"]) == (3, ["0", "1"])


def test_open_upload_makes_a_cached_scenario_with_labels_from_folders():
    data = (FILES / "three_classes.zip").read_bytes()
    model = torchscript_bytes(cnn())
    first = byom.open_upload(model, "cnn.pt", DataSource("image_zip", data, "three_classes.zip"))
    again = byom.open_upload(model, "cnn.pt", DataSource("image_zip", data, "three_classes.zip"))
    assert first is again and byom.get(first.name) is first and first.name.startswith("upload-")
    assert first.spec.class_names == ("a", "b", "c") and first.model_spec.image_shape == (1, 8, 8)
    assert first.model_spec.outputs == "logits"
    splits = first.splits
    positions = byom.split_positions(9)
    assert [len(positions[s]) for s in ("train", "val", "test")] == [2, 2, 5]
    assert sorted(np.concatenate(list(positions.values())).tolist()) == list(range(9))  # a partition
    assert splits["test"].index.tolist() == list(range(5))  # a split of its own, like the built-in ones
    from core.upload.data_upload import load_image_zip

    full = load_image_zip(data).bundle
    for split in ("train", "val", "test"):
        np.testing.assert_array_equal(splits[split].x, full.x[positions[split]])
        np.testing.assert_array_equal(splits[split].y, full.y[positions[split]])
    assert first.n_samples == 9
    proba = first.trained.adapter.predict_proba(splits["test"].x)
    assert first.trained.metrics["test_accuracy"] == pytest.approx(np.mean(proba.argmax(1) == splits["test"].y))
    other = byom.open_upload(model, "cnn.pt", DataSource("image_zip", data, "three_classes.zip"), {"mean": [0.5], "std": [0.2]})
    assert other.name != first.name


def test_probability_outputs_are_detected():
    data = (FILES / "three_classes.zip").read_bytes()
    uploaded = byom.open_upload(torchscript_bytes(cnn(softmax=True)), "cnn.pt", DataSource("image_zip", data, "z.zip"))
    assert uploaded.model_spec.outputs == "probabilities"
    x = uploaded.splits["test"].x
    with torch.no_grad():
        direct = cnn(softmax=True)(torch.as_tensor(x)).double().numpy()
    np.testing.assert_allclose(uploaded.trained.adapter.predict_proba(x), direct, atol=1e-6)


def test_unlabelled_single_image_uses_predictions_and_says_so():
    import zipfile

    archive = zipfile.ZipFile(FILES / "three_classes.zip")
    png = archive.read(next(n for n in archive.namelist() if n.endswith(".png")))
    uploaded = byom.open_upload(torchscript_bytes(cnn()), "cnn.pt", DataSource("image", png, "one.png"),
                                {"class_names": ["x", "y", "z"]})
    assert not uploaded.labelled and np.isnan(uploaded.trained.metrics["test_accuracy"])
    assert "no labels" in uploaded.spec.description
    assert uploaded.splits["test"].y.tolist() == uploaded.trained.adapter.predict(uploaded.splits["test"].x).tolist()


def test_tabular_skops_with_csv():
    import pandas as pd

    rng = np.random.RandomState(3)
    frame = pd.DataFrame(rng.rand(20, 3), columns=["f1", "f2", "f3"])
    frame["target"] = (frame["f1"] > 0.5).astype(int)
    uploaded = byom.open_upload(skops_pipeline(), "p.skops",
                                DataSource("table", frame.to_csv(index=False).encode(), "rows.csv"))
    assert uploaded.spec.kind == "tabular" and uploaded.spec.class_names == ("0", "1")
    assert uploaded.splits["train"].feature_names == ("f1", "f2", "f3")
    assert uploaded.trained.metrics["test_accuracy"] >= 0.8


def test_text_skops_with_csv_and_pasted_text():
    csv = b"text,label\ngood great,pos\nawful bad,neg\nfine good,pos\npoor,neg\n"
    uploaded = byom.open_upload(skops_pipeline(text=True), "t.skops", DataSource("text_csv", csv, "t.csv"))
    assert uploaded.spec.kind == "text" and uploaded.labelled
    pasted = byom.open_upload(skops_pipeline(text=True), "t.skops",
                              DataSource("pasted_text", b"good film\n\nbad film", "pasted"))
    assert len(pasted.splits["train"]) == 2 and not pasted.labelled


def test_text_torchscript_is_refused_with_a_reason():
    with pytest.raises(ModelRefusedError, match="tokeniser"):
        load_model_file(torchscript_bytes(cnn()), "m.pt", ModelSpecification(input_kind="text", class_names=("a", "b")))


@pytest.mark.parametrize("document, fragment", [
    ({"input_kind": "audio"}, "input kind"),
    ({"std": [0.0]}, "std must be positive"),
    ({"mean": [0.1, 0.2], "std": [1.0]}, "2 mean values but 1 std"),
    ({"channels": 0}, "positive integer"),
    ({"colour": 1}, "Unknown spec field"),
    ("{not json", "not valid JSON"),
    ({"class_names": ["a", "a"]}, "unique"),
])
def test_spec_validation(document, fragment):
    with pytest.raises(InputShapeError, match=fragment):
        ModelSpecification.from_json(document if isinstance(document, str) else json.dumps(document))


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "core", *args], cwd=ROOT, capture_output=True, text=True, timeout=300)


@pytest.mark.slow  # 6 s: the CLI in fresh processes
def test_cli_inspect_model(tmp_path):
    good = tmp_path / "cnn.pt2"
    good.write_bytes(export_bytes(cnn()))
    result = run_cli("inspect-model", str(good), "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["format"] == "torch_export" and report["refused"] is None and report["inferred"]["height"] == 8
    refused = run_cli("inspect-model", str(FILES / "creates_file.pkl"), "--json")
    assert refused.returncode == 1
    assert "refuses pickle-based files" in json.loads(refused.stdout)["refused"]
    missing = run_cli("inspect-model", str(tmp_path / "nope.pt"))
    assert missing.returncode == 1 and "does not exist" in missing.stderr


def test_launch_document_allows_the_launchers_own_pickle(tmp_path):
    """serve / launch: a full torch.save pickle is accepted (the launcher chose it); the spec file applies."""
    module = cnn()
    torch.save(module, tmp_path / "full.pt")
    (tmp_path / "spec.json").write_text(json.dumps({"class_names": ["zero", "one", "two"], "outputs": "logits"}))
    zip_path = tmp_path / "digits.zip"
    zip_path.write_bytes(_zip_with_numbered_folders())
    document = byom.preload_document(str(tmp_path / "full.pt"), str(zip_path), str(tmp_path / "spec.json"))
    uploaded = byom.open_preloaded(document)
    assert uploaded.inspection.format == "torch_pickle"
    assert uploaded.spec.class_names == ("zero", "one", "two")
    labels = np.concatenate([uploaded.splits[s].y for s in ("train", "val", "test")])
    assert sorted(labels.tolist()) == [0, 0, 1, 1, 2, 2]  # folders 0..2 read as output indices
    x = uploaded.splits["test"].x
    np.testing.assert_allclose(uploaded.trained.adapter.predict_proba(x), expected_proba(module, x, (0.0,), (1.0,)),
                               atol=1e-5)
    # an upload of the same pickle (no launcher) is still refused
    with pytest.raises(ModelRefusedError):
        byom.open_upload((tmp_path / "full.pt").read_bytes(), "full.pt",
                         DataSource("image_zip", zip_path.read_bytes(), "digits.zip"), allow_pickle=False)


def test_launch_runs_the_repositorys_app():
    """serve / launch start ``streamlit run`` on the repository's app.py (a module move once left it pointing at a
    missing core/app.py, and the server exited at once)."""
    assert byom.APP == ROOT / "app.py" and byom.APP.is_file()


def _zip_with_numbered_folders() -> bytes:
    import zipfile

    from PIL import Image

    out = io.BytesIO()
    rng = np.random.RandomState(0)
    with zipfile.ZipFile(out, "w") as archive:
        for label in range(3):
            for i in range(2):
                png = io.BytesIO()
                Image.fromarray((rng.rand(8, 8) * 255).astype(np.uint8), "L").save(png, "PNG")
                archive.writestr(f"{label}/{i}.png", png.getvalue())
    return out.getvalue()


@pytest.mark.slow  # 2.7 s: the CLI in a fresh process
def test_cli_serve_checks_the_files_before_starting(tmp_path):
    result = run_cli("serve", "--model", str(FILES / "random_bytes.pt"), "--data", str(FILES / "three_classes.zip"),
                     "--port", "1")
    assert result.returncode == 1 and "not a model TrustLens recognises" in result.stderr
    missing = run_cli("serve", "--model", str(tmp_path / "none.pt"), "--data", str(FILES / "three_classes.zip"))
    assert missing.returncode == 1 and "does not exist" in missing.stderr
    bad_spec = tmp_path / "spec.json"
    bad_spec.write_text('{"colour": "red"}')
    refused = run_cli("serve", "--model", str(FILES / "ten_outputs.pt"), "--data", str(FILES / "three_classes.zip"),
                      "--spec", str(bad_spec))
    assert refused.returncode == 1 and "Unknown spec field(s): colour" in refused.stderr


def test_registry_keeps_the_most_recent_uploads(monkeypatch):
    monkeypatch.setattr(byom, "MAX_REGISTERED", 2)
    data = (FILES / "three_classes.zip").read_bytes()
    model = torchscript_bytes(cnn())
    names = [byom.open_upload(model, "cnn.pt", DataSource("image_zip", data, "z.zip"), {"mean": [m], "std": [1.0]}).name
             for m in (0.0, 0.1, 0.2)]
    assert [byom.registered(n) for n in names] == [False, True, True]
    with pytest.raises(InputShapeError, match="upload the model and data again"):
        byom.get(names[0])
