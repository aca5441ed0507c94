"""Grad-CAM on a Vision Transformer's tokens: the [CLS] token dropped, the patch tokens laid out on the patch grid.

Oracles: Grad-CAM by hand with torch hooks (pytorch-grad-cam's recipe with its ViT ``reshape_transform``) and
captum's ``LayerGradCam`` on an identity probe that sees the tokens as an (n, dim, rows, cols) map. On the trained
``mnist``/``vit``: at the last block's output every map is blank (the head reads only [CLS]), at the default
layer (the tokens entering the last block's attention) they are not.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from core.adapters.torch_adapter import TorchAdapter  # noqa: E402
from core.attribution import explain_images, supported_methods  # noqa: E402
from core.attribution.gradcam import (  # noqa: E402
    GradCamParams,
    default_layer,
    layer_label,
    spatial_layers,
    token_layers,
)

SHAPE = (1, 14, 14)


def tiny_vit(seed: int = 0) -> TorchAdapter:
    """An untrained 2-block ViT on 14x14 images (7x7 patches: a 2x2 grid); the head sharpened so that scores differ."""
    from core import nets

    torch.manual_seed(seed)
    module = nets.image_vit(height=14, width=14, channels=1, n_classes=3, patch=7, dim=16, depth=2, heads=2, mlp=32)
    with torch.no_grad():
        module.head.weight.mul_(10)
    return TorchAdapter(module, name="vit", class_names=("a", "b", "c"), input_kind="image", device="cpu")


def images(n: int = 5, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0, 1, size=(n, *SHAPE)).astype(np.float32)


def by_hand(module, layer, x: np.ndarray, target: np.ndarray) -> np.ndarray:
    """pytorch-grad-cam's Grad-CAM at a token layer: forward hook on the activations, autograd grad of the target
    logit, its reshape_transform (patch tokens -> (n, dim, rows, cols)), channel weights = mean gradient, ReLU."""
    rows, cols = module.grid
    acts = []
    handle = layer.register_forward_hook(lambda _m, _i, out: acts.append(out))
    try:
        logits = module(torch.as_tensor(x))
    finally:
        handle.remove()
    score = logits[torch.arange(len(x)), torch.as_tensor(target)].sum()
    (grad,) = torch.autograd.grad(score, acts[0])

    def reshape_transform(t):
        out = t[:, 1:, :].reshape(t.size(0), rows, cols, t.size(2))
        return out.transpose(2, 3).transpose(1, 2)

    act, grad = reshape_transform(acts[0].detach()), reshape_transform(grad)
    weights = grad.mean(dim=(2, 3))
    return torch.relu((weights[:, :, None, None] * act).sum(dim=1)).numpy()


def test_token_layers_are_listed_with_what_they_are_and_the_default_enters_the_last_attention():
    adapter = tiny_vit()
    layers = spatial_layers(adapter, SHAPE)
    assert layers[:2] == ["normalize", "patch_embed"]  # the conv layers stay
    assert not any(name.endswith("attn.probs") for name in layers)  # attention maps are 4-d but no feature map
    assert default_layer(adapter, SHAPE) == "blocks.1.norm1"
    notes = token_layers(adapter, SHAPE)
    assert list(notes) == ["blocks.0.norm1", "blocks.0.norm2", "blocks.0.out", "blocks.1.norm1", "blocks.1.norm2",
                           "blocks.1.out", "norm"] == layers[2:]
    assert layer_label("blocks.1.norm1", set(), notes) == "blocks.1.norm1 (tokens entering block 2 of 2's attention)"
    assert layer_label("blocks.0.norm2", set(), notes) == "blocks.0.norm2 (tokens entering block 1 of 2's MLP)"
    assert layer_label("blocks.0.out", set(), notes) == "blocks.0.out (block 1 of 2's output tokens)"
    # Only [CLS] reaches the head, and after the last attention every step is per token: the last block's MLP input,
    # its output and the final norm say their maps are blank.
    blank = {name for name, note in notes.items() if "blank maps" in note}
    assert blank == {"blocks.1.norm2", "blocks.1.out", "norm"} and notes["norm"].startswith("tokens after the blocks; ")
    assert supported_methods(adapter)["grad_cam"] is None


@pytest.mark.parametrize("layer", [None, "blocks.0.out", "blocks.0.norm2", "blocks.0.attn.proj", "blocks.1.norm1"])
def test_token_grad_cam_equals_grad_cam_by_hand(layer, tmp_store):
    adapter = tiny_vit()
    module = adapter.torch_module()
    x, target = images(), np.array([0, 1, 2, 0, 1])
    result = explain_images(adapter, x, target, "grad_cam", GradCamParams(layer=layer), batch_size=3, store=tmp_store)
    name = result.params["layer"]
    assert name == (layer or "blocks.1.norm1")
    expected = by_hand(module, dict(module.named_modules())[name], x, target)
    assert result.extras["cam"].shape == (5, 2, 2)
    assert np.abs(expected).max() > 1e-3  # not a comparison of two blank maps
    np.testing.assert_allclose(result.extras["cam"], expected, rtol=1e-5, atol=1e-5)
    # upsampled like a conv layer's map: bilinear from the 2x2 patch grid to 14x14
    up = torch.nn.functional.interpolate(torch.as_tensor(expected)[:, None], size=(14, 14), mode="bilinear",
                                         align_corners=False).numpy()
    np.testing.assert_allclose(result.maps, up, rtol=1e-5, atol=1e-5)


def test_token_grad_cam_equals_captum_layer_grad_cam_on_a_reshaping_probe(tmp_store):
    """captum's LayerGradCam averages gradients over dims 2+, i.e. over the token width for (n, tokens, dim): not
    Grad-CAM. An identity probe that the hooked layer's patch tokens pass through as (n, dim, rows, cols) gives
    captum the map it expects, with the forward pass unchanged."""
    captum_attr = pytest.importorskip("captum.attr")
    adapter = tiny_vit(seed=3)
    module = adapter.torch_module()
    rows, cols = module.grid
    probe = torch.nn.Identity()

    def through_probe(_m, _i, out):
        n, _t, dim = out.shape
        grid = probe(out[:, 1:].transpose(1, 2).reshape(n, dim, rows, cols))
        return torch.cat([out[:, :1], grid.reshape(n, dim, rows * cols).transpose(1, 2)], dim=1)

    x, target = images(6, seed=4), np.array([0, 1, 2, 2, 1, 0])
    handle = module.blocks[1].norm1.register_forward_hook(through_probe)
    try:
        theirs = captum_attr.LayerGradCam(module, probe).attribute(torch.as_tensor(x), target=torch.as_tensor(target),
                                                                    relu_attributions=True)
    finally:
        handle.remove()
    ours = explain_images(adapter, x, target, "grad_cam", GradCamParams(interpolation="nearest"), store=tmp_store)
    assert ours.params["layer"] == "blocks.1.norm1"
    assert np.abs(theirs.detach().numpy()).max() > 1e-3
    np.testing.assert_allclose(ours.extras["cam"], theirs[:, 0].detach().numpy(), rtol=1e-5, atol=1e-5)


def test_the_last_blocks_output_gives_blank_maps_and_a_non_token_module_is_refused(tmp_store):
    from core.errors import ParameterError, UnknownNameError

    adapter = tiny_vit()
    x, target = images(), np.array([0, 1, 2, 0, 1])
    blank = explain_images(adapter, x, target, "grad_cam", GradCamParams(layer="blocks.1.out"), store=tmp_store)
    assert (blank.extras["cam"] == 0).all() and blank.degenerate.all()
    after_attention = explain_images(adapter, x, target, "grad_cam", GradCamParams(layer="blocks.1.attn.proj"),
                                     store=tmp_store)
    assert after_attention.degenerate.all()  # per-token steps after the last attention: no patch reaches [CLS]
    with pytest.raises(ParameterError, match="tokens"):
        explain_images(adapter, x, target, "grad_cam", GradCamParams(layer="blocks.1.attn.probs"), store=tmp_store)
    with pytest.raises(UnknownNameError):
        explain_images(adapter, x, target, "grad_cam", GradCamParams(layer="no.such.layer"), store=tmp_store)


def test_a_hugging_face_vit_wrapper_with_grid_defaults_to_its_last_layernorm_before(tmp_store):
    transformers = pytest.importorskip("transformers")

    class Wrapper(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            config = transformers.ViTConfig(image_size=14, patch_size=7, num_channels=1, hidden_size=16,
                                            num_hidden_layers=3, num_attention_heads=2, intermediate_size=32,
                                            num_labels=3)
            torch.manual_seed(0)
            self.model = transformers.ViTForImageClassification(config)
            self.grid = (2, 2)

        def forward(self, x):
            return self.model(pixel_values=x).logits

    adapter = TorchAdapter(Wrapper(), name="hf-vit", class_names=("a", "b", "c"), input_kind="image", device="cpu")
    # vit.encoder.layer[i] in transformers 4, vit.layers[i] in 5: the longest ModuleList either way
    layers = next(name for name, m in adapter.torch_module().named_modules() if isinstance(m, torch.nn.ModuleList))
    layer = f"{layers}.2.layernorm_before"
    assert default_layer(adapter, SHAPE) == layer
    notes = token_layers(adapter, SHAPE)
    assert notes[layer] == "tokens entering block 3 of 3's attention"
    assert "blank maps" in notes["model.vit.layernorm"]
    x, target = images(4), np.array([0, 1, 2, 0])
    result = explain_images(adapter, x, target, "grad_cam", store=tmp_store)
    module = adapter.torch_module()
    expected = by_hand(module, dict(module.named_modules())[layer], x, target)
    np.testing.assert_allclose(result.extras["cam"], expected, rtol=1e-5, atol=1e-5)


@pytest.mark.slow  # loads the trained MNIST ViT (trains it on first use: 85 s on 2 cores)
def test_trained_mnist_vit_blank_at_the_last_output_and_not_at_the_default():
    from tests.core.models_support import holdout, load

    adapter = load("mnist", "vit").adapter
    x = np.asarray(holdout("mnist").x[:50], dtype=np.float32)
    target = adapter.predict(x)
    assert default_layer(adapter, x.shape[1:]) == "blocks.3.norm1"
    last = explain_images(adapter, x, target, "grad_cam", GradCamParams(layer="blocks.3.out"))
    assert (last.extras["cam"] == 0).all() and last.degenerate.all()
    default = explain_images(adapter, x, target, "grad_cam")
    assert default.params["layer"] == "blocks.3.norm1" and default.extras["cam"].shape == (50, 4, 4)
    assert default.degenerate.sum() <= 2, f"{int(default.degenerate.sum())} of 50 default maps are blank"
    module = adapter.torch_module()
    np.testing.assert_allclose(default.extras["cam"], by_hand(module, module.blocks[3].norm1, x, target),
                               rtol=1e-5, atol=1e-5)
