"""The ModelAdapter contract, checked on every built-in model (core/adapters/, core/scenarios.py).

A module-scoped parametrised fixture loads each model once (training it on first use, then
reading it from the ArtifactStore); pytest groups the tests by model.
"""

from __future__ import annotations

import re
import threading

import numpy as np
import pytest

from core import scenarios
from core.adapters.base import ModelAdapter
from core.errors import InputShapeError, ParameterError, TrustLensError, UnknownNameError
from tests.core.models_support import EXPECTED_MODELS, MODEL_IDS, N_SAMPLES, holdout, load, n_samples


def test_every_expected_model_is_registered():
    registered = [(s, m) for s, spec in scenarios.SCENARIOS.items() for m in spec.model_names]
    assert sorted(registered) == sorted(EXPECTED_MODELS)


@pytest.fixture(scope="module", params=EXPECTED_MODELS, ids=MODEL_IDS)
def case(request):
    scenario, model = request.param
    loaded = load(scenario, model)
    split = holdout(scenario)
    return loaded, split[:n_samples(scenario, model)]


TORCH_MODELS = [(s, m) for s, m in EXPECTED_MODELS if scenarios.get_spec(s).model(m).framework in ("torch", "transformer")]


@pytest.fixture(scope="module", params=TORCH_MODELS, ids=[f"{s}-{m}" for s, m in TORCH_MODELS])
def torch_case(request):
    scenario, model = request.param
    return load(scenario, model), holdout(scenario)[:n_samples(scenario, model)]


def own_hooks(hooks) -> list:
    """Hooks other than transformers' own output-capturing hooks (installed once per model, kept for good)."""
    return [h for h in hooks.values() if "output_capturing_hook" not in getattr(h, "__qualname__", "")]


