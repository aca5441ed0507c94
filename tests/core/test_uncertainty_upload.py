"""Uncertainty for uploaded models (core.uncertainty.upload): MC dropout on TorchScript, the reasons
when a format cannot sample, generic stress sets, the report, unlabelled uploads, caching."""

from __future__ import annotations

import io

import numpy as np
import pytest

from core.upload import byom
from core.upload.byom import DataSource
from core.errors import ParameterError, TrustLensError
from core.uncertainty.report import MARGIN, SINGLE_MODEL_SCORES
from core.uncertainty.members import dropout_layers
from core.uncertainty.upload import (FEATURE_SHIFT, IMAGE_SIGMAS, WORD_DROPOUT, fgsm_reason,
                                     generic_stress_sets, mc_dropout_reason, upload_report, upload_source,
                                     upload_support)
from tests.hostile import models

torch = pytest.importorskip("torch")
nn = torch.nn


@pytest.fixture(autouse=True)
def _fresh_registry():
    byom.forget()
    yield
    byom.forget()


@pytest.fixture(scope="module")
def digits_zip() -> bytes:
    return models.digits_zip(per_class=3)


def net(dropout: float | None = 0.5) -> "nn.Module":
    """A tiny 8x8 CNN for the ten digits, with one dropout module (or none)."""
    torch.manual_seed(0)
    layers = [nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 64, 32), nn.ReLU()]
    if dropout is not None:
        layers.append(nn.Dropout(dropout))
    return nn.Sequential(*layers, nn.Linear(32, 10)).eval()


def saved(module, how: str) -> tuple[bytes, str]:
    buffer = io.BytesIO()
    example = torch.rand(2, 1, 8, 8)
    if how == "script":
        torch.jit.save(torch.jit.script(module), buffer)
        return buffer.getvalue(), "net.pt"
    if how == "trace":
        torch.jit.save(torch.jit.trace(module, example), buffer)
        return buffer.getvalue(), "net.pt"
    if how == "export":
        torch.export.save(torch.export.export(module, (example,), dynamic_shapes=({0: torch.export.Dim("n")},)), buffer)
        return buffer.getvalue(), "net.pt2"
    torch.onnx.export(module, (example,), buffer, input_names=["x"], dynamic_axes={"x": {0: "n"}}, dynamo=False)
    return buffer.getvalue(), "net.onnx"


def upload(module, how: str, data: bytes) -> byom.UploadedScenario:
    model, name = saved(module, how)
    return byom.open_upload(model, name, DataSource("image_zip", data, "digits.zip"))


def test_mc_dropout_on_a_scripted_model_varies_and_leaves_the_model_unchanged(digits_zip, tmp_store):
    uploaded = upload(net(), "script", digits_zip)
    adapter = uploaded.trained.adapter
    assert dropout_layers(adapter.torch_module()) == ["inner.5"]  # found through TorchScript's original_name
    assert upload_support(uploaded) == {"single": None, "mc_dropout": None}
    test = uploaded.splits["test"]
    before = adapter.predict_proba(test.x)

    source = upload_source(uploaded, "mc_dropout", 6, seed=3)
    proba = source.probabilities(test, batch_size=7, store=tmp_store)
    assert proba.shape == (6, len(test), 10)
    np.testing.assert_allclose(proba.sum(axis=2), 1.0, atol=1e-5)
    assert not np.allclose(proba[0], proba[1])  # the passes differ: dropout really samples
    # the same seed gives the same passes (recomputed in a fresh store); another seed other masks
    fresh = tmp_store.__class__(tmp_store.root / "other")
    again = upload_source(uploaded, "mc_dropout", 6, seed=3).probabilities(test, batch_size=7, store=fresh)
    np.testing.assert_allclose(again, proba, atol=1e-6)
    other = upload_source(uploaded, "mc_dropout", 6, seed=4).probabilities(test, batch_size=7, store=fresh)
    assert not np.allclose(other, proba)
    # TorchScript dropout draws its masks per batch: another batch size is another cache entry, not a stale hit
    by_5 = upload_source(uploaded, "mc_dropout", 6, seed=3).probabilities(test, batch_size=5, store=fresh)
    assert not np.allclose(by_5, proba)
    # the shared model is untouched: still in evaluation mode, same outputs
    inner_dropout = dict(adapter.torch_module().named_modules())["inner.5"]
    assert inner_dropout.training is False
    np.testing.assert_array_equal(adapter.predict_proba(test.x), before)
    # the mean of the passes stays near the deterministic model (dropout 0.5 on a random net: loosely)
    assert np.mean(proba.mean(axis=0).argmax(axis=1) == before.argmax(axis=1)) > 0.5


