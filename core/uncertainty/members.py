"""Where the members come from: deep ensembles, bootstrap ensembles / bagging, MC dropout.

- ``deep``: K copies of the scenario's recipe that differ only in their seed (weight
  initialisation, batch order, dropout masks).
- ``bootstrap``: K copies, member i trained (seed i) on a resample of the training split drawn
  with replacement. For scikit-learn models this is bagging.
- ``mc_dropout``: one torch model, T forward passes with its dropout layers left on (batch norm
  and everything else in inference mode).

Members are trained once and kept in the ArtifactStore (``TRUSTLENS_MODEL_CACHE_DIR`` when set, see
:func:`core.store.model_store`), keyed by the training data's fingerprint, the recipe and its
parameters, the member's seed and resample, the training code's source and the library versions.
"""

from __future__ import annotations

import copy
import dataclasses
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from core import scenarios
from core.adapters.base import ModelAdapter
from core.bundle import DataBundle
from core.errors import ParameterError, check_int, unknown_name
from core.progress import ProgressCallback, report, subrange
from core.rng import exclusive_global_rng, holds_global_rng
from core.store import ArtifactStore, cache_key, model_store, source_hash

ENSEMBLE_KINDS = ("deep", "bootstrap")
MEMBER_VERSION = 2  # bump when member training changes in a way the key does not capture
BOOTSTRAP_OFFSET = 1000  # resample seeds live apart from weight seeds
TRAINING_CODE = (*scenarios.TRAINING_CODE, "core/uncertainty/members.py")  # source hashed into member keys


@dataclass(frozen=True)
class Member:
    """One trained ensemble member."""

    index: int
    seed: int
    bootstrap: bool
    adapter: ModelAdapter
    train_seconds: float
    test_accuracy: float
    trained_now: bool


def supported_sources(scenario: str, model: str | None = None) -> dict[str, str | None]:
    """Every uncertainty source -> None when it applies to the scenario's model, else the reason."""
    spec = scenarios.get_spec(scenario)
    mspec = spec.model(model or spec.default_model)
    torch_model = mspec.framework == "torch"
    cnn = mspec.recipe == "image_cnn"
    deep = None if torch_model else ("scikit-learn models with a fixed solver give identical members for every seed; "
                                     "use bagging (bootstrap) instead")
    if mspec.framework == "transformer":
        deep = ("the pretrained encoder is frozen and its logistic-regression head has a fixed solver: every seed "
                "gives the same member; use bagging (bootstrap) or MC dropout instead")
    return {
        "deep": deep,
        "bootstrap": None,
        "mc_dropout": None if mspec.framework in ("torch", "transformer") else
        "MC dropout needs a torch model with dropout layers",
        "bayes": None if cnn else "the Bayes-by-backprop network is a variational version of the image CNN recipe",
    }


def _member_spec(mspec: scenarios.ModelSpec, seed: int, overrides: dict[str, Any] | None) -> scenarios.ModelSpec:
    params = {**mspec.params, **(overrides or {})}
    if "seed" in params or mspec.framework == "torch":
        params["seed"] = seed
    return dataclasses.replace(mspec, params=params)


_lock = threading.Lock()
_train_lock = threading.Lock()
_memo: dict[tuple[Any, ...], Member] = {}


def member_key(scenario: str, model: str | None, variant: str | None, kind: str, index: int,
               overrides: dict[str, Any] | None = None) -> str:
    spec = scenarios.get_spec(scenario)
    variant = spec.variant(variant)
    mspec = spec.model(model or spec.default_model)
    train = scenarios.load_data(scenario, variant)["train"]
    member = _member_spec(mspec, index, overrides)
    return cache_key(
        op="uncertainty_member", data_fingerprint=train.fingerprint,
        params={"scenario": spec.name, "variant": variant, "model": mspec.name, "recipe": mspec.recipe,
                "recipe_version": scenarios.RECIPE_VERSION, "member_version": MEMBER_VERSION, "kind": kind,
                "index": index, "bootstrap": kind == "bootstrap", "joint": trains_jointly(spec, mspec, train),
                **member.params, "training_code": source_hash(*TRAINING_CODE)},
        libraries=scenarios.TRAIN_LIBRARIES,
    )


