"""The Vision Transformer (``mnist``/``vit``) and attention rollout on its patches."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from core.adapters.torch_adapter import TorchAdapter  # noqa: E402
from core.attribution import explain_images, supported_methods  # noqa: E402


@pytest.fixture(scope="module")
def tiny_vit():
    """An untrained 2-block ViT on 14x14 images (7x7 patches: a 2x2 grid), weights drawn with a fixed seed."""
    from core import nets

    torch.manual_seed(0)
    module = nets.image_vit(height=14, width=14, channels=1, n_classes=3, patch=7, dim=16, depth=2, heads=2, mlp=32)
    return TorchAdapter(module, name="vit", class_names=("a", "b", "c"), input_kind="image")


def images(n=3):
    return np.random.default_rng(0).uniform(0, 1, size=(n, 1, 14, 14)).astype(np.float32)


def test_rollout_is_a_patch_map_equal_to_the_rollout_by_hand(tiny_vit, tmp_store):
    x = images()
    result = explain_images(tiny_vit, x, np.zeros(3, dtype=np.int64), "attention_rollout", store=tmp_store)
    maps = result.maps[:, 0]
    assert maps.shape == (3, 14, 14) and (maps >= 0).all()
    # one value per 7x7 patch
    blocks = maps.reshape(3, 2, 7, 2, 7)
    assert np.allclose(blocks, blocks[:, :, :1, :, :1])
    # by hand: each block's head-mean attention + identity, rows renormalised, multiplied up; [CLS] row over patches
    module = tiny_vit.torch_module()
    captured = []
    handles = [m.register_forward_hook(lambda _m, _i, o: captured.append(o.detach().numpy())) for m in module.attention_modules()]
    try:
        with torch.no_grad():
            module(torch.as_tensor(x))
    finally:
        for h in handles:
            h.remove()
    for i in range(3):
        joint = np.eye(5)
        for att in captured:
            a = 0.5 * att[i].mean(axis=0) + 0.5 * np.eye(5)
            joint = (a / a.sum(axis=1, keepdims=True)) @ joint
        np.testing.assert_allclose(blocks[i, :, 0, :, 0].ravel(), joint[0, 1:], rtol=1e-5)
    assert result.signed is False


def test_rollout_is_refused_on_a_model_without_attention(tmp_store):
    from core import nets

    cnn = TorchAdapter(nets.image_cnn(height=14, width=14, n_classes=3), name="cnn", class_names=("a", "b", "c"),
                       input_kind="image")
    reason = supported_methods(cnn)["attention_rollout"]
    assert reason == "the model has no attention layers (it is not a Vision Transformer)."


def test_every_gradient_method_runs_and_blocks_randomise_whole(tiny_vit, tmp_store):
    from core.trust.sanity import parameter_layers

    support = supported_methods(tiny_vit)
    for method in ("gradient", "smoothgrad", "integrated_gradients", "occlusion", "attention_rollout"):
        assert support[method] is None, (method, support[method])
        maps = explain_images(tiny_vit, images(2), np.array([0, 2]), method, store=tmp_store)
        assert np.isfinite(maps.maps).all()
    assert "chain of layers" in support["lrp"]
    assert parameter_layers(tiny_vit.torch_module()) == ["patch_embed", "blocks.0", "blocks.1", "norm", "head"]


@pytest.mark.slow  # trains the MNIST ViT on first use (85 s on 2 cores)
def test_cli_writes_the_patch_map_of_the_trained_vit(tmp_path):
    from tests.conftest import require_dataset
    from tests.core.test_cli_explain import run_cli

    require_dataset("mnist")
    out = tmp_path / "f.npz"
    done = run_cli("explain", "mnist", "--model", "vit", "--method", "attention_rollout", "--index", "0", "--out", str(out))
    assert done.returncode == 0, done.stderr
    saved = np.load(out, allow_pickle=False)
    heatmap = saved["heatmap"][0]
    grid = heatmap.reshape(4, 7, 4, 7)[:, 0, :, 0]
    assert np.allclose(heatmap, np.kron(grid, np.ones((7, 7))))  # 16 patches of 7x7
    assert grid[1:3, 1:3].mean() > grid[[0, 3]].mean()  # the digit sits in the middle patches, the border is blank
    assert str(saved["method"]) == "attention_rollout" and not bool(saved["signed"])
    listed = json.loads(run_cli("scenarios", "--json").stdout)
    rows = listed if isinstance(listed, list) else listed["scenarios"]
    assert "vit" in next(s for s in rows if s["name"] == "mnist")["models"]
