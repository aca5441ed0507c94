"""What keeps a cold start cheap and honest (issue 19, item 4).

- The uncertainty page's default source needs no training (MC dropout where the model has dropout).
- MC dropout runs the layers before the first dropout once per batch, with the same numbers.
- Training estimates are measured (a few timed steps, or a recorded training time), said before
  the training starts, and train or store nothing themselves.
"""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch

from core import nets, scenarios

from core.lecture import curated
from core.uncertainty import members as member_lib
from core.uncertainty import sources
from core.uncertainty.keyed import sampling_copy


def test_default_source_needs_no_training_where_the_model_has_dropout():
    assert curated.default_uncertainty_source("digits", "cnn") == ("mc_dropout", 30)
    assert curated.default_uncertainty_source("mnist", "cnn") == ("mc_dropout", 30)
    assert curated.default_uncertainty_source("digits", "logreg") == ("bootstrap", 5)  # the page asks first


# -- MC dropout: the deterministic prefix --------------------------------------------------------
@pytest.fixture(scope="module")
def cnn():
    torch.manual_seed(0)
    return nets.image_cnn(8, 8, widths=(8, 16), hidden=32).eval()


def test_the_prefix_is_the_layers_before_the_first_dropout(cnn):
    module = sampling_copy(cnn)
    prefix, rest = member_lib.deterministic_prefix(module)
    assert [type(m).__name__ for m in prefix] == ["Standardize", "Conv2d", "ReLU", "Conv2d", "ReLU", "MaxPool2d"]
    assert type(rest[0]).__name__ == "KeyedDropout"
    assert member_lib.deterministic_prefix(cnn) == (None, cnn)  # nothing samples: nothing to split


def test_passes_with_the_prefix_equal_passes_through_the_whole_model(cnn, monkeypatch):
    module = sampling_copy(cnn)
    x = np.random.RandomState(0).rand(37, 1, 8, 8).astype(np.float32)
    to_tensor = lambda a: torch.as_tensor(np.asarray(a, dtype=np.float32))  # noqa: E731
    fast = member_lib.stochastic_passes(module, to_tensor, x, 6, seed=4, batch_size=16)
    monkeypatch.setattr(member_lib, "deterministic_prefix", lambda m: (None, m))
    whole = member_lib.stochastic_passes(module, to_tensor, x, 6, seed=4, batch_size=16)
    np.testing.assert_array_equal(fast, whole)
    assert np.ptp(fast, axis=0).max() > 0  # the passes differ: dropout samples


def test_the_prefix_stops_at_the_first_drawing_layer_and_needs_a_plain_sequential():
    from core.uncertainty.bayes import bayes_cnn, set_sampling

    sampler = set_sampling(bayes_cnn(8, 8, 1, 10, 0.0, 1.0, (4, 8), 16), True)
    prefix, _ = member_lib.deterministic_prefix(sampler)  # Bayes layers draw their weights from conv1 on
    assert [type(m).__name__ for m in prefix] == ["Standardize"]

    class Wrapped(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, x):
            return self.inner(x)

    wrapped = sampling_copy(Wrapped(nets.image_cnn(8, 8, widths=(4, 8), hidden=8)))
    assert member_lib.deterministic_prefix(wrapped) == (None, wrapped)


# -- estimates ----------------------------------------------------------------------------------
@pytest.mark.parametrize(("seconds", "text"), [(0.2, "about 1 s"), (3.4, "about 3 s"), (42, "about 40 s"),
                                               (76, "about 75 s"), (130, "about 2.2 min"), (180, "about 3 min"),
                                               (1500, "about 25 min")])
def test_about(seconds, text):
    assert scenarios.about_seconds(seconds) == text


def test_time_steps_scales_the_timed_steps_to_the_whole_training():
    calls = []

    def fit_rows(rows):  # 20 ms per batch of 10 rows
        calls.append(len(rows))
        time.sleep(0.02 * -(-len(rows) // 10))

    estimate = scenarios.time_steps(fit_rows, n=95, batch_size=10, epochs=3)
    assert calls == [10, 80]  # one warm-up batch, then PROBE_STEPS batches
    assert estimate.seconds == pytest.approx(3 * 10 * 0.02, rel=0.5)
    assert estimate.basis.startswith("3 epochs x 10 steps at ") and "timed on 8 steps" in estimate.basis


def test_scenario_estimates_train_nothing(tmp_store):
    for model in ("mlp", "gboost"):
        estimate = scenarios.estimate_training("breast-cancer", model)
        assert estimate.seconds > 0 and estimate.about.startswith("about ")
    assert "steps at" in scenarios.estimate_training("breast-cancer", "mlp").basis
    assert "scaled to every row" in scenarios.estimate_training("breast-cancer", "gboost").basis
    assert not scenarios.is_trained("breast-cancer", "mlp", store=tmp_store) and not tmp_store.entries()


def test_member_estimates_joint_probe_recorded_time_and_none_once_trained(tmp_store):
    # small torch members train together: a few steps of the stacked model are timed
    joint = member_lib.estimate_training("breast-cancer", "mlp", None, "deep", 3, overrides={"epochs": 2},
                                         store=tmp_store)
    assert joint.basis.startswith("3 members trained together: 2 epochs x ") and not tmp_store.entries()
    member_lib.ensemble_members("breast-cancer", "mlp", None, "deep", 2, overrides={"epochs": 2}, store=tmp_store)
    left = member_lib.estimate_training("breast-cancer", "mlp", None, "deep", 3, overrides={"epochs": 2},
                                        store=tmp_store)
    assert left.basis.startswith("1 member trained together")
    assert member_lib.estimate_training("breast-cancer", "mlp", None, "deep", 2, overrides={"epochs": 2},
                                        store=tmp_store) is None
    # scikit-learn members train one after the other: the scenario model's recorded training time, per member
    loaded = scenarios.load_model("breast-cancer", "gboost", store=tmp_store)
    bagging = member_lib.estimate_training("breast-cancer", "gboost", None, "bootstrap", 4, store=tmp_store)
    assert bagging.seconds == pytest.approx(4 * loaded.metrics["train_seconds"])
    assert "took to train here" in bagging.basis


def test_source_estimates(tmp_store):
    assert sources.estimate_source("breast-cancer", "mlp", None, "mc_dropout", 30, store=tmp_store).seconds > 0
    scenarios.load_model("breast-cancer", "mlp", store=tmp_store)
    assert sources.estimate_source("breast-cancer", "mlp", None, "mc_dropout", 30, store=tmp_store) is None
    bayes = sources.estimate_source("digits", "cnn", None, "bayes", 30, store=tmp_store)
    assert bayes.basis.startswith("Bayes by backprop: 40 epochs x ")
    autoencoder = sources.autoencoder_estimate("digits", None, store=tmp_store)
    assert autoencoder.basis.startswith("autoencoder: 60 epochs x ")
    assert not sources.autoencoder_ready("digits", None, store=tmp_store)
    assert not [p for p in tmp_store.entries() if "bayes" in p.name or "autoencoder" in p.name]