def _check_kind(kind: str) -> str:
    if kind not in ENSEMBLE_KINDS:
        raise unknown_name("ensemble kind", kind, ENSEMBLE_KINDS)
    return kind


def members_trained(scenario: str, model: str | None, variant: str | None, kind: str, k: int,
                    overrides: dict[str, Any] | None = None, store: ArtifactStore | None = None) -> bool:
    """True when loading ``k`` members will not train any (all are on disk)."""
    store = model_store(store)
    _check_kind(kind)
    return all(store.contains(member_key(scenario, model, variant, kind, i, overrides)) for i in range(k))


def ensemble_members(
    scenario: str,
    model: str | None = None,
    variant: str | None = None,
    kind: str = "deep",
    k: int = 5,
    *,
    overrides: dict[str, Any] | None = None,
    progress: ProgressCallback | None = None,
    store: ArtifactStore | None = None,
) -> list[Member]:
    """Train (first use) or load ``k`` members of a built-in scenario's model.

    Small torch members missing from the store are trained together, as one stacked model
    (``torch.func.vmap`` over their parameters, each member with its own seed, batch order, dropout
    masks and Adam state, which is elementwise): one step updates every member, so the per-step
    overhead of a small network is paid once instead of K times (see :func:`trains_jointly`).

    Parameters
    ----------
    kind : {"deep", "bootstrap"}
        Seeds only, or seeds and bootstrap resamples of the training split (bagging).
    k : int
        Members, >= 1 (>= 2 for any disagreement to show).
    overrides : dict, optional
        Recipe parameters to change for every member (tests train tiny members: ``{"epochs": 2}``).
    """
    k = check_int("k", k, "ensemble_members")
    _check_kind(kind)
    spec = scenarios.get_spec(scenario)
    variant = spec.variant(variant)
    mspec = spec.model(model or spec.default_model)
    if kind == "deep" and mspec.framework != "torch":  # scikit-learn, or a frozen transformer's fixed-solver head
        raise ParameterError(f"A deep ensemble of {scenario}/{mspec.name} would hold {k} identical members: "
                             "a scikit-learn model with a fixed solver does not depend on its seed.",
                             hint="use kind='bootstrap' (bagging) for scikit-learn models.")
    store = model_store(store)
    keys = [member_key(spec.name, mspec.name, variant, kind, i, overrides) for i in range(k)]
    trained_now: set[int] = set()
    fresh: dict[int, dict[str, Any]] = {}
    if not all(store.contains(key) for key in keys):
        splits = scenarios.load_data(spec.name, variant)
        with _train_lock:  # one training at a time per process: two sessions asking at once share the result
            missing = [i for i, key in enumerate(keys) if not store.contains(key)]
            # Members trained one after the other are saved one by one: an interrupted run keeps its work.
            groups = [missing] if missing and trains_jointly(spec, mspec, splits["train"]) else [[i] for i in missing]
            for g, group in enumerate(groups):
                part = subrange(progress, 0.95 * g / len(groups), 0.95 * (g + 1) / len(groups))
                for i, artifact in zip(group, _train_members(spec, mspec, kind, group, overrides, splits, part)):
                    if store.readonly:  # nothing is saved: use what was just trained instead of training it again
                        fresh[i] = artifact
                    store.save(keys[i], artifact, description={"op": "uncertainty_member", "scenario": spec.name,
                                                              "model": mspec.name, "kind": kind, "index": i})
                trained_now.update(group)
    out = []
    for i, key in enumerate(keys):
        memo = (key, str(store.root))
        with _lock:
            cached = _memo.get(memo)
        if cached is None:
            def retrain(i: int = i) -> dict[str, Any]:  # the entry vanished or was corrupt since the check
                return _train_members(spec, mspec, kind, [i], overrides, scenarios.load_data(spec.name, variant), None)[0]

            artifact = fresh[i] if i in fresh else store.get_or_compute(key, retrain)
            adapter = scenarios._build_adapter(spec, _member_spec(mspec, i, overrides), artifact["state"])
            cached = Member(i, i, kind == "bootstrap", adapter, float(artifact["metrics"]["train_seconds"]),
                            float(artifact["metrics"]["test_accuracy"]), False)
            with _lock:
                cached = _memo.setdefault(memo, cached)
        out.append(dataclasses.replace(cached, trained_now=i in trained_now))
    report(progress, 1.0, f"{k} members ready")
    return out


