"""Built-in scenarios (core/scenarios.py): accuracy targets, honest metrics, no retraining on restart."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import accuracy_score

from core import scenarios
from core.errors import UnknownNameError
from core.progress import Recorder
from core.store import ArtifactStore
from tests.core.models_support import EXPECTED_MODELS, MODEL_IDS, load, holdout

# The targets the project promises (README / brief), independent of what core/scenarios.py says,
# so lowering a target there makes this file fail.
TARGETS = {
    ("digits", "cnn"): 0.97,
    ("mnist", "cnn"): 0.98,
    ("mnist", "vit"): 0.95,  # measured 0.968 (3 epochs, 85 s on 2 cores)
    ("newsgroups", "forest"): 0.85,
    ("newsgroups", "logreg"): 0.90,
    ("newsgroups", "minilm"): 0.80,  # both variants (tests/core/test_minilm.py): measured 0.847 and 0.815
    ("breast-cancer", "logreg"): 0.95,
    ("breast-cancer", "mlp"): 0.95,
    ("adult", "gboost"): 0.86,
    ("adult", "logreg"): 0.84,
    ("adult", "mlp"): 0.845,
}


def test_spec_targets_match_promised_targets():
    declared = {(s, m): t for s, spec in scenarios.SCENARIOS.items() for m, t in spec.accuracy_target.items()}
    assert declared == TARGETS


@pytest.mark.parametrize("scenario, model", list(TARGETS), ids=[f"{s}-{m}" for s, m in TARGETS])
def test_accuracy_meets_target(scenario, model):
    loaded = load(scenario, model)
    target = TARGETS[(scenario, model)]
    assert scenarios.get_spec(scenario).accuracy_target[model] == target
    assert loaded.metrics["test_accuracy"] >= target, loaded.metrics


@pytest.mark.parametrize("scenario, model", EXPECTED_MODELS, ids=MODEL_IDS)
def test_reported_accuracy_equals_independent_recomputation(scenario, model):
    # Training measured its accuracy with adapter.predict at training time; recomputed here from the predictions
    # the pages show (predict_proba_cached: the current code, chunked, kept in this run's cache). When a page test
    # of this run computed them first they are reused, which spares minilm a 35 s pass over its 717 test posts.
    from core.inference import predict_proba_cached

    loaded = load(scenario, model)
    test = holdout(scenario)
    recomputed = accuracy_score(test.y, predict_proba_cached(loaded.adapter, test, batch_size=64).argmax(axis=1))
    assert loaded.metrics["test_accuracy"] == pytest.approx(recomputed, abs=1e-12)
    assert loaded.metrics["n_test"] == len(test)
    assert loaded.metrics["n_train"] == len(scenarios.load_data(scenario)["train"])
    for name in ("train_accuracy", "val_accuracy", "test_accuracy"):
        assert 0.5 < loaded.metrics[name] <= 1.0
    if scenario == "digits":  # the val score is honest too
        val = scenarios.load_data(scenario)["val"]
        assert loaded.metrics["val_accuracy"] == pytest.approx(accuracy_score(val.y, loaded.adapter.predict(val.x)))


@pytest.mark.parametrize("scenario, model", EXPECTED_MODELS, ids=MODEL_IDS)
def test_restart_does_not_retrain(scenario, model):
    first = load(scenario, model)
    assert scenarios.is_trained(scenario, model)
    scenarios.forget_loaded_models()
    recorder = Recorder()
    second = scenarios.load_model(scenario, model, progress=recorder)
    assert second is not first  # really rebuilt, not the in-process memo
    assert second.trained_now is False
    assert second.adapter.fingerprint == first.adapter.fingerprint
    assert second.key == first.key
    assert second.metrics == first.metrics
    assert not any("training" in message for _, message in recorder.calls)
    sample = holdout(scenario).x[:10]
    np.testing.assert_allclose(second.adapter.predict_proba(sample), first.adapter.predict_proba(sample), atol=1e-12)
    # the memo returns the same object until forgotten
    assert scenarios.load_model(scenario, model) is second


def test_fresh_store_trains_digits_logreg(tmp_path):
    store = ArtifactStore(tmp_path / "fresh")
    recorder = Recorder()
    trained = scenarios.load_model("digits", "logreg", store=store, progress=recorder)
    assert trained.trained_now is True
    assert len(store.entries()) == 1 and store.contains(trained.key)
    assert recorder.calls and recorder.calls[-1][0] == 1.0
    fractions = [f for f, _ in recorder.calls]
    assert fractions == sorted(fractions)
    # training is deterministic: same model as the one in the session's store
    reference = load("digits", "logreg")
    assert trained.adapter.fingerprint == reference.adapter.fingerprint
    assert trained.key == reference.key
    # and a restart on that store loads it
    scenarios.forget_loaded_models()
    again = scenarios.load_model("digits", "logreg", store=store)
    assert again.trained_now is False and again.adapter.fingerprint == trained.adapter.fingerprint
    assert store.stats().hits == 1


def test_corrupt_model_artifact_is_retrained(tmp_path):
    store = ArtifactStore(tmp_path / "corrupt")
    first = scenarios.load_model("breast-cancer", "logreg", store=store)
    store.path_for(first.key).write_bytes(b"not a pickle")
    scenarios.forget_loaded_models()
    from core.store import CorruptEntryWarning

    with pytest.warns(CorruptEntryWarning):
        again = scenarios.load_model("breast-cancer", "logreg", store=store)
    assert again.trained_now is True
    assert again.adapter.fingerprint == first.adapter.fingerprint


def test_warm_report(tmp_path):
    reports = scenarios.warm("breast-cancer", models=["logreg", "gboost"])
    assert [r["model"] for r in reports] == ["logreg", "gboost"]
    logreg = reports[0]
    assert logreg["accuracy_target"] == 0.95
    assert logreg["meets_target"] is (load("breast-cancer", "logreg").metrics["test_accuracy"] >= 0.95)
    assert reports[1]["accuracy_target"] is None and reports[1]["meets_target"] is None
    assert logreg["fingerprint"] == load("breast-cancer", "logreg").adapter.fingerprint[:16]


def test_unknown_names_list_choices():
    with pytest.raises(UnknownNameError) as info:
        scenarios.get_spec("cifar")
    for name in ("digits", "mnist", "newsgroups", "breast-cancer", "titanic"):
        assert repr(name) in str(info.value)
    with pytest.raises(UnknownNameError, match="'cnn'.*'logreg'"):
        scenarios.load_model("digits", "resnet")
    with pytest.raises(UnknownNameError, match="'headers'"):
        scenarios.load_model("newsgroups", "logreg", variant="footers")
    with pytest.raises(UnknownNameError):
        scenarios.get_spec("digits").variant("no-headers")


def test_variants_default_and_validation():
    spec = scenarios.get_spec("newsgroups")
    assert spec.variant(None) == "headers" and spec.variant("no-headers") == "no-headers"
    assert scenarios.get_spec("digits").variant(None) is None


def test_summary_is_json_and_loads_no_data():
    import json

    before = dict(scenarios._data_cache)
    rows = [scenarios.summary(name) for name in scenarios.SCENARIOS]
    json.dumps(rows)
    assert scenarios._data_cache == before
    digits = rows[0]
    assert digits["name"] == "digits" and digits["models"] == ["cnn", "logreg"] and digits["data_available"]
