"""Our LIME for text, occlusion and gradient x embedding, checked against lime and captum."""

from __future__ import annotations

import numpy as np
import pytest

from core.errors import InputShapeError, ParameterError
from core.text.lime_text import LimeParams, explain_lime, fit_surrogate, kernel_weights, sample_masks
from core.text.text_perturb import perturber
from core.text.words import WordDocument

ATHEISM = ["there is no god and reason alone explains the universe", "atheism is the lack of belief in any god",
           "evolution and science answer what religion cannot", "I do not believe any deity exists, sorry",
           "the burden of proof lies on the believer", "secular ethics need no church or scripture"] * 4
CHRISTIAN = ["Jesus Christ is my lord and saviour", "we pray in church every Sunday with the faithful",
             "the Bible teaches love, grace and faith", "God sent His son to redeem our sins",
             "Christian fellowship and prayer strengthen belief", "the gospel of Christ brings salvation"] * 4
DOC = ("Subject: Re: faith\nNNTP-Posting-Host: cs.example.edu\n\nI do not believe in God; reason and "
       "science explain the universe, and the church cannot. God? No god at all.")


def _pipeline(vectorizer, estimator=None):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline

    pipe = Pipeline([("vec", vectorizer), ("clf", estimator or LogisticRegression(C=10, max_iter=1000))])
    pipe.fit(ATHEISM + CHRISTIAN, [0] * len(ATHEISM) + [1] * len(CHRISTIAN))
    return pipe


def _adapter(pipe):
    from core.adapters.sklearn_adapter import SklearnAdapter

    return SklearnAdapter(pipe, name="toy", class_names=("atheism", "christian"), input_kind="text")


@pytest.fixture(scope="module")
def toy():
    from sklearn.feature_extraction.text import TfidfVectorizer

    return _adapter(_pipeline(TfidfVectorizer(lowercase=False)))


# -- documents ------------------------------------------------------------------------------
def test_words_and_removal_match_lime_indexed_string():
    from lime.lime_text import IndexedString

    theirs = IndexedString(DOC)
    ours = WordDocument.parse(DOC)
    assert "".join(ours.segments) == DOC
    assert list(ours.words) == list(theirs.inverse_vocab)
    rng = np.random.default_rng(0)
    for _ in range(20):
        removed = rng.choice(ours.n_words, rng.integers(1, ours.n_words + 1), replace=False)
        active = np.ones((1, ours.n_words), dtype=bool)
        active[0, removed] = False
        assert ours.texts(active) == [theirs.inverse_removing(removed)]


def test_header_words_are_those_only_in_the_header():
    doc = WordDocument.parse(DOC)
    assert {"NNTP", "Posting", "Host", "Subject", "Re", "edu"} <= doc.header_words()
    assert "faith" in doc.header_words() and "God" not in doc.header_words()
    assert WordDocument.parse("no header here\n\nbody").header_words() == set()


def test_sampling_replays_lime_and_distances_match():
    from lime.lime_text import IndexedString, LimeTextExplainer

    doc = WordDocument.parse(DOC)
    explainer = LimeTextExplainer(random_state=7)
    data, _, distances = explainer._LimeTextExplainer__data_labels_distances(
        IndexedString(DOC), lambda texts: np.zeros((len(texts), 2)), 300)
    active = sample_masks(doc.n_words, 300, 7)
    np.testing.assert_array_equal(active, data.astype(bool))
    ours, weights = kernel_weights(active, 25.0)
    np.testing.assert_allclose(ours, distances, atol=1e-9)
    np.testing.assert_allclose(weights, np.sqrt(np.exp(-(distances ** 2) / 25.0 ** 2)), atol=1e-12)
    assert active[0].all() and not active[1:].all(axis=1).any()  # every other row removes >= 1 word


# -- the surrogate: equal to lime's LimeBase on the same data --------------------------------
@pytest.mark.parametrize("method,num_features", [("forward_selection", 6), ("highest_weights", 8), ("none", 5),
                                                 ("auto", 4), ("auto", 9)])
@pytest.mark.parametrize("seed", [0, 1])
def test_fit_surrogate_equals_lime_base(method, num_features, seed):
    from lime.lime_base import LimeBase

    rng = np.random.default_rng(seed)
    d = 30
    active = sample_masks(d, 400, seed)
    labels = 0.2 + 0.1 * active[:, :4] @ np.array([1.0, -0.8, 0.6, 0.3]) + 0.02 * rng.standard_normal(400)
    distances, weights = kernel_weights(active, 25.0)
    base = LimeBase(lambda dist: np.sqrt(np.exp(-(dist ** 2) / 25.0 ** 2)), random_state=0)
    intercept, exp, score, local_pred = base.explain_instance_with_data(
        active.astype(float), np.column_stack([1 - labels, labels]), distances, 1, num_features, method)
    ours = fit_surrogate(active, labels, weights, num_features, method)
    assert [int(f) for f, _ in exp] == ours.selected.tolist()
    np.testing.assert_allclose([c for _, c in exp], ours.coef, atol=1e-10)
    assert ours.intercept == pytest.approx(intercept, abs=1e-10)
    assert ours.score == pytest.approx(score, abs=1e-10)
    assert ours.local_pred == pytest.approx(float(local_pred[0]), abs=1e-10)