def estimate_training(scenario: str, model: str | None, variant: str | None, kind: str, k: int,
                      overrides: dict[str, Any] | None = None,
                      store: ArtifactStore | None = None) -> scenarios.TimeEstimate | None:
    """How long :func:`ensemble_members` will train on this machine (None: every member is on disk).

    Members trained together (small torch networks): a few steps of the stacked model are timed and
    scaled to the recipe's epochs x steps. Members trained one after the other: the time the
    scenario's own model took to train (recorded when it was trained), once per missing member,
    or a timed probe of the recipe (:func:`core.scenarios.estimate_training`) when that model is
    not trained yet. Trains and stores nothing.
    """
    _check_kind(kind)
    k = check_int("k", k, "estimate_training")
    spec = scenarios.get_spec(scenario)
    variant = spec.variant(variant)
    mspec = spec.model(model or spec.default_model)
    store = model_store(store)
    missing = [i for i in range(k) if not store.contains(member_key(spec.name, mspec.name, variant, kind, i, overrides))]
    if not missing:
        return None
    train = scenarios.load_data(spec.name, variant)["train"]
    many = f"{len(missing)} member{'s' if len(missing) > 1 else ''}"
    if trains_jointly(spec, mspec, train):
        one_epoch = dataclasses.replace(mspec, params={**mspec.params, **(overrides or {}), "epochs": 1})
        specs = [_member_spec(one_epoch, i, None) for i in missing]
        member = _member_spec(mspec, missing[0], overrides)
        return scenarios.time_steps(
            lambda rows: _fit_torch_together(spec, specs, train[rows], [np.arange(len(rows))] * len(specs), None),
            len(train), member.params["batch_size"], member.params["epochs"], f"{many} trained together: ")
    if scenarios.is_trained(spec.name, mspec.name, variant, store=store):
        loaded = scenarios.load_model(spec.name, mspec.name, variant, store=store)
        recorded = float(loaded.metrics["train_seconds"])
        ratio = 1.0
        if overrides and "epochs" in overrides and "epochs" in mspec.params:
            ratio = overrides["epochs"] / mspec.params["epochs"]
        return scenarios.TimeEstimate(recorded * ratio * len(missing),
                                      f"{many} one after the other, each as long as the {recorded:.0f} s the "
                                      f"scenario's {mspec.name} took to train here")
    one = scenarios.estimate_training(spec.name, mspec.name, variant)
    return scenarios.TimeEstimate(one.seconds * len(missing), f"{many} one after the other, each {one.about}: {one.basis}")


def _train_members(spec: scenarios.ScenarioSpec, mspec: scenarios.ModelSpec, kind: str, indices: list[int],
                   overrides: dict[str, Any] | None, splits: dict[str, DataBundle],
                   progress: ProgressCallback | None) -> list[dict[str, Any]]:
    """Artifacts ``{"state", "metrics"}`` (as ``scenarios._train`` stores them) of the members ``indices``."""
    train, test = splits["train"], splits["test"]
    rows = [resample_rows(len(train), i) if kind == "bootstrap" else np.arange(len(train)) for i in indices]
    specs = [_member_spec(mspec, i, overrides) for i in indices]
    started = time.perf_counter()
    if trains_jointly(spec, mspec, train):
        states = _fit_torch_together(spec, specs, train, rows, progress)
    else:
        states = []
        for j, (member_spec, r) in enumerate(zip(specs, rows)):
            part = subrange(progress, j / len(specs), (j + 1) / len(specs))
            report(part, 0.0, f"training member {indices[j] + 1} of {len(specs)} to train ({kind})")
            states.append(scenarios._fit(spec, member_spec, train[r], part))
    seconds = (time.perf_counter() - started) / len(indices)
    out = []
    for member_spec, state in zip(specs, states):
        adapter = scenarios._build_adapter(spec, member_spec, state)
        x_test = test.x if spec.kind != "text" else list(test.x)
        accuracy = float(np.mean(adapter.predict(x_test, batch_size=256) == test.y))
        out.append({"state": state, "metrics": {"train_seconds": round(seconds, 2), "test_accuracy": accuracy,
                                                "n_train": len(train)}})
    return out


