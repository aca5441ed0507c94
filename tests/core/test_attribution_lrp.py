"""Layer-wise relevance propagation: captum's LRP as oracle, analytic cases, conservation, refusals."""

from __future__ import annotations

import copy
from collections import OrderedDict

import numpy as np
import pytest
import torch
from torch import nn

from core.adapters.torch_adapter import TorchAdapter
from core.attribution import lrp as lrp_module
from core.attribution.base import METHODS
from core.attribution.lrp import LRPParams, UnsupportedModelError, lrp_unsupported
from core.errors import ParameterError
from core.nets import Standardize, image_cnn

METHOD = METHODS["lrp"]  # registered by importing core.attribution.lrp


def adapter_of(module: nn.Module, k: int = 10) -> TorchAdapter:
    return TorchAdapter(module, name="t", class_names=tuple("0123456789"[:k]), input_kind="image", device="cpu")


def run(adapter: TorchAdapter, x: np.ndarray, target: np.ndarray, batch_size: int = 64, **params):
    return METHOD.run(adapter, x, target, LRPParams(**params), batch_size=batch_size)


def rel_diff(ours: np.ndarray, theirs: np.ndarray) -> float:
    return float(np.abs(ours - theirs).max() / np.abs(theirs).max())


def images(n: int, shape=(1, 8, 8), seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0, 1, size=(n, *shape)).astype(np.float32)


def cnn(seed: int = 0) -> nn.Sequential:
    torch.manual_seed(seed)
    return image_cnn(8, 8, widths=(4, 8), hidden=16).eval()


def captum_lrp(module: nn.Module, x: np.ndarray, target: np.ndarray, rules: dict | None = None) -> np.ndarray:
    """captum's LRP on a deep copy (captum attaches rules and hooks to the model it is given)."""
    from captum.attr import LRP
    from captum.attr._utils.lrp_rules import EpsilonRule, IdentityRule

    model = copy.deepcopy(module)
    named = dict(model.named_modules())
    for sub in named.values():
        if isinstance(sub, Standardize):
            sub.rule = IdentityRule()
        elif isinstance(sub, nn.Flatten):
            # captum's IdentityRule hands the output's relevance to the input unchanged, which
            # fails on a reshape ("hook has changed the size"); the epsilon rule on a reshape is
            # a * R / (a + eps sign a), the identity up to eps = 1e-9.
            sub.rule = EpsilonRule(1e-9)
    for name, rule in (rules or {}).items():
        named[name].rule = rule
    with pytest.warns(UserWarning, match="require gradients"):
        out = LRP(model).attribute(torch.as_tensor(x), target=torch.as_tensor(target))
    return out.detach().numpy()


def no_hooks(module: nn.Module) -> bool:
    return all(not m._forward_hooks and not m._backward_hooks and not m._forward_pre_hooks
               for m in module.modules())


