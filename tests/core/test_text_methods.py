"""Occlusion, gradient x embedding (captum as oracle), deletion curves, stability and SP-LIME."""

from __future__ import annotations

import numpy as np
import pytest

from core.errors import InputShapeError, ParameterError, UnknownNameError
from core.text.lime_text import LimeParams, TextExplanation
from core.text.text_methods import (
    deletion_curves,
    explain_gradient_embedding,
    explain_occlusion,
    explain_text,
    lime_stability,
    submodular_pick,
    summarize,
    supported_methods,
)
from core.text.words import WordDocument
from tests.core.test_lime_text import ATHEISM, CHRISTIAN, DOC, _adapter, _pipeline


@pytest.fixture(scope="module")
def toy():
    from sklearn.feature_extraction.text import TfidfVectorizer

    return _adapter(_pipeline(TfidfVectorizer(lowercase=False)))


@pytest.fixture(scope="module")
def bag():
    import torch

    from core import nets
    from core.adapters.torch_adapter import TorchAdapter
    from core.text.vocab import Vocabulary

    torch.manual_seed(0)
    vocab = Vocabulary.fit(ATHEISM + CHRISTIAN, min_df=1, max_length=12)
    module = nets.text_bag_of_embeddings(len(vocab), 2, dim=8, hidden=8)
    return TorchAdapter(module, name="bag", class_names=("atheism", "christian"), input_kind="text",
                        encode=vocab.encode, encoder_fingerprint=vocab.fingerprint, device="cpu")


def test_occlusion_is_the_drop_when_each_word_is_removed(toy, tmp_store):
    e = explain_occlusion(toy, DOC, store=tmp_store)
    doc = WordDocument.parse(DOC)
    p0 = toy.predict_proba([DOC])[0, e.target]
    for j in (0, 5, doc.words.index("God")):
        mask = np.ones((1, doc.n_words), dtype=bool)
        mask[0, j] = False
        assert e.weights[j] == pytest.approx(p0 - toy.predict_proba(doc.texts(mask))[0, e.target], abs=1e-12)
    assert e.path == "sklearn-sparse" and len(e.selected) == doc.n_words
    assert abs(e.weights[e.selected[0]]) == np.abs(e.weights).max()


def test_gradient_x_embedding_equals_captum(bag, tmp_store):
    import torch
    from captum.attr import LayerGradientXActivation

    text = "God is love and reason is god, say the faithful believers of the church today"
    e = explain_gradient_embedding(bag, text, target=1, store=tmp_store)
    module = bag.torch_module()
    ids = bag.to_tensor([text])
    attr = LayerGradientXActivation(lambda t: torch.softmax(module(t), dim=1), module.pool.embedding)
    per_token = attr.attribute(ids, target=1).sum(dim=-1)[0].detach().numpy()
    # Tokens are lower-cased and cut at max_length 12; each word gets the sum over its tokens.
    from core.text.vocab import tokenize

    tokens = tokenize(text)[:12]
    doc = WordDocument.parse(text)
    expected = np.zeros(doc.n_words)
    position = 0
    for j in doc.word_index:
        if j >= 0 and position < len(tokens):
            expected[j] += per_token[position]
            position += 1
    np.testing.assert_allclose(e.weights, expected, atol=1e-6)
    assert e.weights[doc.words.index("church")] == 0.0  # past max_length: the model never saw it
    assert e.weights[doc.words.index("God")] != 0.0 and e.weights[doc.words.index("god")] != 0.0


def test_gradient_methods_say_why_they_do_not_apply(toy, tmp_store):
    reasons = supported_methods(toy)
    assert reasons["lime"] is None and reasons["occlusion"] is None and "differentiable" in reasons["gradient_x_embedding"]
    with pytest.raises(InputShapeError, match="LIME"):
        explain_gradient_embedding(toy, DOC, store=tmp_store)
    with pytest.raises(UnknownNameError, match="text explanation method 'saliency'"):
        explain_text(toy, DOC, "saliency", store=tmp_store)


def test_torch_model_generic_path_all_methods(bag, tmp_store):
    no_attention = "the model has no attention layers (it is not a transformer)."
    assert supported_methods(bag) == {"lime": None, "occlusion": None, "gradient_x_embedding": None, "shap_partition": None,
                                      "integrated_gradients": None, "attention": no_attention,
                                      "attention_rollout": no_attention}
    lime = explain_text(bag, DOC, "lime", LimeParams(num_samples=200), store=tmp_store)
    assert lime.path == "strings"
    occ = explain_text(bag, DOC, "occlusion", store=tmp_store)
    grad = explain_text(bag, DOC, "gradient_x_embedding", store=tmp_store)
    assert lime.target == occ.target == grad.target == lime.predicted
    np.testing.assert_allclose(lime.proba, occ.proba, atol=1e-6)