def test_a_traced_model_with_dropout_is_measured_and_refused_with_the_reason(digits_zip):
    uploaded = upload(net(), "trace", digits_zip)
    assert dropout_layers(uploaded.trained.adapter.torch_module())  # the module is there...
    reason = mc_dropout_reason(uploaded)  # ...but its dropout was recorded in evaluation mode
    assert reason is not None and "torch.jit.trace" in reason and "torch.jit.script" in reason
    with pytest.raises(ParameterError, match="torch.jit.trace"):
        upload_source(uploaded, "mc_dropout", 5)


@pytest.mark.parametrize("how, dropout, fragment", [
    ("script", None, "no dropout modules"),
    ("script", 0.0, "p = 0"),
    ("export", 0.5, "torch.export program"),
    ("onnx", 0.5, "ONNX"),
])
def test_models_that_cannot_sample_say_why(digits_zip, how, dropout, fragment):
    uploaded = upload(net(dropout), how, digits_zip)
    reason = upload_support(uploaded)["mc_dropout"]
    assert reason is not None and fragment in reason, reason
    report = upload_report(uploaded, "single")  # the single-model source always works
    assert report.n_members == 1 and report.source == "single"


def test_skops_pipeline_has_no_mc_dropout_and_gets_table_stress_sets():
    model, csv = models.breast_cancer_skops()
    uploaded = byom.open_upload(model, "cancer.skops", DataSource("table", csv, "cancer.csv"))
    assert "skops" in upload_support(uploaded)["mc_dropout"]
    assert "tabular" in fgsm_reason(uploaded.trained.adapter)
    report = upload_report(uploaded, "single")
    names = [r.name for r in report.sets]
    assert names == ["clean", "noise_0.5", "noise_1", "shift"]
    test, train = uploaded.splits["test"], uploaded.splits["train"]
    shift = report.get("shift")
    assert shift.y is None and not shift.set.labelled  # a shifted row's true class is unknown
    np.testing.assert_allclose(shift.set.bundle.x - test.x, np.broadcast_to(FEATURE_SHIFT * train.x.std(axis=0), test.x.shape),
                               rtol=1e-4, atol=1e-3)
    noise = report.get("noise_1").set.bundle.x - test.x
    np.testing.assert_allclose(noise.std(axis=0) / train.x.std(axis=0), 1.0, atol=0.35)  # one sd of each feature
    assert report.get("noise_1").y is not None
    # rows: a labelled upload reports accuracy; shifted rows separate from clean ones by their confidence
    assert 0.8 < report.rows()[0]["accuracy_mean"] <= 1.0
    assert set(report.score_names) == set(SINGLE_MODEL_SCORES)


def test_image_stress_sets_have_the_test_shape_and_fgsm_raises_the_loss(digits_zip, tmp_store):
    uploaded = byom.open_upload(models.digits_torchscript(), "digits_cnn.pt",
                                DataSource("image_zip", digits_zip, "digits.zip"))
    adapter, test = uploaded.trained.adapter, uploaded.splits["test"]
    sets = generic_stress_sets(test, uploaded.splits["train"], attack=adapter, epsilon=0.2, store=tmp_store)
    assert [s.name for s in sets] == ["clean", "fgsm", *(f"noise_{s:g}" for s in IMAGE_SIGMAS)]
    for stress in sets:
        assert stress.bundle.x.shape == test.x.shape and stress.bundle.x.dtype == np.float32
        assert stress.bundle.x.min() >= 0.0 and stress.bundle.x.max() <= 1.0
        np.testing.assert_array_equal(stress.bundle.y, test.y)
    adv = sets[1].bundle.x
    assert np.abs(adv - test.x).max() <= 0.2 + 1e-6

    def loss(x):
        proba = adapter.predict_proba(x)
        return float(-np.mean(np.log(proba[np.arange(len(x)), test.y] + 1e-12)))

    assert loss(adv) > loss(test.x) + 0.5  # FGSM raises the loss of the true class
    residual = [float(np.abs(s.bundle.x - test.x).mean()) for s in sets[2:]]
    assert residual == sorted(residual) and residual[0] > 0.03  # more sigma, more noise
    # deterministic: the same sets again
    again = generic_stress_sets(test, uploaded.splits["train"], attack=adapter, epsilon=0.2, store=tmp_store)
    for a, b in zip(sets, again):
        assert a.bundle.fingerprint == b.bundle.fingerprint


