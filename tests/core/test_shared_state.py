"""State shared by the threads of one server process (one thread per user session).

Streamlit runs every session's script in a thread of the same process: torch's and numpy's global
generators and the cached model objects are shared by all of them. These tests run two "sessions"
as two threads and check that neither changes the other's numbers.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from core.rng import exclusive_global_rng, holds_global_rng  # noqa: E402


def _run_in_thread(fn) -> tuple[threading.Thread, list[BaseException]]:
    errors: list[BaseException] = []

    def target() -> None:
        try:
            fn()
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            errors.append(exc)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread, errors


class WatchedLock:
    """core.rng's re-entrant lock, which also records the threads that had to wait for it and sets ``moved``."""

    def __init__(self, moved: threading.Event) -> None:
        self._lock = threading.RLock()
        self.waited: set[int] = set()
        self.moved = moved

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        if self._lock.acquire(blocking=False):
            return True
        self.waited.add(threading.get_ident())
        self.moved.set()
        return self._lock.acquire(blocking, timeout)

    def release(self) -> None:
        self._lock.release()

    def __enter__(self) -> bool:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def test_a_seeded_block_is_exclusive_and_puts_the_generators_back(monkeypatch):
    import core.rng

    other_moved = threading.Event()  # the other session waits for the lock, or (without one) is done
    lock = WatchedLock(other_moved)
    monkeypatch.setattr(core.rng, "_NUMPY_LOCK", lock)  # the first lock a block of both generators takes
    torch.manual_seed(42)
    np.random.seed(42)
    expected_torch_after = torch.rand(4)
    expected_numpy_after = np.random.rand(4)
    torch.manual_seed(42)
    np.random.seed(42)

    entered, other_done = threading.Event(), threading.Event()
    seen: dict[str, object] = {}

    def other_session() -> None:
        seen["thread"] = threading.get_ident()
        assert entered.wait(30)
        with exclusive_global_rng(999):  # must wait until the first session's block is over
            seen["other"] = torch.rand(3)
        other_done.set()
        other_moved.set()

    thread, errors = _run_in_thread(other_session)
    with exclusive_global_rng(7):
        first = torch.rand(3)
        first_np = np.random.rand(2)
        entered.set()
        # The other session now tries to enter its block: go on once it is blocked on the lock (no sleep;
        # without the lock it never waits: it seeds and draws in the middle of this block, and finishes).
        assert other_moved.wait(30), "the other session neither waited for the lock nor finished"
        assert not other_done.is_set(), "another thread entered the block while this one held it"
        assert seen["thread"] in lock.waited
        second = torch.rand(3)
        second_np = np.random.rand(2)
    thread.join(30)
    assert not errors and other_done.is_set()

    torch.manual_seed(7)
    np.testing.assert_array_equal(torch.cat([first, second]).numpy(), torch.rand(6).numpy())
    np.random.seed(7)
    np.testing.assert_array_equal(np.concatenate([first_np, second_np]), np.random.rand(4))
    torch.manual_seed(999)
    np.testing.assert_array_equal(seen["other"].numpy(), torch.rand(3).numpy())
    # code outside the blocks continues from the state it had, as if nothing had been seeded
    torch.manual_seed(42)
    np.random.seed(42)
    with exclusive_global_rng(1):
        torch.rand(10)
    np.testing.assert_array_equal(torch.rand(4).numpy(), expected_torch_after.numpy())
    np.testing.assert_array_equal(np.random.rand(4), expected_numpy_after)


def test_the_decorator_is_reentrant_and_releases_on_errors():
    @holds_global_rng
    def inner() -> float:
        torch.manual_seed(3)
        return float(torch.rand(1))

    @holds_global_rng
    def outer() -> float:
        return inner()  # a seeded helper called from a seeded training: no deadlock

    @holds_global_rng
    def fails() -> None:
        raise ValueError("boom")

    assert outer() == inner()
    with pytest.raises(ValueError):
        fails()
    thread, errors = _run_in_thread(outer)  # the lock was released by the failing call
    thread.join(10)
    assert not thread.is_alive() and not errors


def test_torch_only_work_does_not_wait_for_a_numpy_only_block_in_another_session():
    """The UMAP warm-up holds numpy's generator for up to a minute (numba compiles): the trust page's layer
    randomisation (torch's generator only) in another session must go on meanwhile, and a second numpy user wait."""
    from core.trust.sanity import parameter_layers, randomized_module

    module = _tiny_cnn(0)
    holding, release = threading.Event(), threading.Event()

    def numpy_session() -> None:
        with exclusive_global_rng(5, torch=False):
            holding.set()
            assert release.wait(60)

    thread, errors = _run_in_thread(numpy_session)
    try:
        assert holding.wait(30)
        done = threading.Event()
        torch_thread, torch_errors = _run_in_thread(lambda: (randomized_module(module, parameter_layers(module)[:1], seed=1), done.set()))
        assert done.wait(60), "torch-only work waited for another session's numpy-only block"
        torch_thread.join(10)
        assert not torch_errors
        numpy_entered = threading.Event()

        def second_numpy_session() -> None:
            with exclusive_global_rng(torch=False):
                numpy_entered.set()

        numpy_thread, numpy_errors = _run_in_thread(second_numpy_session)
        assert not numpy_entered.wait(0.5), "a second numpy-only block entered while the first held the generator"
    finally:
        release.set()
    thread.join(30)
    assert numpy_entered.wait(30)  # and it enters once the first block is over
    numpy_thread.join(30)
    assert not errors and not numpy_errors


