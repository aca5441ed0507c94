"""What the pages show by default is rarely degenerate: every method x every built-in model.

Image methods on the first 200 test images of each built-in image model (100 for LIME and Expected
Gradients), text methods on the first 50 newsgroups test documents per model (both variants' default:
headers), each with the page's default settings and the predicted class as target. A method whose default output is blank for
more than 2 % of inputs shows users empty maps: wave 1's Grad-CAM at conv2 did so for 174 of 200
digits images.

``python -m tests.core.test_degenerate_share`` prints the table of shares.
"""

from __future__ import annotations

import numpy as np
import pytest

from core.trust.degenerate import degenerate_rows, is_degenerate
from tests.core.models_support import holdout, load

MAX_SHARE = 0.02
# Grad-CAM (and Guided Grad-CAM, which multiplies by the same map) at the default layer is blank where the
# class's gradient-weighted channels are negative everywhere, and how often depends on the trained weights, not on
# our code. MNIST's CNN, same code, data and recipe (2 epochs): seed 0 gave 2 of 200 blank maps trained on one
# machine's CPU and 9 on another's; seeds 1 and 2 gave 5 and 4; with 3 epochs, seeds 0-2 gave 2, 9 and 3
# (measured 2026-12-02). 2 % would fail at random with the CPU that trains the CNN; 6 % still fails wave 1's
# pre-activation default layer (conv2: 50-87 % blank), not every other layer (pool2 gave 2-12.5 %).
MAX_SHARE_BY_METHOD = {"grad_cam": 0.06, "guided_grad_cam": 0.06}
N_IMAGES = 200
# LIME and Expected Gradients draw hundreds of model calls per image (1,000 LIME samples; EG's baselines): on 200
# MNIST images they took 21 s and 11 s of the ViT's 42 s, 18 s and 8 s of the CNN's 33 s, 8.5 s and 3.5 s of the
# digits CNN's 14 s, all with a 0.0 % share (measured 2026-12-04). They are measured on the first 100 images, where
# the 2 % bound still allows 2 blank maps and fails at 3; every other method keeps 200.
N_IMAGES_BY_METHOD = {"lime": 100, "expected_gradients": 100}
N_DOCUMENTS = 50
IMAGE_MODELS = [("digits", "cnn"), ("digits", "logreg"), ("mnist", "cnn"), ("mnist", "vit")]
TEXT_MODELS = [("newsgroups", "forest"), ("newsgroups", "logreg"), ("newsgroups", "bag")]
# The text pages' defaults: LIME, leave-one-word-out and gradient x embedding. SHAP (partition) is one
# click away (it costs ~1,000 model calls a document): 0 % degenerate on all three models when
# measured (python -m tests.core.test_degenerate_share --all), left out of CI for its minutes.
TEXT_DEFAULTS = ("lime", "occlusion", "gradient_x_embedding")
TEXT_ALL = (*TEXT_DEFAULTS, "shap_partition")


def image_shares(scenario: str, model: str) -> dict[str, float]:
    """Method -> share of degenerate default maps on the first ``N_IMAGES`` test images (``N_IMAGES_BY_METHOD``
    for the sampling methods)."""
    from core import scenarios
    from core.attribution import explain_images, image_context, method_names, supported_methods

    adapter = load(scenario, model).adapter
    x = np.asarray(holdout(scenario).x[:N_IMAGES], dtype=np.float32)
    target = adapter.predict(x)
    context = image_context(scenarios.load_data(scenario)["train"])
    support = supported_methods(adapter)
    shares = {}
    for m in method_names():
        if support[m] is None:
            n = N_IMAGES_BY_METHOD.get(m, N_IMAGES)
            shares[m] = float(explain_images(adapter, x[:n], target[:n], m, context=context).degenerate.mean())
    return shares


def text_shares(scenario: str, model: str, methods: tuple[str, ...] = TEXT_DEFAULTS) -> dict[str, float]:
    """Method -> share of degenerate default word weights on the first ``N_DOCUMENTS`` test documents."""
    from core.text.lime_text import LimeParams
    from core.text.text_methods import explain_text, supported_methods

    adapter = load(scenario, model).adapter
    texts = [str(t) for t in holdout(scenario).x[:N_DOCUMENTS]]
    support = supported_methods(adapter)
    return {m: float(np.mean([is_degenerate(explain_text(adapter, t, m, LimeParams()).weights) for t in texts]))
            for m, why in support.items() if not why and m in methods}



@pytest.mark.slow  # 12 s (digits CNN) / 21 s (MNIST CNN) / 26 s (ViT): every method on 200 images, LIME and EG on 100
@pytest.mark.parametrize("scenario, model", IMAGE_MODELS, ids=[f"{s}-{m}" for s, m in IMAGE_MODELS])
def test_default_image_maps_are_rarely_degenerate(scenario, model):
    shares = image_shares(scenario, model)
    assert len(shares) >= 2
    too_many = {m: s for m, s in shares.items() if s > MAX_SHARE_BY_METHOD.get(m, MAX_SHARE)}
    assert not too_many, f"{scenario}/{model}: share of degenerate default maps {shares}"


@pytest.mark.slow  # 8-41 s per model: the text methods on 50 documents
@pytest.mark.parametrize("scenario, model", TEXT_MODELS, ids=[f"{s}-{m}" for s, m in TEXT_MODELS])
def test_default_word_weights_are_rarely_degenerate(scenario, model):
    shares = text_shares(scenario, model)
    assert len(shares) >= 2
    too_many = {m: s for m, s in shares.items() if s > MAX_SHARE}
    assert not too_many, f"{scenario}/{model}: share of degenerate default word weights {shares}"


def test_the_detector_sees_wave_1s_blank_grad_cam_maps():
    """The share test can fail: Grad-CAM at conv2 (before its ReLU), wave 1's default, is mostly blank on digits."""
    from core.attribution import explain_images
    from core.attribution.gradcam import GradCamParams

    adapter = load("digits", "cnn").adapter
    x = np.asarray(holdout("digits").x[:N_IMAGES], dtype=np.float32)
    maps = explain_images(adapter, x, adapter.predict(x), "grad_cam", GradCamParams(layer="conv2")).heatmap()
    assert degenerate_rows(maps).mean() > 0.5


if __name__ == "__main__":  # the table for the closing note
    import sys
    import time
    from functools import partial

    text = partial(text_shares, methods=TEXT_ALL if "--all" in sys.argv else TEXT_DEFAULTS)
    for kind, models, shares in (("image", IMAGE_MODELS, image_shares), ("text", TEXT_MODELS, text)):
        for scenario, model in models:
            started = time.perf_counter()
            found = shares(scenario, model)
            cells = ", ".join(f"{m} {100 * s:.1f} %" for m, s in found.items())
            print(f"{kind} {scenario}/{model} ({time.perf_counter() - started:.0f} s): {cells}", flush=True)