def test_constant_labels_select_in_order_like_lime():
    from lime.lime_base import LimeBase

    active = sample_masks(8, 100, 0)
    distances, weights = kernel_weights(active, 25.0)
    labels = np.full(100, 0.7)
    base = LimeBase(lambda dist: np.sqrt(np.exp(-(dist ** 2) / 625.0)))
    _, exp, score, _ = base.explain_instance_with_data(active.astype(float), np.column_stack([1 - labels, labels]),
                                                       distances, 1, 3, "forward_selection")
    ours = fit_surrogate(active, labels, weights, 3, "forward_selection")
    assert sorted(int(f) for f, _ in exp) == sorted(ours.selected.tolist()) == [0, 1, 2]
    # lime reports R^2 = 0 here only because its intercept misses 0.7 by 2e-16 (0/0 forced to 0);
    # a constant fitted exactly is a perfect local fit.
    assert ours.score == 1.0
    np.testing.assert_allclose(ours.coef, 0.0, atol=1e-12)


# -- the sparse fast path ---------------------------------------------------------------------
def _vectorizers():
    from sklearn.feature_extraction.text import CountVectorizer, TfidfVectorizer

    return [TfidfVectorizer(lowercase=False), TfidfVectorizer(), TfidfVectorizer(sublinear_tf=True, norm="l1"),
            TfidfVectorizer(stop_words="english", use_idf=False), CountVectorizer(binary=True),
            CountVectorizer(lowercase=False)]


@pytest.mark.parametrize("vectorizer", _vectorizers(), ids=lambda v: repr(v)[:60])
def test_sparse_path_equals_vectorizing_the_strings(vectorizer):
    pipe = _pipeline(vectorizer)
    adapter = _adapter(pipe)
    doc = WordDocument.parse(DOC)
    fast = perturber(adapter, doc)
    slow = perturber(adapter, doc, allow_fast=False)
    assert (fast.path, slow.path) == ("sklearn-sparse", "strings")
    active = sample_masks(doc.n_words, 200, 3)
    expected = pipe.steps[0][1].transform(doc.texts(active))
    np.testing.assert_allclose(fast.features(active).toarray(), expected.toarray(), atol=1e-12)
    np.testing.assert_allclose(fast.predict(active, batch_size=64), slow.predict(active, batch_size=64), atol=1e-12)


def test_bigram_vectorizer_falls_back_to_strings_with_a_reason():
    from sklearn.feature_extraction.text import TfidfVectorizer

    adapter = _adapter(_pipeline(TfidfVectorizer(ngram_range=(1, 2))))
    chosen = perturber(adapter, WordDocument.parse(DOC))
    assert chosen.path == "strings" and "n-grams" in chosen.reason


# -- end to end against the lime package -----------------------------------------------------
def _lime_top(adapter, text, target, num_features, num_samples, seed):
    from lime.lime_text import LimeTextExplainer

    exp = LimeTextExplainer(class_names=list(adapter.class_names), random_state=seed).explain_instance(
        text, adapter.estimator.predict_proba, num_features=num_features, num_samples=num_samples, labels=(target,))
    return exp, dict(exp.as_list(label=target))


@pytest.mark.parametrize("fast", [True, False])
def test_toy_explanation_equals_lime_package(toy, tmp_store, fast):
    ours = explain_lime(toy, DOC, LimeParams(num_samples=600, num_features=6, seed=3, fast_path=fast), store=tmp_store)
    assert ours.path == ("sklearn-sparse" if fast else "strings")
    exp, theirs = _lime_top(toy, DOC, ours.target, 6, 600, 3)
    assert dict(ours.top()) == pytest.approx(theirs, abs=1e-9)
    assert ours.intercept == pytest.approx(exp.intercept[ours.target], abs=1e-9)
    assert ours.score == pytest.approx(exp.score, abs=1e-9)
    assert ours.target == ours.predicted == 0  # an atheist post
    assert {w for w, v in ours.top() if v > 0} & {"god", "reason", "science", "believe", "not"}