def checked_layers(adapter) -> list[str]:
    """Every layer; for a transformer, whose layers repeat one block, the ends and one in the middle (each layer
    of MiniLM costs a forward pass of 128-token texts: about 1.5 s for 30 texts on one thread)."""
    names = adapter.layer_names()
    if adapter.info.extra.get("architecture") == "transformer":
        return [names[0], names[1], names[len(names) // 2], names[-2], names[-1]]
    return names


def assert_no_hooks(module):
    import torch

    for name, sub in module.named_modules():
        assert not own_hooks(sub._forward_hooks), f"forward hook left on {name or '<root>'}"
        assert not sub._forward_pre_hooks, f"forward pre-hook left on {name or '<root>'}"
    assert not torch.nn.modules.module._global_forward_hooks


def test_info(case):
    loaded, data = case
    adapter = loaded.adapter
    assert isinstance(adapter, ModelAdapter)
    info = adapter.info
    assert info.class_names == scenarios.get_spec(loaded.scenario).class_names
    assert info.input_kind == data.kind
    assert info.framework == {"transformer": "torch"}.get(loaded.spec.framework, loaded.spec.framework)
    assert info.n_parameters > 0
    assert info.task == "classification"


def test_predict_proba_shape_and_simplex(case):
    loaded, data = case
    proba = loaded.adapter.predict_proba(data.x)
    assert proba.shape == (len(data), data.n_classes)
    assert proba.dtype == np.float64
    assert np.all(proba >= 0) and np.all(proba <= 1)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-6)
    np.testing.assert_array_equal(loaded.adapter.predict(data.x), proba.argmax(axis=1))
    # a trained model is not constant: predictions vary and mostly match the labels
    assert len(np.unique(proba.argmax(axis=1))) > 1
    assert np.mean(proba.argmax(axis=1) == data.y) > 0.6


def test_predict_proba_independent_of_batch_size(case):
    loaded, data = case
    reference = loaded.adapter.predict_proba(data.x, batch_size=64)
    for batch_size in (1, 7):
        np.testing.assert_allclose(loaded.adapter.predict_proba(data.x, batch_size=batch_size), reference,
                                   rtol=1e-5, atol=1e-6, err_msg=f"batch_size={batch_size}")
    # a sample's probabilities do not depend on its batch mates
    np.testing.assert_allclose(loaded.adapter.predict_proba(data.x[3:4]), reference[3:4], rtol=1e-5, atol=1e-6)


def test_predict_proba_empty_input(case):
    loaded, data = case
    assert loaded.adapter.predict_proba(data.x[:0]).shape == (0, data.n_classes)


def test_predict_proba_rejects_wrong_shape(case):
    loaded, data = case
    if data.kind == "text":
        bad = data.x[0]  # a bare string instead of a sequence of strings
        with pytest.raises(InputShapeError, match="sequence of strings"):
            loaded.adapter.predict_proba(bad)
    else:
        bad = data.x[0]  # one sample without its batch axis
        with pytest.raises(InputShapeError, match=re.escape(str(bad.shape))):
            loaded.adapter.predict_proba(bad)


def test_layer_names(case):
    loaded, data = case
    names = loaded.adapter.layer_names()
    assert len(names) == len(set(names))
    assert all(isinstance(n, str) and n for n in names)
    if data.kind in ("image", "tabular"):
        assert names
    if loaded.spec.framework == "sklearn" and data.kind != "text":
        assert names[0] == "input"


def test_activations_every_layer(case):
    loaded, data = case
    adapter = loaded.adapter
    for layer in checked_layers(adapter):
        acts = adapter.activations(data.x, layer)
        assert isinstance(acts, np.ndarray), layer
        assert acts.dtype == np.float32, layer
        assert acts.ndim == 2 and acts.shape[0] == len(data) and acts.shape[1] > 0, (layer, acts.shape)
        assert np.isfinite(acts).all(), layer
    if adapter.torch_module() is not None:
        assert_no_hooks(adapter.torch_module())


def test_activations_match_the_model(case):
    """Activations come from the named layer: checked against an independent computation."""
    loaded, data = case
    adapter = loaded.adapter
    names = adapter.layer_names()
    if adapter.torch_module() is not None:
        # the last layer gives the logits; their softmax is predict_proba
        logits = adapter.activations(data.x, names[-1]).astype(np.float64)
        soft = np.exp(logits - logits.max(axis=1, keepdims=True))
        soft /= soft.sum(axis=1, keepdims=True)
        np.testing.assert_allclose(soft, adapter.predict_proba(data.x), atol=1e-5)
        assert logits.shape[1] == data.n_classes
    else:
        estimator = adapter.estimator
        if "input" in names:
            np.testing.assert_array_equal(adapter.activations(data.x, "input"),
                                          np.asarray(data.x, np.float32).reshape(len(data), -1))
        steps = [n for n in names if n != "input"]
        for position, step in enumerate(steps):
            expected = estimator[: position + 1].transform(list(data.x) if data.kind == "text" else data.x)
            expected = expected.toarray() if hasattr(expected, "toarray") else np.asarray(expected)
            np.testing.assert_allclose(adapter.activations(data.x, step), expected.reshape(len(data), -1), rtol=1e-6)


@pytest.mark.parametrize("batch_size", [1, 7])
def test_activations_independent_of_batch_size(case, batch_size):
    loaded, data = case
    adapter = loaded.adapter
    x = data.x[:15]  # batch_size 1 is one forward pass per sample and layer: keep it short
    for layer in checked_layers(adapter):
        np.testing.assert_allclose(adapter.activations(x, layer, batch_size=batch_size),
                                   adapter.activations(x, layer, batch_size=64), rtol=1e-5, atol=1e-5,
                                   err_msg=layer)


def test_unknown_layer_lists_valid_names(case):
    loaded, data = case
    adapter = loaded.adapter
    with pytest.raises(UnknownNameError) as info:
        adapter.activations(data.x, "no-such-layer")
    message = str(info.value)
    assert "'no-such-layer'" in message
    for name in adapter.layer_names():
        assert repr(name) in message
    assert isinstance(info.value, KeyError)  # callers may catch KeyError
    if adapter.torch_module() is not None:
        assert_no_hooks(adapter.torch_module())


def test_fingerprint(case):
    loaded, data = case
    adapter = loaded.adapter
    fp = adapter.fingerprint
    assert re.fullmatch(r"[0-9a-f]{40,64}", fp)
    assert fp == adapter.info.fingerprint
    # stable: recomputing from the model's current state (after predictions) gives the same digest
    adapter.predict_proba(data.x)
    if adapter.torch_module() is not None:
        recomputed = type(adapter)._fingerprint(adapter.torch_module(), adapter.class_names, adapter._outputs,
                                                _encoder_fp(loaded))
    else:
        recomputed = type(adapter)._fingerprint(adapter.estimator, adapter.class_names)
    assert recomputed == fp


def _encoder_fp(loaded) -> str:
    # the text model folds its vocabulary's fingerprint in; the others have none
    if loaded.scenario != "newsgroups":
        return ""
    if loaded.spec.framework == "transformer":  # the tokeniser's files and the token budget
        return loaded.adapter._encoder_fingerprint
    from core.store import model_store  # where load_model keeps trained models (TRUSTLENS_MODEL_CACHE_DIR if set)

    return model_store().load(loaded.key)["state"]["vocab"].fingerprint


def test_framework_specific_contract(case):
    loaded, data = case
    adapter = loaded.adapter
    if loaded.spec.framework == "sklearn":
        assert adapter.torch_module() is None
        assert isinstance(adapter.info.gradients_unavailable, str) and "gradient" in adapter.info.gradients_unavailable
        assert adapter.info.device == "cpu"
    else:
        import torch

        module = adapter.torch_module()
        assert isinstance(module, torch.nn.Module)
        assert not module.training  # eval mode: dropout off, deterministic predictions
        assert adapter.info.gradients_unavailable is None
        assert adapter.info.device == adapter.device
        # the module is the one predict_proba runs: changing its output changes the predictions
        with torch.no_grad():
            tensor = adapter.to_tensor(data.x[:4])
            direct = torch.softmax(module(tensor), dim=1).double().cpu().numpy()
        np.testing.assert_allclose(direct, adapter.predict_proba(data.x[:4]), atol=1e-6)


def _break_input(loaded, data, monkeypatch):
    """An input that passes the adapter's shape check but makes the forward pass raise."""
    adapter = loaded.adapter
    if data.kind == "image":
        n, c, h, w = data.x[:3].shape
        return np.zeros((n, c, h - 3, w - 3), np.float32)  # the dense layer gets the wrong width
    if data.kind == "tabular":
        return np.zeros((3, data.x.shape[1] + 3), np.float32)  # normalisation cannot broadcast
    if adapter.info.extra.get("architecture") == "transformer":  # token ids past the vocabulary, mask on
        vocab_size = adapter.input_embeddings().num_embeddings
        monkeypatch.setattr(adapter, "_encode", lambda chunk: np.stack(
            [np.full((len(chunk), 5), vocab_size + 10), np.ones((len(chunk), 5))], axis=1).astype(np.int64))
        return data.x[:3]
    vocab_size = adapter.torch_module().pool.embedding.num_embeddings
    monkeypatch.setattr(adapter, "_encode", lambda chunk: np.full((len(chunk), 5), vocab_size + 10, np.int64))
    return data.x[:3]


def test_no_hooks_left_after_exception_mid_forward(torch_case, monkeypatch):
    loaded, data = torch_case
    adapter = loaded.adapter
    bad = _break_input(loaded, data, monkeypatch)
    for layer in checked_layers(adapter):
        with pytest.raises(Exception) as info:
            adapter.activations(bad, layer)
        assert not isinstance(info.value, TrustLensError), "the forward pass should have started"
        assert_no_hooks(adapter.torch_module())
    monkeypatch.undo()
    # and the adapter still works afterwards
    assert adapter.activations(data.x, adapter.layer_names()[-1]).shape == (len(data), data.n_classes)


def test_activations_threads_do_not_mix(torch_case):
    """Adapters are shared across sessions: concurrent activations() calls stay separate."""
    loaded, data = torch_case
    adapter = loaded.adapter
    layers = [n for n in checked_layers(adapter) if n != "pool.embedding"]
    x = data.x[:12]  # three batches of 5 per call: enough to interleave; each layer runs 4 times (minilm: 128 tokens)
    expected = {layer: adapter.activations(x, layer, batch_size=5) for layer in layers}
    errors = []

    def worker(layer):
        try:
            for _ in range(3):
                np.testing.assert_allclose(adapter.activations(x, layer, batch_size=5), expected[layer], atol=1e-5)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append((layer, exc))

    threads = [threading.Thread(target=worker, args=(layer,)) for layer in layers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    assert_no_hooks(adapter.torch_module())


@pytest.mark.slow  # 65 s cold: loads (trains) every built-in model, MNIST's CNN too
def test_fingerprints_differ_between_models():
    fps = {}
    for scenario, model in EXPECTED_MODELS:
        try:
            fps[(scenario, model)] = load(scenario, model).adapter.fingerprint
        except pytest.skip.Exception:
            continue
    assert len(set(fps.values())) == len(fps), fps


# -- defects found and fixed (kept as regression tests) -----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def text_bag():
    return load("newsgroups", "bag"), holdout("newsgroups")[:N_SAMPLES]


@pytest.mark.slow  # the newsgroups bag model (14 s cold)
def test_text_embedding_activations_independent_of_batch_size(text_bag):
    loaded, data = text_bag
    full = loaded.adapter.activations(data.x, "pool.embedding", batch_size=64)
    np.testing.assert_allclose(loaded.adapter.activations(data.x, "pool.embedding", batch_size=7), full, atol=1e-6)


@pytest.mark.parametrize("scenario, model", [("digits", "cnn"), ("digits", "logreg")], ids=["torch", "sklearn"])
def test_predict_proba_batch_size_zero_raises(scenario, model):
    loaded = load(scenario, model)
    with pytest.raises(ParameterError, match="Got 0 instead"):
        loaded.adapter.predict_proba(holdout(scenario).x[:5], batch_size=0)


@pytest.mark.parametrize("scenario, model, layer", [
    ("digits", "cnn", "fc1"), ("digits", "logreg", "input"), ("digits", "logreg", "flatten"),
], ids=["torch", "sklearn-input", "sklearn-step"])
def test_activations_of_empty_input_are_2d(scenario, model, layer):
    loaded = load(scenario, model)
    acts = loaded.adapter.activations(holdout(scenario).x[:0], layer)
    assert acts.ndim == 2 and acts.shape[0] == 0


FINGERPRINT_PROBE = """
import json, sys
from core import scenarios
from core.store import ArtifactStore
loaded = scenarios.load_model("newsgroups", "logreg")          # from the session's store
adapter = loaded.adapter
tfidf = adapter.estimator.named_steps["tfidf"]
stored_id = tfidf._stop_words_id
at_load = adapter.fingerprint
adapter.predict_proba(scenarios.load_data("newsgroups")["test"].x[:5])
after_predict = type(adapter)._fingerprint(adapter.estimator, adapter.class_names)
retrained = scenarios.load_model("newsgroups", "logreg", store=ArtifactStore(sys.argv[1])).adapter.fingerprint
print(json.dumps({"at_load": at_load, "after_predict": after_predict, "retrained": retrained,
                  "stored_id": stored_id, "id_none": id(None)}))
"""


@pytest.fixture(scope="module")
def fingerprint_probe(tmp_path_factory):
    """Fingerprints of newsgroups/logreg seen by another process (loaded, used, retrained)."""
    import json
    import os
    import subprocess
    import sys

    from tests.conftest import ROOT, require_dataset

    require_dataset("newsgroups")
    here = load("newsgroups", "logreg").adapter.fingerprint  # make sure the artifact is stored
    out = subprocess.run([sys.executable, "-c", FINGERPRINT_PROBE, str(tmp_path_factory.mktemp("fresh-store"))],
                         cwd=ROOT, env=dict(os.environ), capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    probe = json.loads(out.stdout.strip().splitlines()[-1])
    if probe["stored_id"] == probe["id_none"]:
        pytest.skip("id(None) is the same in both processes here (no ASLR): the defect cannot show")
    return here, probe


@pytest.mark.slow  # 10 s: a fresh process trains newsgroups/logreg into its own store
def test_text_pipeline_fingerprint_survives_predicting_in_another_process(fingerprint_probe):
    here, probe = fingerprint_probe
    assert probe["at_load"] == here  # loading alone is fine (the stale address was pickled with it)
    assert probe["after_predict"] == probe["at_load"]


@pytest.mark.slow  # 7.6 s: fresh processes
def test_text_pipeline_fingerprint_is_a_function_of_content(fingerprint_probe):
    # Retraining may differ in the last bits (multi-threaded BLAS in lbfgs), so compare content:
    # a pickle round trip (what the cache does) keeps the fingerprint.
    import pickle

    adapter = load("newsgroups", "logreg").adapter
    adapter.predict_proba(holdout("newsgroups").x[:3])
    clone = pickle.loads(pickle.dumps(adapter.estimator))
    assert type(adapter)._fingerprint(clone, adapter.class_names) == adapter.fingerprint

def test_torch_class_probability_is_one_column_of_predict_proba():
    import numpy as np
    import torch

    from core.adapters.torch_adapter import TorchAdapter

    torch.manual_seed(0)
    module = torch.nn.Sequential(torch.nn.Linear(5, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    adapter = TorchAdapter(module, name="m", class_names=("a", "b", "c"), input_kind="tabular", device="cpu")
    x = np.random.default_rng(1).normal(size=(50, 5)).astype(np.float32)
    for k in range(3):
        column = adapter.class_probability(x, k, batch_size=7)
        assert column.shape == (50,) and column.dtype == np.float64
        np.testing.assert_allclose(column, adapter.predict_proba(x)[:, k], atol=1e-6)
    assert adapter.class_probability(x[:0], 1).shape == (0,)