def test_report_of_a_labelled_upload_matches_sklearn(digits_zip, tmp_store):
    from sklearn.metrics import roc_auc_score

    uploaded = byom.open_upload(models.digits_torchscript(), "digits_cnn.pt",
                                DataSource("image_zip", digits_zip, "digits.zip"))
    report = upload_report(uploaded, "single", epsilon=0.2, batch_size=9, store=tmp_store)
    test = uploaded.splits["test"]
    proba = uploaded.trained.adapter.predict_proba(test.x)
    clean = report.get("clean")
    np.testing.assert_allclose(clean.proba[0], proba, atol=1e-6)
    assert clean.accuracy() == pytest.approx(np.mean(proba.argmax(1) == test.y))
    assert list(clean.scores) == list(SINGLE_MODEL_SCORES)
    top2 = np.sort(proba, axis=1)[:, -2:]
    np.testing.assert_allclose(clean.scores[MARGIN], 1 - (top2[:, 1] - top2[:, 0]), atol=1e-6)
    fgsm = report.get("fgsm")
    wrong = fgsm.mean.argmax(1) != test.y
    assert 0 < wrong.sum() < len(wrong)
    entropy = fgsm.scores["predictive_entropy"]
    assert fgsm.error_auroc["predictive_entropy"] == pytest.approx(roc_auc_score(wrong, entropy), abs=1e-9)
    both = np.r_[clean.scores["one_minus_confidence"], fgsm.scores["one_minus_confidence"]]
    shifted = np.r_[np.zeros(len(test)), np.ones(len(test))]
    assert fgsm.shift_auroc["one_minus_confidence"] == pytest.approx(roc_auc_score(shifted, both), abs=1e-9)
    assert fgsm.accuracy() < clean.accuracy()
    # a second report comes from the store: the model is not called again
    calls = []
    original = type(uploaded.trained.adapter).predict_proba
    try:
        type(uploaded.trained.adapter).predict_proba = lambda self, *a, **k: calls.append(1) or original(self, *a, **k)
        cached = upload_report(uploaded, "single", epsilon=0.2, batch_size=64, store=tmp_store)
    finally:
        type(uploaded.trained.adapter).predict_proba = original
    assert calls == []
    np.testing.assert_allclose(cached.get("fgsm").proba, fgsm.proba)


def test_unlabelled_upload_reports_no_accuracy():
    model, csv = models.breast_cancer_skops()
    uploaded = byom.open_upload(model, "cancer.skops", DataSource("table", csv, "cancer.csv", target=None),
                                {"class_names": ["malignant", "benign"]})
    assert not uploaded.labelled  # the predictions stand in for labels in the splits...
    report = upload_report(uploaded, "single")
    assert all(r.y is None for r in report.sets)  # ...but never in the report
    for row in report.rows():
        assert row["accuracy_mean"] is None and row["accuracy_max"] is None
        assert all(v is None for v in row["error_auroc"].values())
    # labels are not needed to tell shifted inputs from clean ones: the AUROC is a number, and the right one
    from sklearn.metrics import roc_auc_score

    clean, shift = report.get("clean"), report.get("shift")
    adapter = uploaded.trained.adapter

    def one_minus_confidence(x):  # in float32 as the report keeps probabilities (saturated ones tie there)
        return 1 - adapter.predict_proba(x).astype(np.float32).max(axis=1)

    both = np.r_[one_minus_confidence(clean.set.bundle.x), one_minus_confidence(shift.set.bundle.x)]
    is_shifted = np.r_[np.zeros(len(clean.set.bundle)), np.ones(len(shift.set.bundle))]
    got = shift.shift_auroc["one_minus_confidence"]
    assert np.isfinite(got)
    assert got == pytest.approx(roc_auc_score(is_shifted, both), abs=1e-9)