def test_numpy_asked_for_inside_a_torch_only_block_is_refused():
    """Locks are taken numpy first: the other order could deadlock, so it is an error, not a wait."""
    with exclusive_global_rng(numpy=False):
        with pytest.raises(RuntimeError, match="torch-only block"):
            with exclusive_global_rng(torch=False):
                pass
    with exclusive_global_rng(), exclusive_global_rng(torch=False):  # both at the outer block: fine
        pass


def _tiny_cnn(seed: int):
    from core import nets

    torch.manual_seed(seed)
    return nets.image_cnn(8, 8, widths=(4, 8), hidden=16)


def _train(initial, seed: int = 0):
    """Train a copy of ``initial`` (built beforehand: this exercises train_classifier's own seeding and dropout)."""
    import copy

    from core import nets

    rng = np.random.default_rng(0)
    x = rng.random((256, 1, 8, 8)).astype(np.float32)
    y = rng.integers(0, 10, 256)
    module = nets.train_classifier(copy.deepcopy(initial), x, y, epochs=3, batch_size=16, lr=1e-3, seed=seed,
                                   device="cpu")
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def test_mc_dropout_and_training_in_two_sessions_give_the_numbers_each_gives_alone():
    """MC dropout masks and a training's initialisation and dropout all draw from torch's global
    generator: without the lock, one session's seed and draws land in the other's computation."""
    from core.uncertainty.members import mc_dropout_module, stochastic_passes

    module = mc_dropout_module(_tiny_cnn(1))
    x = np.random.default_rng(1).random((64, 1, 8, 8)).astype(np.float32)
    to_tensor = lambda chunk: torch.as_tensor(np.asarray(chunk, dtype=np.float32))  # noqa: E731
    alone_passes = stochastic_passes(module, to_tensor, x, 20, batch_size=8, seed=5)
    initial = _tiny_cnn(0)
    # Both trainings run in a fresh thread: torch.set_num_threads (app.py's configure_server calls it when an
    # AppTest ran earlier in this process) leaves the thread that called it alone and applies to new threads,
    # so a training in the main thread and one in a new thread could run with different thread counts.
    alone: dict[str, dict] = {}
    thread, errors = _run_in_thread(lambda: alone.setdefault("weights", _train(initial)))
    thread.join(600)
    assert not thread.is_alive() and not errors, errors
    alone_weights = alone["weights"]

    trained: dict[str, dict] = {}
    thread, errors = _run_in_thread(lambda: trained.setdefault("weights", _train(initial)))
    together = [stochastic_passes(module, to_tensor, x, 20, batch_size=8, seed=5) for _ in range(3)]
    thread.join(600)  # the training may wait for the global generator's lock (another test's background thread)
    assert not thread.is_alive(), "the other session's training did not finish"
    assert not errors, errors
    for passes in together:
        np.testing.assert_array_equal(passes, alone_passes)
    for name, tensor in alone_weights.items():
        np.testing.assert_array_equal(trained["weights"][name].numpy(), tensor.numpy(), err_msg=name)


def test_gradient_x_embedding_ignores_other_sessions_passes_and_leaves_the_shared_weights_alone(tmp_path):
    """The text gradient hooks the shared module's embedding layer: another session's forward pass
    (in inference mode) must neither be recorded nor broken, and no parameter .grad is written."""
    from core.store import ArtifactStore
    from core.text.text_methods import explain_gradient_embedding

    adapter = _bag()
    texts = [f"god is love and reason number {i} says the church" for i in range(6)]
    alone = [explain_gradient_embedding(adapter, t, target=1, store=ArtifactStore(tmp_path / "alone")).weights
             for t in texts]

    stop = threading.Event()
    other_texts = ["atheism is reason"] * 8

    def other_session() -> None:
        while not stop.is_set():
            adapter.predict_proba(other_texts)

    thread, errors = _run_in_thread(other_session)
    try:
        together = [explain_gradient_embedding(adapter, t, target=1, store=ArtifactStore(tmp_path / "together")).weights
                    for t in texts for _ in range(3)]
    finally:
        stop.set()
        thread.join(30)
    assert not errors, f"the other session's forward pass failed: {errors!r}"
    for i, weights in enumerate(together):
        np.testing.assert_allclose(weights, alone[i // 3], atol=1e-7)
    assert all(p.grad is None for p in adapter.torch_module().parameters())


def _bag():
    from core import nets
    from core.adapters.torch_adapter import TorchAdapter
    from core.text.vocab import Vocabulary
    from tests.core.test_lime_text import ATHEISM, CHRISTIAN

    torch.manual_seed(0)
    vocab = Vocabulary.fit(ATHEISM + CHRISTIAN, min_df=1, max_length=12)
    module = nets.text_bag_of_embeddings(len(vocab), 2, dim=8, hidden=8)
    return TorchAdapter(module, name="bag", class_names=("atheism", "christian"), input_kind="text",
                        encode=vocab.encode, encoder_fingerprint=vocab.fingerprint, device="cpu")