def same_state(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# -- oracle: captum ------------------------------------------------------------------------------


def test_epsilon_rule_matches_captum_on_the_scenario_cnn():
    module = cnn()
    x, target = images(6), np.arange(6)
    ours = run(adapter_of(module), x, target, rule="epsilon", epsilon=1e-9)
    theirs = captum_lrp(module, x, target)
    assert ours.maps.shape == x.shape and ours.maps.dtype == np.float32
    assert rel_diff(ours.maps, theirs) <= 1e-5
    with torch.no_grad():
        scores = module(torch.as_tensor(x)).numpy()[np.arange(6), target]
    np.testing.assert_allclose(ours.extras["output"], scores, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(ours.extras["relevance_sum"], ours.maps.reshape(6, -1).sum(axis=1), rtol=1e-5)


def test_alpha1_beta0_matches_captum_with_non_negative_inputs_and_biases():
    # captum's Alpha1_Beta0_Rule clamps the weights to >= 0 and keeps the whole bias: that is our
    # z+ = W+ a+ + W- a- + b+ when every layer input is >= 0 (pixels in [0, 1], Standardize with
    # mean 0 and std 1, ReLU outputs) and every bias is >= 0. With negative biases captum puts
    # b- in z+'s denominator too, and we (Bach et al.) do not: those maps differ by design.
    module = cnn(1)
    with torch.no_grad():
        for sub in module.modules():
            if getattr(sub, "bias", None) is not None:
                sub.bias.abs_()
    x, target = images(6, seed=1), np.arange(6)
    from captum.attr._utils.lrp_rules import Alpha1_Beta0_Rule

    ours = run(adapter_of(module), x, target, rule="alpha_beta", alpha=1.0, beta=0.0, epsilon=1e-9)
    theirs = captum_lrp(module, x, target, {name: Alpha1_Beta0_Rule() for name in ("conv1", "conv2", "fc1", "fc2")})
    assert rel_diff(ours.maps, theirs) <= 1e-5


def test_epsilon_rule_matches_captum_through_batchnorm_and_average_pooling():
    torch.manual_seed(2)
    module = nn.Sequential(OrderedDict([
        ("conv1", nn.Conv2d(1, 3, 3, padding=1)), ("bn", nn.BatchNorm2d(3)), ("relu1", nn.ReLU()),
        ("pool", nn.AvgPool2d(2)), ("conv2", nn.Conv2d(3, 4, 3)), ("relu2", nn.ReLU()),
        ("gap", nn.AdaptiveAvgPool2d(1)), ("flatten", nn.Flatten()), ("fc", nn.Linear(4, 3)),
    ]))
    with torch.no_grad():
        module.bn.running_mean.uniform_(-0.5, 0.5)
        module.bn.running_var.uniform_(0.5, 2.0)
        module.bn.weight.uniform_(0.5, 1.5)
    module.eval()
    x, target = images(4, seed=2), np.array([0, 1, 2, 0])
    ours = run(adapter_of(module, 3), x, target, epsilon=1e-9)
    assert rel_diff(ours.maps, captum_lrp(module, x, target)) <= 1e-5


# -- analytic cases and properties -----------------------------------------------------------


def linear_model(bias: bool = False, seed: int = 3) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(16, 2, bias=bias)).eval()


def test_single_linear_layer_gives_weight_times_input_and_conserves():
    module = linear_model()
    x, target = images(5, (1, 4, 4), seed=3), np.array([0, 1, 0, 1, 1])
    result = run(adapter_of(module, 2), x, target, epsilon=1e-9)
    weight = module[1].weight.detach().numpy()
    expected = weight[target] * x.reshape(5, -1)
    np.testing.assert_allclose(result.maps.reshape(5, -1), expected, rtol=1e-5, atol=1e-6)
    # ... which is gradient x input, and sums to the output (no bias absorbs anything).
    inputs = torch.as_tensor(x).requires_grad_(True)
    scores = module(inputs)[torch.arange(5), torch.as_tensor(target)]
    (grads,) = torch.autograd.grad(scores.sum(), inputs)
    np.testing.assert_allclose(result.maps, (grads * inputs).detach().numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(result.extras["relevance_sum"], result.extras["output"], rtol=1e-5)


def test_alpha_beta_on_one_linear_layer_matches_the_formula():
    # Negative inputs and a bias of both signs exercise every term of z+ and z-.
    module = linear_model(bias=True, seed=4)
    with torch.no_grad():
        module[1].bias.copy_(torch.tensor([0.3, -0.4]))
    x = np.random.default_rng(4).normal(size=(3, 1, 4, 4)).astype(np.float32)
    target = np.array([0, 1, 1])
    alpha, beta = 2.0, 1.0
    result = run(adapter_of(module, 2), x, target, rule="alpha_beta", alpha=alpha, beta=beta, epsilon=1e-9)
    w = module[1].weight.detach().double().numpy()
    b = module[1].bias.detach().double().numpy()
    for i in range(3):
        a, c = x[i].reshape(-1).astype(np.float64), target[i]
        terms = w[c] * a
        pos, neg = terms.clip(min=0), terms.clip(max=0)
        score = terms.sum() + b[c]
        expected = score * (alpha * pos / (pos.sum() + max(b[c], 0)) - beta * neg / (neg.sum() + min(b[c], 0)))
        np.testing.assert_allclose(result.maps[i].reshape(-1), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("params", [dict(rule="epsilon", epsilon=1e-9),
                                    dict(rule="alpha_beta", alpha=1.0, beta=0.0, epsilon=1e-9)])
def test_relevance_is_conserved_without_biases(params):
    # Standardize with mean 0.5 makes the first convolution's inputs negative as well as positive.
    # alpha=1, beta=0 conserves a positive score (a neuron with no positive contribution has
    # z <= 0, so its ReLU output and relevance are 0); with beta > 0, neurons whose contributions
    # all share one sign hand on alpha R or -beta R, and the sum drifts (see the module docstring).
    torch.manual_seed(5)
    module = image_cnn(8, 8, widths=(4, 8), hidden=16, mean=0.5, std=0.25)
    with torch.no_grad():
        for sub in module.modules():
            if getattr(sub, "bias", None) is not None:
                sub.bias.zero_()
    x = images(4, seed=5)
    with torch.no_grad():
        target = module.eval()(torch.as_tensor(x)).argmax(1).numpy()
    result = run(adapter_of(module), x, target, **params)
    assert np.all(result.extras["output"] > 0)
    np.testing.assert_allclose(result.extras["relevance_sum"], result.extras["output"], rtol=1e-4)


def test_ignored_pixels_get_exactly_zero_relevance():
    module = linear_model(bias=True, seed=6)
    with torch.no_grad():
        module[1].weight[:, 8:] = 0.0  # the bottom two rows of the 4x4 image
    x, target = images(4, (1, 4, 4), seed=6), np.array([0, 1, 0, 1])
    for params in (dict(rule="epsilon"), dict(rule="alpha_beta", alpha=2.0, beta=1.0)):
        maps = run(adapter_of(module, 2), x, target, **params).maps.reshape(4, -1)
        assert np.all(maps[:, 8:] == 0.0)
        assert np.all(np.abs(maps[:, :8]).sum(axis=1) > 0)


def test_nested_sequentials_are_flattened():
    flat = cnn(7)
    layers = list(flat.named_children())
    nested = nn.Sequential(OrderedDict([
        ("features", nn.Sequential(OrderedDict(layers[:6]))), ("head", nn.Sequential(OrderedDict(layers[6:]))),
    ]))
    x, target = images(3, seed=7), np.array([0, 5, 9])
    np.testing.assert_array_equal(run(adapter_of(flat), x, target).maps, run(adapter_of(nested), x, target).maps)


def test_batch_size_does_not_change_the_result():
    module = cnn(8)
    x, target = images(7, seed=8), np.array([0, 1, 2, 3, 4, 5, 6])
    for params in (dict(rule="epsilon"), dict(rule="alpha_beta", alpha=2.0, beta=1.0)):
        one = run(adapter_of(module), x, target, batch_size=1, **params)
        many = run(adapter_of(module), x, target, batch_size=64, **params)
        np.testing.assert_allclose(one.maps, many.maps, rtol=1e-6, atol=1e-6 * np.abs(many.maps).max())
        np.testing.assert_allclose(one.extras["output"], many.extras["output"], rtol=1e-6)


# -- the shared module is left alone ----------------------------------------------------------


def test_module_is_left_unchanged_after_success_and_failure():
    module = cnn(9)
    adapter = adapter_of(module)
    before = copy.deepcopy(module.state_dict())
    run(adapter, images(3, seed=9), np.array([1, 2, 3]), rule="alpha_beta", alpha=2.0, beta=1.0)
    assert no_hooks(module) and same_state(before, module.state_dict())
    assert all(p.grad is None for p in module.parameters())
    with pytest.raises(RuntimeError):  # two channels for a one-channel convolution: fails mid-forward
        run(adapter, images(2, (2, 8, 8)), np.array([0, 1]))
    assert no_hooks(module) and same_state(before, module.state_dict())


def test_batchnorm_statistics_are_not_updated_even_in_training_mode():
    torch.manual_seed(10)
    module = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.ReLU(), nn.Flatten(), nn.Linear(72, 2))
    adapter = adapter_of(module, 2)
    module.train()  # someone else's doing; LRP must still neither use nor update batch statistics
    before = copy.deepcopy(module.state_dict())
    x, target = images(4, seed=10), np.array([0, 1, 0, 1])
    trained_mode = run(adapter, x, target)
    assert same_state(before, module.state_dict())
    module.eval()
    np.testing.assert_array_equal(trained_mode.maps, run(adapter, x, target).maps)


# -- refusals -----------------------------------------------------------------------------------


def test_unsupported_layer_is_named():
    module = nn.Sequential(OrderedDict([
        ("flatten", nn.Flatten()), ("fc1", nn.Linear(16, 8)), ("act", nn.GELU()), ("fc2", nn.Linear(8, 2)),
    ]))
    adapter = adapter_of(module, 2)
    reason = lrp_unsupported(adapter)
    assert reason is not None and "GELU" in reason and "'act'" in reason
    with pytest.raises(UnsupportedModelError, match=r"'act' \(GELU\)") as info:
        run(adapter, images(2, (1, 4, 4)), np.array([0, 1]))
    assert info.value.hint and "Integrated Gradients" in info.value.hint
    assert no_hooks(module)


def test_non_sequential_model_gets_a_clear_reason():
    class Residual(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(16, 2)

        def forward(self, x):
            return self.fc(x.flatten(1)) + x.flatten(1)[:, :2]

    adapter = adapter_of(Residual(), 2)
    reason = lrp_unsupported(adapter)
    assert reason is not None and "Residual" in reason and "Sequential" in reason
    with pytest.raises(UnsupportedModelError, match="Residual"):
        run(adapter, images(2, (1, 4, 4)), np.array([0, 1]))
    # A block with its own forward pass inside a Sequential is refused by name as well.
    wrapped = nn.Sequential(OrderedDict([("block", Residual())]))
    assert "'block' (Residual)" in lrp_unsupported(adapter_of(wrapped, 2))


def test_supported_models_have_no_reason():
    assert lrp_unsupported(adapter_of(cnn())) is None
    assert METHOD.unsupported is lrp_unsupported
    assert (METHOD.title, METHOD.output, METHOD.needs_gradients, METHOD.signed(LRPParams())) == ("LRP", "logit", True, True)


@pytest.mark.parametrize("kwargs, name", [
    (dict(alpha=2.0, beta=0.0), "alpha"),
    (dict(rule="foo"), "rule"),
    (dict(epsilon=-1.0), "epsilon"),
    (dict(epsilon=float("nan")), "epsilon"),
    (dict(alpha=0.0, beta=-1.0), "beta"),
])
def test_bad_parameters_are_named(kwargs, name):
    with pytest.raises(ParameterError, match=repr(name)) as info:
        LRPParams(**kwargs)
    if name == "alpha":
        assert "alpha - beta = 1" in str(info.value)


def test_module_does_not_import_captum():
    import ast
    import inspect

    tree = ast.parse(inspect.getsource(lrp_module))
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
    assert not any(name.split(".")[0] == "captum" for name in imported)


def batchnorm_model(seed: int = 5) -> nn.Sequential:
    torch.manual_seed(seed)
    module = nn.Sequential(OrderedDict([
        ("normalize", Standardize(0.3, 0.4)), ("conv", nn.Conv2d(1, 4, 3, padding=1)), ("bn", nn.BatchNorm2d(4)),
        ("relu", nn.ReLU()), ("pool", nn.MaxPool2d(2)), ("flatten", nn.Flatten()), ("drop", nn.Dropout(0.5)),
        ("fc", nn.Linear(4 * 4 * 4, 10)),
    ]))
    module.bn.running_mean.uniform_(-0.1, 0.1)
    module.bn.running_var.uniform_(0.5, 2.0)
    return module.eval()


@pytest.mark.parametrize("make", [cnn, batchnorm_model])
@pytest.mark.parametrize("eps", [0.0, 1e-9, 1e-6, 0.25])
def test_one_pass_epsilon_rule_equals_the_layer_by_layer_pass(make, eps):
    """The epsilon rule runs as one modified backward pass; the layer-by-layer relevance pass (kept
    for alpha-beta) is the reference it must reproduce."""
    module = make()
    chain = lrp_module.lrp_chain(module)
    assert lrp_module._fast_epsilon_ok(chain)
    x = torch.as_tensor(images(6))
    target = torch.as_tensor([0, 1, 2, 3, 4, 5])
    fast, fast_score = lrp_module._propagate_epsilon(torch, chain, x, target, eps)
    slow, slow_score = lrp_module._propagate(torch, chain, x, target, LRPParams(rule="epsilon", epsilon=eps))
    torch.testing.assert_close(fast_score, slow_score)
    assert rel_diff(fast.numpy(), slow.numpy()) < 1e-5
    assert np.abs(fast.numpy()).max() > 1e-4
