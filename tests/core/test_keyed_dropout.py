"""Keyed dropout: MC-dropout masks keyed by (seed, pass, sample), so the batch size never changes a result."""

from __future__ import annotations

import copy
import threading

import numpy as np
import pytest

torch = pytest.importorskip("torch")
nn = torch.nn

from core.nets import image_cnn  # noqa: E402
from core.rng import exclusive_global_rng  # noqa: E402
from core.uncertainty.keyed import KeyedDropout, is_keyed, keyed_draws, sampling_copy  # noqa: E402
from core.uncertainty.members import mc_dropout_module, stochastic_passes  # noqa: E402


def to_tensor(a):
    return torch.from_numpy(np.asarray(a, dtype=np.float32))


@pytest.fixture(scope="module")
def cnn():
    torch.manual_seed(0)
    return image_cnn(8, 8, dropout=0.25).eval()


@pytest.fixture(scope="module")
def images():
    return np.random.RandomState(0).rand(37, 1, 8, 8).astype(np.float32)


def test_mc_dropout_gives_the_same_numbers_at_every_batch_size(cnn, images):
    module = mc_dropout_module(cnn)
    assert is_keyed(module)
    runs = [stochastic_passes(module, to_tensor, images, 5, seed=3, batch_size=b) for b in (1, 7, 16, 64)]
    for run in runs[1:]:
        np.testing.assert_allclose(run, runs[0], atol=1e-6)
    assert not np.allclose(runs[0][0], runs[0][1])  # the passes differ: the masks really sample
    # a sample's draws do not depend on its neighbours either: the rows of a subset are the subset's rows
    part = stochastic_passes(module, to_tensor, images[:10], 5, seed=3, batch_size=4)
    np.testing.assert_allclose(part, runs[0][:, :10], atol=1e-6)


def test_the_seed_decides_the_masks(cnn, images):
    module = mc_dropout_module(cnn)
    a = stochastic_passes(module, to_tensor, images, 4, seed=1, batch_size=8)
    b = stochastic_passes(module, to_tensor, images, 4, seed=1, batch_size=8)
    c = stochastic_passes(module, to_tensor, images, 4, seed=2, batch_size=8)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


def test_the_shared_model_is_untouched(cnn, images):
    before = cnn(to_tensor(images)).detach()
    module = mc_dropout_module(cnn)
    assert all(not isinstance(m, KeyedDropout) for m in cnn.modules())
    assert [type(m).__name__ for m in cnn.modules()].count("Dropout") == 2
    stochastic_passes(module, to_tensor, images, 3, seed=0, batch_size=8)
    torch.testing.assert_close(cnn(to_tensor(images)).detach(), before)


@pytest.mark.parametrize("p", [0.1, 0.5, 0.8])
def test_element_masks_keep_one_minus_p_and_rescale_like_torch(p):
    layer = KeyedDropout(p).train()
    x = torch.ones(400, 500)
    with keyed_draws(7):
        y = layer(x)
    kept = y > 0
    assert abs(kept.float().mean().item() - (1 - p)) < 0.01
    torch.testing.assert_close(y[kept], torch.full_like(y[kept], 1 / (1 - p)))
    reference = nn.Dropout(p).train()(x)  # torch's own: the same two values
    assert set(np.round(reference.unique().numpy(), 5)) == set(np.round(y.unique().numpy(), 5))


def test_neighbouring_elements_are_not_correlated():
    layer = KeyedDropout(0.5).train()
    with keyed_draws(0):
        keep = (layer(torch.ones(2000, 64)) > 0).float()
    # neighbouring columns and rows agree half the time (independent draws), not more or less
    assert abs((keep[:, 1:] == keep[:, :-1]).float().mean().item() - 0.5) < 0.01
    assert abs((keep[1:] == keep[:-1]).float().mean().item() - 0.5) < 0.01


def test_channel_dropout_drops_whole_channels():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.Dropout2d(0.5), nn.Flatten()).eval()
    module = sampling_copy(model)
    assert isinstance(module[1], KeyedDropout) and module[1].mode == "channel"
    x = torch.rand(50, 1, 6, 6)
    with keyed_draws(1):
        conv = module[0](x)
        y = module[1](conv)
    dropped = (y == 0).flatten(2).all(dim=2)  # (sample, channel) planes that are all zero
    torch.testing.assert_close(y[~dropped], conv[~dropped] * 2.0)
    assert 0.35 < dropped.float().mean().item() < 0.65


