"""Trust checks on text: randomisation of a torch text model, deletion / insertion curves, agreement."""

from __future__ import annotations

import numpy as np
import pytest

from core.errors import InputShapeError, ParameterError
from core.trust.sanity_text import (
    available_methods,
    predicted_classes,
    text_agreement,
    text_explanations,
    text_faithfulness_curves,
    text_randomization_test,
)
from core.text.words import WordDocument
from tests.core.test_lime_text import ATHEISM, CHRISTIAN, DOC, _adapter, _pipeline

TEXTS = [DOC, "we pray in church every Sunday and God is love, there is no reason to doubt the lord",
         "there is no god; reason alone explains the universe and belief is a choice"]


@pytest.fixture(scope="module")
def linear():
    """Binary bag of words + logistic regression: removing word w moves the logit by exactly -coef[w]."""
    from sklearn.feature_extraction.text import CountVectorizer

    pipe = _pipeline(CountVectorizer(lowercase=False, binary=True, token_pattern=r"(?u)\b\w+\b"))
    return _adapter(pipe), pipe


def true_relevance(pipe, text: str, target: int) -> np.ndarray:
    """Each word's exact contribution to the target's logit (0 for words the vectorizer does not know)."""
    vocabulary = pipe.named_steps["vec"].vocabulary_
    coef = pipe.named_steps["clf"].coef_[0] * (1 if target == 1 else -1)
    return np.array([coef[vocabulary[w]] if w in vocabulary else 0.0 for w in WordDocument.parse(text).words])


@pytest.fixture(scope="module")
def trained_bag():
    """A bag-of-embeddings model trained on the toy corpus (seconds), so randomising it changes something."""
    import torch

    from core import nets
    from core.adapters.torch_adapter import TorchAdapter
    from core.text.vocab import Vocabulary

    torch.manual_seed(0)
    corpus = ATHEISM + CHRISTIAN
    vocab = Vocabulary.fit(corpus, min_df=1, max_length=40)
    module = nets.text_bag_of_embeddings(len(vocab), 2, dim=16, hidden=16, dropout=0.0)
    x = torch.as_tensor(vocab.encode(corpus))
    y = torch.as_tensor([0] * len(ATHEISM) + [1] * len(CHRISTIAN))
    optimiser = torch.optim.Adam(module.parameters(), lr=0.05)
    for _ in range(60):
        optimiser.zero_grad()
        torch.nn.functional.cross_entropy(module(x), y).backward()
        optimiser.step()
    adapter = TorchAdapter(module, name="bag", class_names=("atheism", "christian"), input_kind="text",
                           encode=vocab.encode, encoder_fingerprint=vocab.fingerprint, device="cpu")
    assert (adapter.predict_proba(corpus).argmax(axis=1) == y.numpy()).all()
    return adapter


def test_deletion_by_true_relevance_beats_random_on_a_linear_model(linear):
    adapter, pipe = linear
    targets = predicted_classes(adapter, TEXTS)
    truth = [true_relevance(pipe, t, int(k)) for t, k in zip(TEXTS, targets)]
    curves = text_faithfulness_curves(adapter, TEXTS, targets, truth, method="truth", steps=10)
    areas = curves.areas()
    assert areas["deletion"] < areas["deletion_random"] < areas["deletion_least"]
    assert areas["insertion"] > areas["insertion_random"]
    assert curves.verdict().startswith("faithful: deleting its top words")
    # Every curve starts at the full document's probability and deletion ends at the empty one's.
    p_full = adapter.predict_proba(TEXTS)[np.arange(len(TEXTS)), targets]
    p_empty = adapter.predict_proba([""] * len(TEXTS))[np.arange(len(TEXTS)), targets]
    np.testing.assert_allclose(curves.curves["deletion"][:, 0], p_full, atol=1e-12)
    np.testing.assert_allclose(curves.curves["deletion"][:, -1], p_empty, atol=1e-12)
    np.testing.assert_allclose(curves.curves["insertion"][:, 0], p_empty, atol=1e-12)
    # The reversed relevance is the least faithful order there is.
    reverse = text_faithfulness_curves(adapter, TEXTS, targets, [-w for w in truth], steps=10)
    assert reverse.areas()["deletion"] > areas["deletion_random"]
    assert reverse.verdict().startswith("does not beat random deletion")


def test_faithfulness_checks_its_inputs(linear):
    adapter, _ = linear
    with pytest.raises(InputShapeError, match="Input 0 has 3 words but its values have shape"):
        text_faithfulness_curves(adapter, ["God is love"], np.array([1]), [np.zeros(5)])
    with pytest.raises(InputShapeError, match="one target and one value vector per input"):
        text_faithfulness_curves(adapter, ["God is love"], np.array([1, 0]), [np.zeros(3)])
    with pytest.raises(ParameterError, match="'steps'"):
        text_faithfulness_curves(adapter, ["God is love"], np.array([1]), [np.zeros(3)], steps=0)