def test_a_single_unlabelled_image_still_gets_a_report(digits_zip):
    import zipfile

    archive = zipfile.ZipFile(io.BytesIO(digits_zip))
    png = archive.read(next(n for n in archive.namelist() if n.endswith(".png")))
    uploaded = byom.open_upload(models.digits_torchscript(), "digits_cnn.pt", DataSource("image", png, "one.png"),
                                {"class_names": [str(i) for i in range(10)]})
    report = upload_report(uploaded, "single", epsilon=0.2)
    assert [len(r.set.bundle) for r in report.sets] == [1] * len(report.sets)
    assert all(r.y is None for r in report.sets) and "fgsm" in [r.name for r in report.sets]


def test_text_upload_gets_word_dropout():
    csv = ("text,label\n" + "\n".join(["good great fine film today,pos", "bad awful poor plot again,neg"] * 10)).encode()
    uploaded = byom.open_upload(models.text_skops(), "t.skops", DataSource("text_csv", csv, "t.csv"))
    report = upload_report(uploaded, "single")
    assert [r.name for r in report.sets] == ["clean", *(f"drop_{p:g}" for p in WORD_DROPOUT)]
    clean = [len(t.split()) for t in report.get("clean").set.bundle.x]
    for p in WORD_DROPOUT:
        kept = [len(t.split()) for t in report.get(f"drop_{p:g}").set.bundle.x]
        assert all(1 <= k <= c for k, c in zip(kept, clean))
        assert np.mean(kept) / np.mean(clean) == pytest.approx(1 - p, abs=0.2)
    assert "text" in fgsm_reason(uploaded.trained.adapter)


def test_unknown_source_is_a_clear_error(digits_zip):
    uploaded = upload(net(), "script", digits_zip)
    with pytest.raises(TrustLensError, match="'deep'"):
        upload_source(uploaded, "deep", 5)


@pytest.mark.parametrize("kind", ["text", "vit"])
def test_a_hugging_face_upload_gets_mc_dropout_from_its_own_dropout_modules(kind, digits_zip, tmp_store):
    """The transformer's own nn.Dropout modules (BERT's hidden dropout, p = 0.1 by default; a ViT's, set to 0.1 here:
    ViTConfig's default is 0, and such a model is told why it gets none) sample in a copy; the shared model stays in
    evaluation mode. Text gets the word-dropout stress sets, the ViT the image ones."""
    if kind == "text":
        csv = ("text,label\n" + "\n".join(["good great fine film today,pos", "bad awful poor plot again,neg"] * 6)).encode()
        uploaded = byom.open_upload(models.tiny_bert_zip(), "tiny-bert.zip", DataSource("text_csv", csv, "t.csv"))
    else:
        without = byom.open_upload(models.tiny_vit_zip(), "tiny-vit.zip", DataSource("image_zip", digits_zip, "d.zip"))
        assert "every dropout module has probability p = 0" in upload_support(without)["mc_dropout"]
        uploaded = byom.open_upload(models.tiny_vit_zip(config={"hidden_dropout_prob": 0.1}), "tiny-vit-dropout.zip",
                                    DataSource("image_zip", digits_zip, "d.zip"))
    adapter = uploaded.trained.adapter
    assert dropout_layers(adapter.torch_module())  # found in the transformers model inside the wrapper
    assert upload_support(uploaded) == {"single": None, "mc_dropout": None}
    test = uploaded.splits["test"]
    before = adapter.predict_proba(test.x)
    proba = upload_source(uploaded, "mc_dropout", 4, seed=1).probabilities(test, batch_size=8, store=tmp_store)
    assert proba.shape == (4, len(test), len(adapter.class_names))
    np.testing.assert_allclose(proba.sum(axis=2), 1.0, atol=1e-5)
    assert not np.allclose(proba[0], proba[1])  # the passes differ: its dropout really samples
    assert not adapter.torch_module().training
    np.testing.assert_allclose(adapter.predict_proba(test.x), before, atol=1e-6)  # the shared model is untouched
    report = upload_report(uploaded, "mc_dropout", 4, store=tmp_store)
    names = [r.name for r in report.sets]
    assert names[0] == "clean" and len(names) > 1
    if kind == "text":
        assert names[1:] == [f"drop_{p:g}" for p in WORD_DROPOUT]
