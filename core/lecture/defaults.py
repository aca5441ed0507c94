"""What every page opens on: the one place pages, deep links and ``warm --all`` read their defaults from.

A method's own settings default to its params dataclass (``LimeParams()``, ``ShapParams()``, ...);
what is here is the rest of a page's default view: which methods, how many samples, which split.
``warm --all`` precomputes exactly these, and ``tests/pages/test_open_from_cache.py`` opens the pages
after a warm-up with computation disabled, so a page that drifts from this file fails a test.
"""

from __future__ import annotations

# Images page: the lecture's columns, on the first matching test images.
# Attention rollout joins where the model has attention (a Vision Transformer: "attention maps beside gradients").
IMAGE_METHODS = ("gradient", "smoothgrad", "guided_backprop", "integrated_gradients", "attention_rollout")
IMAGE_PICKS = 4
IMAGE_BATCH = 256
# Trust page (images): the methods whose sanity the lecture discusses.
TRUST_METHODS = ("gradient", "smoothgrad", "guided_backprop", "integrated_gradients", "grad_cam", "lrp")
# Text page: LIME with LimeParams() defaults, its stability over seeds and the deletion curve.
TEXT_STABILITY_SEEDS = 5
TEXT_DELETION_STEPS = 10
# A transformer on the CPU reads about 35 sequences of 128 tokens a second here (MiniLM-L6, 2 cores): LIME opens on
# 500 samples (about 15 s cold) instead of lime's 5,000 (2-3 minutes), and the 5-seed stability check waits for a
# click. The page says so; the full settings stay one click away.
SLOW_TEXT_LIME_SAMPLES = 500
# ... and the Shapley page's text SHAP opens on 300 evaluations instead of 1,000.
SLOW_TEXT_SHAP_EVALS = 300


def slow_text_model(adapter) -> bool:
    """True for a text model whose forward passes make lime's defaults take minutes (a transformer on the CPU)."""
    return adapter.info.extra.get("architecture") == "transformer" and str(adapter.info.device) == "cpu"


def text_form_context(adapter) -> dict:
    """What the text page's LIME form opens on for ``adapter`` (``LimeParams.form_defaults``)."""
    return {"lime_samples": SLOW_TEXT_LIME_SAMPLES} if slow_text_model(adapter) else {}


# Shapley page: tabular rows explained with ShapParams() defaults; the image section's expected gradients.
SHAP_ROWS = 150
SHAP_TARGET = "predicted"
SHAP_IMAGE_PICKS = (0, 1, 2)
SHAP_IMAGE_SAMPLES, SHAP_IMAGE_BACKGROUND = 200, 100
# Embeddings page: which points the map opens on (and the split a curated example jumps to). ``warm --all``
# computes both; the page opens on every split when the dataset is small, else on the test split (MNIST's
# 70,000 points took 36 s cold here, its 10,000 test points a few seconds; every split stays one click away).
EMBEDDING_SPLITS = ("all", "test")
EMBEDDING_ALL_SPLITS_UP_TO = 10_000


def embedding_split(n_samples: int, slow: bool = False) -> str:
    """The split the Embeddings map opens on for a dataset of ``n_samples`` in all its splits (the test split for a
    slow model: newsgroups' 1,796 posts took 194 s through MiniLM on one CPU thread, its 717 test posts 40 s)."""
    return "all" if n_samples <= EMBEDDING_ALL_SPLITS_UP_TO and not slow else "test"
# Uncertainty page: the FGSM stress set's step.
UNCERTAINTY_EPSILON = 0.1
# Calibration page: reliability-diagram bins.
CALIBRATION_BINS = 15