JOINT_MAX_INPUT_VALUES = 256


def trains_jointly(spec: scenarios.ScenarioSpec, mspec: scenarios.ModelSpec, train: DataBundle) -> bool:
    """Whether torch members are trained together (one vmapped model) or one after the other.

    Together wins when the network is small and each step is mostly per-call overhead (8x8 digits:
    5 members in about the time of 2); on larger inputs vmapped convolutions become grouped
    convolutions, which are slower on the CPU than K plain ones (MNIST: several times slower), so
    those members train one after the other with the scenario's own training loop.
    """
    return (mspec.framework == "torch" and spec.kind in ("image", "tabular")
            and int(np.prod(np.shape(train.x)[1:])) <= JOINT_MAX_INPUT_VALUES)


def resample_rows(n: int, index: int) -> np.ndarray:
    """Rows of member ``index``'s bootstrap resample: n draws with replacement, seeded by the index."""
    return np.random.RandomState(BOOTSTRAP_OFFSET + index).randint(0, n, size=n)


@holds_global_rng  # members are initialised from torch's seeded global generator
def _fit_torch_together(spec: scenarios.ScenarioSpec, specs: list[scenarios.ModelSpec], train: DataBundle,
                        rows: list[np.ndarray], progress: ProgressCallback | None) -> list[dict[str, Any]]:
    """Train several torch members of one recipe at once; returns each member's picklable state.

    Each member is built after ``torch.manual_seed(seed)`` (the initialisation the recipe gives that
    seed), draws its own batch order from a generator seeded like ``nets.train_classifier``'s, and
    has its own dropout masks (``randomness="different"``). The loss is the sum of the members'
    mean cross-entropies, so each member's gradient is exactly its own; Adam (with weight decay)
    and the one-cycle schedule act elementwise, as they would on the member alone.
    """
    import torch
    from torch.func import functional_call, stack_module_state, vmap

    from core.device import resolve_device

    device = resolve_device()
    p = specs[0].params
    modules, extras, encode = [], [], None
    for member_spec in specs:
        torch.manual_seed(member_spec.params["seed"])
        module, arch, extra, encode = _build_untrained(spec, member_spec, train)
        modules.append(module.to(device).train())
        extras.append((arch, extra))
    params, buffers = stack_module_state(modules)
    base = copy.deepcopy(modules[0]).to("meta")

    def forward(p_: Any, b_: Any, x_: Any) -> Any:
        return functional_call(base, (p_, b_), (x_,))

    batched = vmap(forward, randomness="different")
    optimiser = torch.optim.Adam(params.values(), lr=p["lr"], weight_decay=p.get("weight_decay", 0.0))
    n, batch_size, epochs = len(train), p["batch_size"], p["epochs"]
    total = max(1, epochs * ((n + batch_size - 1) // batch_size))
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=p["lr"], total_steps=total)
    generators = [torch.Generator().manual_seed(s.params["seed"]) for s in specs]
    targets = torch.as_tensor(np.asarray(train.y), dtype=torch.long)
    encode = encode or (lambda chunk: np.asarray(chunk, dtype=np.float32))
    step, started, k = 0, time.perf_counter(), len(specs)
    label = f"training {k} member{'s' if k > 1 else ''} of {spec.name}/{specs[0].name} together"
    for epoch in range(epochs):
        orders = [r[torch.randperm(n, generator=g).numpy()] for g, r in zip(generators, rows)]
        for start in range(0, n, batch_size):
            idx = [o[start:start + batch_size] for o in orders]
            inputs = torch.stack([torch.as_tensor(encode(train.x[i])) for i in idx]).to(device)
            labels = torch.stack([targets[i] for i in idx]).to(device)
            logits = batched(params, buffers, inputs)
            loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1), labels.flatten()) * k
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            schedule.step()
            step += 1
            if step % 10 == 0 or step == total:
                report(progress, step / total, f"{label}: epoch {epoch + 1}/{epochs}, mean loss {loss.item() / k:.3f}, "
                                               f"{time.perf_counter() - started:.0f} s")
    states = []
    for j, (arch, extra) in enumerate(extras):
        weights = {name: tensor[j].detach().cpu().clone() for name, tensor in {**params, **buffers}.items()}
        states.append({"arch": arch, "weights": weights, **extra})
    return states