@pytest.mark.slow  # 35 s: ours and lime's LIME on 10 documents
def test_newsgroups_top6_agrees_with_lime_on_9_of_10_documents(tmp_store):
    from tests.conftest import require_dataset

    require_dataset("newsgroups")
    from core import scenarios

    adapter = scenarios.load_model("newsgroups", "logreg", "headers").adapter
    test = scenarios.load_data("newsgroups", "headers")["test"]
    same = 0
    for i in range(10):
        ours = explain_lime(adapter, test.x[i], LimeParams(num_samples=2000, num_features=6, seed=i), store=tmp_store)
        assert ours.path == "sklearn-sparse"
        _, theirs = _lime_top(adapter, test.x[i], ours.target, 6, 2000, i)
        same += {w for w, _ in ours.top()} == set(theirs)
    assert same >= 9


# -- behaviour --------------------------------------------------------------------------------
def test_seeded_reproducible_cached_and_target_choice(toy, tmp_store):
    params = LimeParams(num_samples=300, num_features=4, seed=1)
    a = explain_lime(toy, DOC, params, store=tmp_store)
    hits = tmp_store.hits
    b = explain_lime(toy, DOC, params, store=tmp_store)
    assert tmp_store.hits == hits + 1
    np.testing.assert_array_equal(a.weights, b.weights)
    other = explain_lime(toy, DOC, params, target=1, store=tmp_store)
    assert other.target == 1
    # Two classes: the weights toward class 1 are the negatives of those toward class 0.
    np.testing.assert_allclose(other.weights, -a.weights, atol=1e-12)
    c = explain_lime(toy, DOC, LimeParams(num_samples=300, num_features=4, seed=2), store=tmp_store)
    assert not np.array_equal(a.weights, c.weights)
    d = a.to_dict()
    assert set(d) >= {"words", "predicted_name", "intercept", "local_r2"} and len(d["words"]) == 4


@pytest.mark.parametrize("kwargs,message", [
    ({"num_samples": 1}, "num_samples"), ({"num_features": 0}, "num_features"),
    ({"feature_selection": "lasso"}, "feature_selection"), ({"kernel_width": 0}, "kernel_width"),
    ({"seed": -1}, "seed"), ({"batch_size": 0}, "batch_size"),
])
def test_param_validation(kwargs, message):
    with pytest.raises(ParameterError, match=message):
        LimeParams(**kwargs)


def test_bad_inputs_have_clear_errors(toy, tmp_store):
    with pytest.raises(InputShapeError, match="no words"):
        explain_lime(toy, "  ... !!! ", store=tmp_store)
    with pytest.raises(ParameterError, match="target"):
        explain_lime(toy, DOC, LimeParams(num_samples=50), target=5, store=tmp_store)
    from core.adapters.sklearn_adapter import SklearnAdapter
    from sklearn.linear_model import LogisticRegression

    tabular = SklearnAdapter(LogisticRegression().fit([[0.0], [1.0]], [0, 1]), name="t", class_names=("a", "b"),
                             input_kind="tabular")
    with pytest.raises(InputShapeError, match="text model"):
        explain_lime(tabular, DOC, store=tmp_store)


def test_single_word_document(toy, tmp_store):
    e = explain_lime(toy, "God", LimeParams(num_samples=50), store=tmp_store)
    assert e.words == ("God",) and e.selected.tolist() == [0]


# -- CLI ----------------------------------------------------------------------------------
def test_cli_lime_json(capsys):
    import json

    from tests.conftest import require_dataset

    require_dataset("newsgroups")
    from core.cli import main

    code = main(["lime", "newsgroups", "--model", "logreg", "--index", "1", "--num-samples", "800", "--seed", "2",
                 "--num-features", "6", "--json", "--quiet"])
    assert code == 0
    out = json.loads(capsys.readouterr().out)  # the common JSON of `explain` (tests/core/test_cli_explain.py)
    assert len(out["attributions"]) == 6 and out["predicted"] in ("atheism", "christian") and out["method"] == "lime"
    assert {"intercept", "local_r2", "probabilities"} <= set(out["details"]) and out["target"] == out["predicted"]
    assert 0 < out["details"]["local_r2"] <= 1 and out["details"]["path"] == "sklearn-sparse"
    weights = [abs(w["value"]) for w in out["attributions"]]
    assert weights == sorted(weights, reverse=True)


@pytest.mark.parametrize("argv,message", [
    (["lime", "digits", "--index", "0"], "text scenario"),
    (["lime", "newsgroups", "--index", "0", "--num-samples", "1"], "num_samples"),
    (["lime", "newsgroups", "--index", "0", "--model", "svm"], "svm"),
    (["lime", "newsgroups", "--index", "0", "--feature-selection", "lasso"], "feature_selection"),
])
def test_cli_lime_errors_exit_1(argv, message, capsys):
    from core.cli import main

    assert main(argv + ["--quiet"]) == 1
    assert message in capsys.readouterr().err


def test_cli_lime_index_out_of_range(capsys):
    from tests.conftest import require_dataset

    require_dataset("newsgroups")
    from core.cli import main

    assert main(["lime", "newsgroups", "--index", "99999", "--quiet"]) == 1
    assert "out of range" in capsys.readouterr().err