@pytest.mark.parametrize("mode, reference", [("alpha", nn.AlphaDropout), ("feature_alpha", nn.FeatureAlphaDropout)])
def test_alpha_dropout_takes_torchs_values_and_keeps_mean_and_variance(mode, reference):
    p = 0.2
    constant = torch.full((300, 8, 4, 4), 0.7)
    with keyed_draws(1):
        ours = KeyedDropout(p, mode).train()(constant)
    theirs = reference(p).train()(constant)
    assert set(np.round(ours.unique().numpy(), 5)) == set(np.round(theirs.unique().numpy(), 5))
    # on standard normal inputs, alpha dropout keeps mean 0 and variance 1, as torch's does
    z = torch.randn(2000, 16, 2, 2, generator=torch.Generator().manual_seed(0))
    with keyed_draws(2):
        out = KeyedDropout(p, mode).train()(z)
    assert abs(out.mean().item()) < 0.05 and abs(out.var().item() - 1.0) < 0.05


def test_outside_a_keyed_draw_it_behaves_like_torch_dropout():
    layer = KeyedDropout(0.5).train()
    torch.manual_seed(0)
    a = layer(torch.ones(100, 100))
    torch.manual_seed(0)
    b = nn.Dropout(0.5).train()(torch.ones(100, 100))
    torch.testing.assert_close(a, b)
    assert torch.equal(layer.eval()(torch.ones(3, 3)), torch.ones(3, 3))  # evaluation mode: the identity


def test_keyed_passes_do_not_wait_for_the_global_generator_lock(cnn, images):
    """Another session training a model holds the global generator; keyed MC dropout runs meanwhile."""
    module = mc_dropout_module(cnn)
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with exclusive_global_rng(0):
            held.set()
            release.wait(30)

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert held.wait(10)
        done: list[np.ndarray] = []
        worker = threading.Thread(target=lambda: done.append(
            stochastic_passes(module, to_tensor, images, 3, seed=0, batch_size=8)))
        worker.start()
        worker.join(30)
        assert done, "keyed MC dropout waited for the global generator lock"
        state = torch.get_rng_state()
        stochastic_passes(module, to_tensor, images, 3, seed=0, batch_size=8)
        assert torch.equal(torch.get_rng_state(), state)  # and never touched the global generator
    finally:
        release.set()
        holder.join()


def test_torchscript_dropout_keeps_its_own_draws():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 16), nn.Dropout(0.5), nn.Linear(16, 3)).eval()
    scripted = torch.jit.script(model)
    module = sampling_copy(scripted)
    assert not is_keyed(module)  # its dropout is compiled code: the batch size changes the masks
    x = np.random.RandomState(0).rand(20, 4).astype(np.float32)
    passes = stochastic_passes(module, to_tensor, x, 3, seed=0, batch_size=8)
    assert not np.allclose(passes[0], passes[1])
    with pytest.raises(ValueError, match="TorchScript"):
        sampling_copy(scripted, rate=0.1)


def test_bayes_passes_use_one_weight_sample_per_pass_at_any_batch_size():
    from core.uncertainty.bayes import bayes_cnn, set_sampling

    torch.manual_seed(0)
    sampler = set_sampling(copy.deepcopy(bayes_cnn(8, 8)), True)
    with torch.no_grad():
        for layer in sampler.modules():
            if hasattr(layer, "weight_rho"):
                layer.weight_rho.fill_(-1.0)  # wide posteriors, so the samples differ visibly
    assert is_keyed(sampler)
    x = np.random.RandomState(1).rand(12, 1, 8, 8).astype(np.float32)
    a = stochastic_passes(sampler, to_tensor, x, 4, seed=5, batch_size=1)
    b = stochastic_passes(sampler, to_tensor, x, 4, seed=5, batch_size=12)
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)  # float rounding of batched convolutions only
    assert not np.allclose(a[0], a[1], atol=1e-3)
    # one pass is one network: the same input twice in a batch gets the same output in that pass
    twice = np.concatenate([x[:1], x[:1]])
    c = stochastic_passes(sampler, to_tensor, twice, 2, seed=5, batch_size=2)
    np.testing.assert_allclose(c[:, 0], c[:, 1], rtol=1e-4, atol=1e-5)