def _build_untrained(spec: scenarios.ScenarioSpec, mspec: scenarios.ModelSpec,
                     train: DataBundle) -> tuple[Any, dict[str, Any], dict[str, Any], Any]:
    """(module, arch, extra state, encode) of a torch recipe, initialised from torch's current seed,
    built as ``scenarios._fit`` builds it."""
    from core import nets

    p = mspec.params
    if mspec.recipe == "image_cnn":
        _, c, h, w = train.x.shape
        arch = {"height": h, "width": w, "channels": c, "n_classes": len(spec.class_names), "mean": float(train.x.mean()),
                "std": float(train.x.std()), "widths": tuple(p["widths"]), "hidden": p["hidden"]}
        return nets.image_cnn(**arch), arch, {}, None
    if mspec.recipe == "tab_mlp":
        arch = {"n_features": train.x.shape[1], "n_classes": len(spec.class_names),
                "mean": train.x.mean(axis=0).tolist(), "std": train.x.std(axis=0).tolist(), "dropout": p["dropout"]}
        return nets.tabular_mlp(**arch), arch, {}, None
    if mspec.recipe == "text_bag":
        from core.text.vocab import Vocabulary

        vocab = Vocabulary.fit(train.x, max_size=p["vocab"], max_length=p["max_length"])
        arch = {"vocab_size": len(vocab), "n_classes": len(spec.class_names), "dim": p["dim"], "hidden": p["hidden"]}
        return nets.text_bag_of_embeddings(**arch), arch, {"vocab": vocab}, vocab.encode
    raise ParameterError(f"Members of recipe {mspec.recipe!r} cannot be trained here.")  # pragma: no cover


def forget_members() -> None:
    """Drop the in-process memo (tests simulate a restart with it)."""
    with _lock:
        _memo.clear()


# -- stochastic forward passes ------------------------------------------------------------------
DROPOUT_TYPES = ("Dropout", "Dropout1d", "Dropout2d", "Dropout3d", "AlphaDropout", "FeatureAlphaDropout")


def layer_type(module: Any) -> str:
    """A module's class name; TorchScript submodules are all RecursiveScriptModule, their class survives as original_name."""
    return str(getattr(module, "original_name", None) or type(module).__name__)


def dropout_layers(module: Any) -> list[str]:
    """Names of the module's dropout layers, TorchScript ones included (empty: MC dropout has nothing to sample)."""
    return [name for name, m in module.named_modules() if layer_type(m) in DROPOUT_TYPES]


def mc_dropout_module(module: Any, rate: float | None = None, *,
                      hint: str = "use a deep or bootstrap ensemble instead.") -> Any:
    """A copy of ``module`` in inference mode except its dropout layers, which sample.

    A copy, because adapters are shared across sessions: switching the shared module's dropout on
    would make everyone else's predictions random. Python dropout layers become keyed ones (masks
    keyed by seed, pass and sample: the same numbers at any batch size); a TorchScript model's
    keep their own draws. ``rate`` replaces every dropout probability (0 turns MC dropout into the
    deterministic model; None keeps the trained rates).
    """
    if not dropout_layers(module):
        raise ParameterError("MC dropout needs dropout layers (nn.Dropout...), and this model has none.", hint=hint)
    if rate is not None and not 0.0 <= float(rate) < 1.0:
        raise ParameterError(f"The 'rate' parameter of mc_dropout must be in [0, 1). Got {rate} instead.")
    from core.uncertainty.keyed import sampling_copy

    return sampling_copy(module, rate)


