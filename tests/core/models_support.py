"""Shared helpers for the model tests (not a test module)."""

from __future__ import annotations

from core import scenarios
from tests.conftest import require_dataset

# Every built-in model, spelled out so that a model silently dropped from core/scenarios.py
# fails test_every_expected_model_is_registered instead of just running fewer tests.
EXPECTED_MODELS = [
    ("digits", "cnn"), ("digits", "logreg"),
    ("mnist", "cnn"), ("mnist", "vit"),
    ("newsgroups", "forest"), ("newsgroups", "logreg"), ("newsgroups", "bag"), ("newsgroups", "minilm"),
    ("breast-cancer", "gboost"), ("breast-cancer", "logreg"), ("breast-cancer", "mlp"),
    ("titanic", "gboost"), ("titanic", "logreg"), ("titanic", "mlp"),
    ("adult", "gboost"), ("adult", "logreg"), ("adult", "mlp"),
]
MODEL_IDS = [f"{s}-{m}" for s, m in EXPECTED_MODELS]
N_SAMPLES = 30
# A pretrained transformer reads 128-token posts at 15-30 a second on one thread: its contract tests (every one a
# forward pass or more over the sample) take 20 posts of varied length, not 30 (minilm gets 13 of the first 20 right,
# enough for test_predict_proba_shape_and_simplex's "mostly right"; 6 of the first 12).
N_SAMPLES_TRANSFORMER = 20


def n_samples(scenario: str, model: str) -> int:
    """How many test samples the adapter contract tests use for this model."""
    return N_SAMPLES_TRANSFORMER if scenarios.get_spec(scenario).model(model).framework == "transformer" else N_SAMPLES


def load(scenario: str, model: str) -> scenarios.TrainedModel:
    """``scenarios.load_model`` after checking that the data is available offline."""
    require_dataset(scenarios.get_spec(scenario).dataset)
    return scenarios.load_model(scenario, model)


def holdout(scenario: str):
    return scenarios.load_data(scenario)["test"]