def test_agreement_of_a_method_with_itself_is_one(linear, tmp_store):
    adapter, _ = linear
    targets = predicted_classes(adapter, TEXTS)
    found = text_explanations(adapter, TEXTS, ["occlusion", "lime"], targets, store=tmp_store)
    both = {"occlusion": found["occlusion"], "again": found["occlusion"], "lime": found["lime"]}
    names, rho, top = text_agreement(both)
    assert names == ["occlusion", "again", "lime"] and rho.shape == top.shape == (3, 3, len(TEXTS))
    np.testing.assert_allclose(rho[0, 1], 1.0)
    np.testing.assert_allclose(top[0, 1], 1.0)
    np.testing.assert_allclose(rho, rho.transpose(1, 0, 2))
    # On a linear bag-of-words model LIME and leave-one-word-out rank the words alike, but not identically.
    assert 0.5 < rho[0, 2].mean() < 1.0
    # Explanations are toward the given class, even when it is not the predicted one.
    other = text_explanations(adapter, TEXTS[:1], ["occlusion"], 1 - targets[:1], store=tmp_store)
    assert other["occlusion"][0].target == 1 - targets[0]


def test_explanations_refuse_unsupported_and_unknown_methods(linear):
    adapter, _ = linear
    assert "gradient_x_embedding" not in available_methods(adapter)
    with pytest.raises(ParameterError, match="Gradient x embedding does not support"):
        text_explanations(adapter, TEXTS, ["gradient_x_embedding"], np.zeros(3, dtype=int))
    with pytest.raises(ParameterError, match="Unknown text method 'saliency'"):
        text_explanations(adapter, TEXTS, ["saliency"], np.zeros(3, dtype=int))
    with pytest.raises(ParameterError, match="needs a torch model"):
        text_randomization_test(adapter, TEXTS, ["occlusion"])


def test_randomising_a_trained_text_model_changes_its_explanations(trained_bag, tmp_store):
    module = trained_bag.torch_module()
    before = {k: v.clone() for k, v in module.state_dict().items()}
    result = text_randomization_test(trained_bag, TEXTS, ["occlusion", "gradient_x_embedding"], store=tmp_store)
    for method, r in result.items():
        assert r.stages == ("original", "up to fc2", "up to fc1", "up to pool.embedding")
        assert r.heatmaps.shape == (4, len(TEXTS))
        np.testing.assert_allclose(r.similarity["spearman"][0], 1.0)
        assert r.mean()[-1] < 0.5, (method, r.mean())
        assert "word weights change" in r.verdict()
    # The model itself is never modified: the randomised stages are copies.
    for k, v in module.state_dict().items():
        assert (v == before[k]).all(), k
    independent = text_randomization_test(trained_bag, TEXTS[:1], ["occlusion"], mode="independent", store=tmp_store)
    assert independent["occlusion"].stages == ("original", "fc2", "fc1", "pool.embedding")
    with pytest.raises(ParameterError, match="'mode'"):
        text_randomization_test(trained_bag, TEXTS, ["occlusion"], mode="sideways")


@pytest.mark.slow  # 16 s cold: the newsgroups forest
def test_cli_prints_the_text_checks_for_the_newsgroups_models(capsys):
    import json

    from core.cli import main
    from tests.conftest import require_dataset

    require_dataset("newsgroups")
    args = ["sanity", "newsgroups", "--variant", "headers", "--index", "3", "--json", "--quiet"]
    assert main([*args, "--model", "bag", "--method", "occlusion"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert [r["stage"] for r in report["randomization"]] == ["original", "up to fc2", "up to fc1",
                                                            "up to pool.embedding"]
    assert report["randomization"][0] == {"stage": "original", "spearman": 1.0, "top_k": 1.0}
    assert report["randomization_verdict"].startswith(("passes", "fails"))
    assert report["faithfulness"]["steps"] == 10
    assert report["faithfulness"]["areas"]["deletion"] < report["faithfulness"]["areas"]["deletion_random"]
    # A scikit-learn model gets the deletion curves and the reason the randomisation did not run.
    assert main([*args, "--model", "logreg", "--method", "lime", "--steps", "5"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["randomization"] is None and "needs a torch model" in report["randomization_verdict"]
    assert report["faithfulness"]["steps"] == 5
    # Methods the model cannot run, and image methods, are refused with exit code 1.
    assert main([*args, "--model", "logreg", "--method", "gradient_x_embedding"]) == 1
    assert "does not support 'logreg'" in capsys.readouterr().err
    assert main([*args, "--method", "grad_cam"]) == 1
    assert "Unknown text method 'grad_cam'" in capsys.readouterr().err