def deterministic_prefix(module: Any) -> tuple[Any, Any]:
    """(layers before the first random draw, the rest) of an ``nn.Sequential``; (None, module) otherwise.

    The prefix is computed once per batch and only the rest T times: for the image CNN the
    convolutions (most of the cost) sit before its first dropout, so T passes cost little more than
    one. Only for keyed modules (:func:`core.uncertainty.keyed.is_keyed`): their masks depend on the
    sample index, pass and layer, never on how often the prefix ran, so the numbers are the same.
    """
    import torch

    from core.uncertainty.keyed import KeyedDropout

    if not isinstance(module, torch.nn.Sequential) or isinstance(module, torch.jit.ScriptModule) or \
            type(module).forward is not torch.nn.Sequential.forward:
        return None, module

    def draws(child: Any) -> bool:
        return any(isinstance(m, KeyedDropout) or getattr(m, "draws_keyed", False)
                   or (layer_type(m) in DROPOUT_TYPES and m.training) for m in child.modules())

    children = list(module.children())
    first = next((i for i, child in enumerate(children) if draws(child)), len(children))
    if first == 0 or first == len(children):
        return None, module
    return torch.nn.Sequential(*children[:first]), torch.nn.Sequential(*children[first:])


def stochastic_passes(
    module: Any,
    to_tensor: Callable[[Any], Any],
    x: Any,
    passes: int,
    *,
    seed: int = 0,
    batch_size: int = 128,
    outputs: str = "logits",
    progress: ProgressCallback | None = None,
    message: str = "stochastic passes",
) -> np.ndarray:
    """``passes`` forward passes of a stochastic ``module`` over ``x``: ndarray (passes, n, n_classes), float32.

    Each batch of inputs goes through the module ``passes`` times in a row (moderate batches are
    fastest here). A module whose draws are all keyed (:func:`core.uncertainty.keyed.is_keyed`: our
    dropout copies, the Bayes sampler) gives the same numbers at any batch size, and needs no lock;
    any other (TorchScript dropout) draws from torch's global generator, forked and seeded, so its
    result depends on ``seed`` and on ``batch_size``.
    """
    import torch

    from core.batching import for_each_range
    from core.uncertainty.keyed import is_keyed, keyed_draws

    passes = check_int("passes", passes, "stochastic_passes")
    n = len(x)
    out: np.ndarray | None = None
    keyed = is_keyed(module)
    draw = None
    prefix, rest = deterministic_prefix(module) if keyed else (None, module)

    def step(start: int, stop: int) -> None:
        nonlocal out
        inputs = to_tensor(x[start:stop])
        chunk = []
        with torch.inference_mode():
            if prefix is not None:  # the layers before the first draw give the same output in every pass
                inputs = prefix(inputs)
            for t in range(passes):
                if draw is not None:
                    draw.pass_index, draw.offset = t, start
                z = rest(inputs).float()
                chunk.append(torch.softmax(z, dim=1) if outputs == "logits" else z)
        block = torch.stack(chunk).cpu().numpy()
        if out is None:
            out = np.empty((passes, n, block.shape[2]), dtype=np.float32)
        out[:, start:stop] = block

    if keyed:
        with keyed_draws(seed) as draw:
            for_each_range(step, n, batch_size, owner="stochastic_passes", progress=progress, message=message)
    else:
        devices = [torch.device(to_tensor(x[:1]).device)] if n else []
        cuda = [d.index or 0 for d in devices if d.type == "cuda"]
        with exclusive_global_rng(seed, cuda_devices=cuda, numpy=False):  # TorchScript dropout draws from the global generator
            for_each_range(step, n, batch_size, owner="stochastic_passes", progress=progress, message=message)
    return out if out is not None else np.empty((passes, 0, 0), dtype=np.float32)
