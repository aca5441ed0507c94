"""Settings widgets for each image attribution method: widget values -> the method's Params dataclass.

Widget keys are stable (``occ_window``, ``ig_steps`` ...) so a page state can be restored or
linked. Every widget's range is the one the Params dataclass accepts, so a value from the form is
always valid.
"""

from __future__ import annotations

from typing import Any


from core.attribution.gradcam import INTERPOLATIONS, GradCamParams, layer_label
from core.attribution.expected_gradients import ExpectedGradientsParams
from core.attribution.gradients import BASELINES, IG_RULES, GradientParams, IntegratedGradientsParams, NoParams, SmoothGradParams
from core.attribution.lrp import RULES as LRP_RULES
from core.attribution.lrp import LRPParams
from core.attribution.lime_image import LimeImageParams
from core.attribution.occlusion import FILLS, OcclusionParams

FILL_NAMES = {"zero": "black (zero)", "mean": "dataset mean", "blur": "blurred image"}


def method_params(method: str, image_shape: tuple[int, int, int], spatial_layers: list[str], default_layer: str | None,
                  container: Any, pre_activation: set[str] | frozenset[str] = frozenset()) -> Any:
    """Draw ``method``'s settings in ``container`` and return its Params.

    ``pre_activation``: spatial layers followed by an activation, labelled as such in Grad-CAM's layer picker.
    """
    c = container
    _channels, height, width = image_shape
    if method == "occlusion":
        window_default, stride_default = OcclusionParams().resolved(height, width)
        a, b, d = c.columns(3)
        window = a.number_input("Patch size (px)", 1, min(height, width), window_default, key="occ_window",
                                help="side of the square slid over the image")
        stride = b.number_input("Stride (px)", 1, int(window), min(stride_default, int(window)), key="occ_stride",
                                help="step between patch positions (at most the patch size, so every pixel is covered)")
        fill = d.selectbox("Patch fill", FILLS, key="occ_fill", format_func=FILL_NAMES.get,
                           help="what replaces the pixels under the patch")
        return OcclusionParams(window=int(window), stride=int(stride), fill=fill)
    if method == "lime":
        a, b, d = c.columns(3)
        segment = a.number_input("Superpixel size (px)", 1, min(height, width),
                                 LimeImageParams().resolved_segment(height, width), key="lime_segment",
                                 help="side of the squares LIME switches on and off")
        samples = b.select_slider("Samples", [100, 250, 500, 1000, 2000, 5000], 1000, key="lime_samples",
                                  help="perturbed images per explained image (lime_image's default 1000)")
        fill = d.selectbox("Switched-off squares show", FILLS, key="lime_fill", format_func=FILL_NAMES.get)
        return LimeImageParams(segment=int(segment), num_samples=int(samples), fill=fill)
    if method == "gradient":
        absolute = c.toggle("Absolute value", True, key="grad_abs", help="|gradient|, the saliency map of Simonyan et al.")
        return GradientParams(absolute=absolute)
    if method == "smoothgrad":
        a, b, d = c.columns(3)
        samples = a.slider("Noisy samples", 5, 200, 50, key="sg_samples")
        noise = b.slider("Noise level", 0.01, 0.5, 0.15, 0.01, key="sg_noise",
                         help="standard deviation as a fraction of the pixel range (the paper: 0.10-0.20)")
        absolute = d.toggle("Average |gradient|", True, key="sg_abs")
        return SmoothGradParams(samples=samples, noise_level=noise, absolute=absolute)
    if method == "integrated_gradients":
        a, b, d = c.columns(3)
        steps = a.slider("Steps", 2, 300, 50, key="ig_steps", help="points on the path from the baseline to the image")
        baseline = b.selectbox("Baseline", BASELINES, key="ig_baseline",
                               format_func={"black": "black image", "blurred": "blurred image",
                                            "noise": "uniform noise"}.get)
        rule = d.selectbox("Quadrature", IG_RULES, key="ig_rule")
        return IntegratedGradientsParams(steps=steps, baseline=baseline, rule=rule)
    if method == "expected_gradients":
        a, b = c.columns(2)
        samples = a.slider("Samples", 20, 1000, 200, 10, key="eg_samples",
                           help="(background image, path point) pairs per image (shap's nsamples)")
        background = b.select_slider("Background images", [10, 25, 50, 100, 250, 500, 1000], 100, key="eg_background",
                                     help="training images the baselines are drawn from; the base value is the model's "
                                          "mean output over them, so a larger background gives a steadier base value")
        return ExpectedGradientsParams(samples=samples, background_size=background)
    if method in ("grad_cam", "guided_grad_cam"):
        a, b = c.columns(2)
        index = spatial_layers.index(default_layer) if default_layer in spatial_layers else 0
        prefix = "cam" if method == "grad_cam" else "gcam"  # both may be columns: one widget key each
        layer = a.selectbox("Layer", spatial_layers, index=index, key=f"{prefix}_layer",
                            format_func=lambda name: layer_label(name, set(pre_activation)),
                            help="a layer with a spatial feature map; the default is the output of the last "
                                 "convolutional block, after its activation. Before the activation the weighted "
                                 "channels are often negative everywhere and the map comes out blank.")
        interpolation = b.selectbox("Upsampling", INTERPOLATIONS, key=f"{prefix}_interpolation")
        return GradCamParams(layer=layer, interpolation=interpolation)
    if method == "lrp":
        a, b = c.columns(2)
        rule = a.selectbox("Rule", LRP_RULES, key="lrp_rule",
                           format_func={"epsilon": "epsilon (LRP-ε)", "alpha_beta": "alpha-beta (LRP-αβ)"}.get)
        if rule == "epsilon":
            eps = b.select_slider("ε", [1e-9, 1e-6, 1e-3, 1e-2, 0.1, 0.25, 1.0], 1e-6, key="lrp_epsilon",
                                  help="absorbs weak or contradictory relevance: larger = sparser, less noisy maps")
            return LRPParams(rule="epsilon", epsilon=float(eps))
        alpha = b.select_slider("α (β = α - 1)", [1.0, 2.0, 3.0], 1.0, key="lrp_alpha",
                                help="weight of positive contributions; β = α - 1 keeps relevance conserved")
        return LRPParams(rule="alpha_beta", alpha=float(alpha), beta=float(alpha) - 1.0)
    c.caption("No settings.")
    return NoParams()