def test_deletion_curve_points_are_real_predictions(toy, tmp_store):
    lime = explain_text(toy, DOC, "lime", LimeParams(num_samples=500, feature_selection="none"), store=tmp_store)
    occ = explain_occlusion(toy, DOC, store=tmp_store)
    curves = deletion_curves(toy, DOC, lime.target, {"lime": lime.ranking(), "occlusion": occ.ranking()}, steps=5,
                             n_random=4, store=tmp_store)
    assert set(curves) == {"lime", "occlusion", "random"}
    doc = WordDocument.parse(DOC)
    for name in ("lime", "occlusion"):
        curve = curves[name]
        for k in (0, 3, 5):
            mask = np.ones((1, doc.n_words), dtype=bool)
            mask[0, curve.order[:k]] = False
            p = toy.predict_proba(doc.texts(mask))[0, lime.target]
            assert curve.probabilities[k] == pytest.approx(p, abs=1e-12)
        assert curve.score == pytest.approx(np.mean(curve.probabilities[0] - curve.probabilities[1:]))
    # Deleting the words the explanations rank highest hurts the prediction far more than chance.
    assert curves["occlusion"].score > curves["random"].score + 0.02
    assert curves["lime"].score > curves["random"].score + 0.02


def test_stability_over_seeds(toy, tmp_store):
    s = lime_stability(toy, DOC, LimeParams(num_samples=300, num_features=5), n_seeds=3, store=tmp_store)
    assert s.seeds == (0, 1, 2) and s.weights.shape == (3, len(s.words)) and len(s.words) >= 5
    assert 0.0 < s.jaccard <= 1.0
    assert np.all(s.std >= 0) and np.abs(s.mean[0]) == np.abs(s.mean).max()
    single = lime_stability(toy, DOC, LimeParams(num_samples=300, num_features=5), n_seeds=1, store=tmp_store)
    assert single.jaccard == 1.0 and np.all(single.std == 0)


def _fake(words_weights: dict[str, float]) -> TextExplanation:
    doc = WordDocument.parse(" ".join(words_weights))
    weights = np.array([words_weights[w] for w in doc.words])
    return TextExplanation("lime", doc, weights, np.argsort(-np.abs(weights)), 0, ("a", "b"), np.array([0.6, 0.4]))


def test_submodular_pick_covers_important_words_first():
    explanations = [
        _fake({"god": 0.5, "faith": 0.1}),
        _fake({"god": 0.4, "church": 0.3, "pray": 0.2}),
        _fake({"reason": 0.6, "science": 0.2}),
        _fake({"god": 0.3}),
    ]
    pick = submodular_pick(explanations, 2)
    # importance: god sqrt(1.2) ~ 1.10 ... the greedy picks the doc adding most, then the complement.
    assert pick.picked == (1, 2)
    assert pick.coverage[0] == pytest.approx(np.sqrt(1.2) + np.sqrt(0.3) + np.sqrt(0.2))
    assert pick.coverage[-1] <= pick.total
    assert submodular_pick(explanations, 10).picked == (1, 2, 0, 3)
    with pytest.raises(InputShapeError):
        submodular_pick([], 2)


def test_summary_counts_header_words(toy, tmp_store):
    e = explain_occlusion(toy, DOC, store=tmp_store)
    s = summarize(e, k=len(e.words))
    assert set(s["from_header"]) <= WordDocument.parse(DOC).header_words()
    assert s["header_share"] == len(s["from_header"]) / len(e.words)


# -- SHAP on text (issue 8) ---------------------------------------------------------------
def test_text_shap_adds_up_and_matches_calling_shap_directly(toy, tmp_store):
    import shap

    from core.text.shap_text import TextShapParams, explain_text_shap, rank_agreement

    e = explain_text_shap(toy, DOC, TextShapParams(max_evals=300), store=tmp_store)
    assert e.method == "shap_partition" and e.target == e.predicted
    output = toy.predict_proba([DOC])[0, e.target]
    assert e.intercept + e.weights.sum() + e.params["separator_value"] == pytest.approx(output, abs=1e-9)
    assert e.params["additivity_error"] < 1e-9
    # The oracle: shap itself on the same function, masker and budget, summed per word.
    f = lambda texts: toy.predict_proba(list(texts))[:, e.target]  # noqa: E731
    direct = shap.Explainer(f, shap.maskers.Text(r"\W+"), algorithm="partition")([DOC], max_evals=300, batch_size=500, silent=True)
    doc = WordDocument.parse(DOC)
    expected = np.zeros(doc.n_words)
    for token, value in zip(direct.data[0], direct.values[0]):
        words = __import__("re").findall(r"\w+", token)
        if words:
            expected[doc.words.index(words[0])] += value
    np.testing.assert_allclose(e.weights, expected, atol=1e-10)
    # SHAP and LIME broadly agree on this toy model; an explanation agrees with itself perfectly.
    lime = explain_text(toy, DOC, "lime", LimeParams(num_samples=1000, feature_selection="none"), store=tmp_store)
    agreement = rank_agreement(lime, e, k=5)
    assert agreement["spearman"] > 0.3 and agreement["top_k_overlap"] >= 0.4
    assert rank_agreement(e, e) == {"spearman": 1.0, "top_k_overlap": 1.0, "sign_agreement": 1.0, "k": 10}
    with pytest.raises(ParameterError):
        rank_agreement(e, explain_occlusion(toy, "God is love", store=tmp_store))
    with pytest.raises(ParameterError, match="max_evals"):
        TextShapParams(max_evals=1)
