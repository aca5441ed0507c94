"""One interface over every source of member predictions: :func:`load_source` -> :class:`Source`.

A source turns a set of inputs into ``proba`` of shape (n_members, n_samples, n_classes):

- ``deep`` / ``bootstrap``: K trained members (see :mod:`core.uncertainty.members`);
- ``mc_dropout``: T passes of the scenario's model with dropout on;
- ``bayes``: T weight samples of a Bayes-by-backprop CNN trained on the scenario's train split.

Predictions are cached on disk per member (ensembles) or per (model, passes, seed) (stochastic
sources), keyed by content; the batch size never enters a key.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from core import scenarios
from core.adapters.base import ModelAdapter
from core.bundle import DataBundle
from core.errors import ParameterError, check_int, unknown_name
from core.progress import ProgressCallback, report, subrange
from core.rng import holds_global_rng
from core.store import ArtifactStore, cache_key, default_store, model_store, source_hash
from core.uncertainty import members as member_lib

SOURCES: dict[str, str] = {
    "deep": "deep ensemble (seeds)",
    "bootstrap": "bootstrap ensemble (bagging)",
    "mc_dropout": "MC dropout",
    "bayes": "Bayes by backprop",
}
DEFAULT_BATCH_SIZE = 128
BAYES_VERSION = 1
AUTOENCODER_VERSION = 1
# Source hashed into the keys of the Bayes-by-backprop network and the autoencoder (trained models, kept in
# TRUSTLENS_MODEL_CACHE_DIR when set): an edit to the code that trains them retrains them.
BAYES_CODE = ("core/nets.py", "core/uncertainty/bayes.py", "core/uncertainty/keyed.py", "core/uncertainty/sources.py",
              "core/datasets.py")
AUTOENCODER_CODE = ("core/uncertainty/autoencoder.py", "core/uncertainty/sources.py", "core/datasets.py")


def bayes_params(height: int) -> dict[str, Any]:
    """Bayes-by-backprop recipe per image size (8x8 digits / 28x28 MNIST)."""
    if height < 16:
        return {"epochs": 40, "batch_size": 32, "lr": 3e-3, "widths": [16, 32], "hidden": 64, "prior_sigma": 0.1,
                "kl_weight": 1.0, "seed": 0}
    return {"epochs": 2, "batch_size": 128, "lr": 3e-3, "widths": [16, 32], "hidden": 64, "prior_sigma": 0.1,
            "kl_weight": 1.0, "seed": 0}


def autoencoder_params(height: int) -> dict[str, Any]:
    if height < 16:
        return {"epochs": 60, "batch_size": 32, "lr": 2e-3, "hidden": 64, "code": 12, "seed": 0}
    return {"epochs": 3, "batch_size": 128, "lr": 2e-3, "hidden": 128, "code": 16, "seed": 0}


@dataclass(frozen=True, eq=False)
class Source:
    """Members of one kind, ready to predict.

    Attributes
    ----------
    kind : str
        A key of :data:`SOURCES`.
    n_members : int
        K (ensembles) or T (passes / weight samples).
    adapters : tuple of ModelAdapter
        Ensembles: every member. Stochastic sources: the one deterministic model they perturb
        (MC dropout: the scenario's model; Bayes: the network at its weight means).
    fingerprint : str
        Content hash of everything the predictions depend on.
    seed : int
        Seed of the stochastic passes (ignored by ensembles).
    """

    kind: str
    scenario: str
    model: str
    variant: str | None
    n_members: int
    adapters: tuple[ModelAdapter, ...]
    fingerprint: str
    seed: int = 0
    member_accuracy: tuple[float, ...] = ()
    train_seconds: float = 0.0
    trained_now: bool = False
    _stochastic: Any = field(default=None, repr=False)

    @property
    def is_ensemble(self) -> bool:
        return self.kind in member_lib.ENSEMBLE_KINDS

    @property
    def attack_adapter(self) -> ModelAdapter:
        """The one model FGSM attacks: member 0, or the deterministic model a stochastic source perturbs."""
        return self.adapters[0]

    @property
    def title(self) -> str:
        unit = "members" if self.is_ensemble else "samples"
        return f"{SOURCES[self.kind]}, {self.n_members} {unit}"

    def probabilities(self, bundle: DataBundle, *, batch_size: int = DEFAULT_BATCH_SIZE,
                      progress: ProgressCallback | None = None, store: ArtifactStore | None = None) -> np.ndarray:
        """Member probabilities on ``bundle``, ndarray of shape (n_members, n_samples, n_classes), float32."""
        batch_size = check_int("batch_size", batch_size, "Source.probabilities")
        store = store or default_store()
        if self.is_ensemble:
            from core.inference import predict_proba_cached

            parts = []
            for i, adapter in enumerate(self.adapters):
                parts.append(predict_proba_cached(adapter, bundle, batch_size=batch_size, store=store,
                                                  progress=subrange(progress, i / self.n_members, (i + 1) / self.n_members)))
            return np.stack(parts).astype(np.float32)
        module, to_tensor, outputs = self._stochastic

        def compute() -> np.ndarray:
            return member_lib.stochastic_passes(module, to_tensor, bundle.x, self.n_members, seed=self.seed,
                                                batch_size=batch_size, outputs=outputs, progress=progress,
                                                message=SOURCES[self.kind])

        # draws keyed by sample (the same numbers at any batch size); before, masks were drawn per batch
        return store.cached(compute, op="stochastic_passes", model_fingerprint=self.fingerprint,
                            data_fingerprint=bundle.fingerprint,
                            params={"passes": self.n_members, "seed": self.seed, "draws": "keyed"},
                            libraries=("numpy", "torch"))


def _hash(*parts: str) -> str:
    return hashlib.sha256("|".join(parts).encode()).hexdigest()


def is_ready(scenario: str, model: str | None, variant: str | None, kind: str, n: int,
             store: ArtifactStore | None = None) -> bool:
    """True when :func:`load_source` will not train anything."""
    store = store or default_store()
    if kind in member_lib.ENSEMBLE_KINDS:
        return member_lib.members_trained(scenario, model, variant, kind, n, store=store)
    if kind == "mc_dropout":
        spec = scenarios.get_spec(scenario)
        return scenarios.is_trained(scenario, model or spec.default_model, variant, store=store)
    if kind == "bayes":
        return model_store(store).contains(_bayes_key(scenario, variant))
    raise unknown_name("uncertainty source", kind, list(SOURCES))


def estimate_source(scenario: str, model: str | None, variant: str | None, kind: str, n: int,
                    store: ArtifactStore | None = None) -> scenarios.TimeEstimate | None:
    """How long :func:`load_source` will train on this machine; None when nothing needs training.

    Measured, never a constant: ensembles see :func:`core.uncertainty.members.estimate_training`;
    MC dropout trains only the scenario's model (:func:`core.scenarios.estimate_training`); Bayes by
    backprop times a few steps of its own training loop. Trains and stores nothing.
    """
    store = store or default_store()
    spec = scenarios.get_spec(scenario)
    variant = spec.variant(variant)
    model = model or spec.default_model
    if kind in member_lib.ENSEMBLE_KINDS:
        return member_lib.estimate_training(scenario, model, variant, kind, n, store=store)
    if is_ready(scenario, model, variant, kind, n, store=store):
        return None
    if kind == "mc_dropout":
        return scenarios.estimate_training(scenario, model, variant)
    if kind == "bayes":
        from core.device import resolve_device
        from core.rng import exclusive_global_rng
        from core.uncertainty import bayes

        train = scenarios.load_data(scenario, variant)["train"]
        params = bayes_params(train.x.shape[2])
        arch = _bayes_arch(spec, train, params)

        def fit(rows: np.ndarray) -> None:
            with exclusive_global_rng(numpy=False):  # train_bayes seeds torch's global generator
                bayes.train_bayes(bayes.bayes_cnn(**arch), train.x[rows], train.y[rows], epochs=1,
                                  batch_size=params["batch_size"], lr=params["lr"], seed=params["seed"],
                                  prior_sigma=params["prior_sigma"], kl_weight=params["kl_weight"],
                                  device=resolve_device())

        return scenarios.time_steps(fit, len(train), params["batch_size"], params["epochs"], "Bayes by backprop: ")
    raise unknown_name("uncertainty source", kind, list(SOURCES))


def autoencoder_ready(scenario: str, variant: str | None = None, store: ArtifactStore | None = None) -> bool:
    """True when :func:`autoencoder_scores` will not train (the scenario's autoencoder is on disk)."""
    return model_store(store).contains(_autoencoder_key(scenario, variant)[0])


def autoencoder_estimate(scenario: str, variant: str | None = None,
                         store: ArtifactStore | None = None) -> scenarios.TimeEstimate | None:
    """How long the autoencoder of :func:`autoencoder_scores` will train here; None when it is on disk."""
    from core.device import resolve_device
    from core.rng import exclusive_global_rng
    from core.uncertainty import autoencoder as ae

    if autoencoder_ready(scenario, variant, store):
        return None
    _, train, params = _autoencoder_key(scenario, variant)
    n_inputs = int(np.prod(train.x.shape[1:]))

    def fit(rows: np.ndarray) -> None:
        with exclusive_global_rng(numpy=False):  # train_autoencoder seeds torch's global generator
            ae.train_autoencoder(ae.autoencoder(n_inputs, params["hidden"], params["code"]), train.x[rows], epochs=1,
                                 batch_size=params["batch_size"], lr=params["lr"], seed=params["seed"],
                                 device=resolve_device())

    return scenarios.time_steps(fit, len(train), params["batch_size"], params["epochs"], "autoencoder: ")


def load_source(
    scenario: str,
    model: str | None = None,
    variant: str | None = None,
    kind: str = "deep",
    n: int = 5,
    *,
    seed: int = 0,
    overrides: dict[str, Any] | None = None,
    dropout_rate: float | None = None,
    progress: ProgressCallback | None = None,
    store: ArtifactStore | None = None,
) -> Source:
    """Train (first use) or load a source of member predictions.

    Parameters
    ----------
    kind : {"deep", "bootstrap", "mc_dropout", "bayes"}
    n : int
        Members K (ensembles) or stochastic passes T (MC dropout, Bayes), >= 1.
    overrides : dict, optional
        Recipe parameters changed for every ensemble member or for the Bayes network (tests: fewer epochs).
    dropout_rate : float, optional
        MC dropout only: replaces every dropout probability (0 reproduces the deterministic model).
    """
    if kind not in SOURCES:
        raise unknown_name("uncertainty source", kind, list(SOURCES))
    n = check_int("n", n, "load_source")
    spec = scenarios.get_spec(scenario)
    variant = spec.variant(variant)
    mspec = spec.model(model or spec.default_model)
    reason = member_lib.supported_sources(scenario, mspec.name)[kind]
    if reason:
        raise ParameterError(f"{SOURCES[kind]} does not apply to {scenario}/{mspec.name}: {reason}.",
                             hint="pick another source: " + ", ".join(
                                 SOURCES[k] for k, r in member_lib.supported_sources(scenario, mspec.name).items() if r is None))
    store = store or default_store()
    if kind in member_lib.ENSEMBLE_KINDS:
        members = member_lib.ensemble_members(scenario, mspec.name, variant, kind, n, overrides=overrides,
                                              progress=progress, store=store)
        adapters = tuple(m.adapter for m in members)
        return Source(kind, spec.name, mspec.name, variant, n, adapters,
                      _hash(kind, *(a.fingerprint for a in adapters)), seed,
                      tuple(m.test_accuracy for m in members), sum(m.train_seconds for m in members),
                      any(m.trained_now for m in members))
    if kind == "mc_dropout":
        loaded = scenarios.load_model(spec.name, mspec.name, variant, progress=progress, store=store)
        adapter = loaded.adapter
        module = member_lib.mc_dropout_module(adapter.torch_module(), dropout_rate)
        return Source(kind, spec.name, mspec.name, variant, n, (adapter,),
                      _hash(kind, adapter.fingerprint, repr(dropout_rate)), seed,
                      (float(loaded.metrics["test_accuracy"]),), float(loaded.metrics["train_seconds"]), loaded.trained_now,
                      _stochastic=(module, adapter.to_tensor, adapter.outputs))
    adapter, metrics, trained_now = bayes_model(spec.name, variant, overrides=overrides, progress=progress, store=store)
    import copy

    from core.uncertainty.bayes import set_sampling

    sampler = set_sampling(copy.deepcopy(adapter.torch_module()), True)  # a copy: the shared adapter stays deterministic
    return Source(kind, spec.name, mspec.name, variant, n, (adapter,), _hash(kind, adapter.fingerprint), seed,
                  (float(metrics["test_accuracy"]),), float(metrics["train_seconds"]), trained_now,
                  _stochastic=(sampler, adapter.to_tensor, "logits"))


def _image_shape(scenario: str, variant: str | None) -> tuple[int, ...]:
    return tuple(scenarios.load_data(scenario, variant)["train"].x.shape[1:])


def _bayes_key(scenario: str, variant: str | None, overrides: dict[str, Any] | None = None) -> str:
    spec = scenarios.get_spec(scenario)
    variant = spec.variant(variant)
    train = scenarios.load_data(scenario, variant)["train"]
    params = {**bayes_params(train.x.shape[2]), **(overrides or {})}
    return cache_key(op="uncertainty_bayes", data_fingerprint=train.fingerprint,
                     params={"scenario": spec.name, "variant": variant, "version": BAYES_VERSION,
                             **params, "training_code": source_hash(*BAYES_CODE)},
                     libraries=scenarios.TRAIN_LIBRARIES)


def _bayes_arch(spec: scenarios.ScenarioSpec, train: DataBundle, params: dict[str, Any]) -> dict[str, Any]:
    _, c, h, w = train.x.shape
    return {"height": h, "width": w, "channels": c, "n_classes": len(spec.class_names), "mean": float(train.x.mean()),
            "std": float(train.x.std()), "widths": tuple(params["widths"]), "hidden": params["hidden"]}


def bayes_model(scenario: str, variant: str | None = None, *, overrides: dict[str, Any] | None = None,
                progress: ProgressCallback | None = None,
                store: ArtifactStore | None = None) -> tuple[ModelAdapter, dict[str, float], bool]:
    """The scenario's Bayes-by-backprop CNN (trained on first use): (adapter at the weight means, metrics, trained now)."""
    import time

    from core.adapters.torch_adapter import TorchAdapter
    from core.device import resolve_device
    from core.uncertainty import bayes

    spec = scenarios.get_spec(scenario)
    if spec.kind != "image":
        raise ParameterError(f"Bayes by backprop is built for image scenarios; {scenario!r} is {spec.kind}.",
                             hint="pick digits or mnist.")
    splits = scenarios.load_data(scenario, variant)
    train = splits["train"]
    params = {**bayes_params(train.x.shape[2]), **(overrides or {})}
    arch = _bayes_arch(spec, train, params)
    trained_now = False

    @holds_global_rng  # the network is initialised from torch's seeded global generator
    def compute() -> dict[str, Any]:
        nonlocal trained_now
        trained_now = True
        import torch

        torch.manual_seed(params["seed"])
        started = time.perf_counter()
        module = bayes.train_bayes(bayes.bayes_cnn(**arch), train.x, train.y, epochs=params["epochs"],
                                   batch_size=params["batch_size"], lr=params["lr"], seed=params["seed"],
                                   prior_sigma=params["prior_sigma"], kl_weight=params["kl_weight"],
                                   device=resolve_device(), progress=progress)
        seconds = time.perf_counter() - started
        probe = TorchAdapter(module, name="bayes", class_names=spec.class_names, input_kind="image")
        accuracy = float(np.mean(probe.predict(splits["test"].x, batch_size=256) == splits["test"].y))
        return {"arch": arch, "weights": {k: v.detach().cpu().clone() for k, v in module.state_dict().items()},
                "metrics": {"train_seconds": round(seconds, 2), "test_accuracy": accuracy}}

    artifact = model_store(store).get_or_compute(_bayes_key(scenario, variant, overrides), compute,
                                                      description={"op": "uncertainty_bayes", "scenario": scenario})
    module = bayes.bayes_cnn(**artifact["arch"])
    module.load_state_dict(artifact["weights"])
    adapter = TorchAdapter(module, name="bayes", class_names=spec.class_names, input_kind="image",
                           description="Bayes-by-backprop CNN (weight means)")
    return adapter, dict(artifact["metrics"]), trained_now


def store_or_default(store: ArtifactStore | None) -> ArtifactStore:
    return store or default_store()


def _autoencoder_key(scenario: str, variant: str | None,
                     overrides: dict[str, Any] | None = None) -> tuple[str, DataBundle, dict[str, Any]]:
    """(store key of the scenario's autoencoder, its training split, its parameters)."""
    spec = scenarios.get_spec(scenario)
    variant = spec.variant(variant)
    train = scenarios.load_data(scenario, variant)["train"]
    params = {**autoencoder_params(train.x.shape[2]), **(overrides or {})}
    key = cache_key(op="uncertainty_autoencoder", data_fingerprint=train.fingerprint,
                    params={"scenario": spec.name, "variant": variant, "version": AUTOENCODER_VERSION,
                            **params, "training_code": source_hash(*AUTOENCODER_CODE)},
                    libraries=scenarios.TRAIN_LIBRARIES)
    return key, train, params


def autoencoder_scores(scenario: str, variant: str | None, bundles: dict[str, DataBundle], *,
                       overrides: dict[str, Any] | None = None, batch_size: int = 256,
                       progress: ProgressCallback | None = None,
                       store: ArtifactStore | None = None) -> dict[str, np.ndarray]:
    """Reconstruction error of every input of every bundle under the scenario's autoencoder (trained on first use)."""
    import time

    from core.device import resolve_device
    from core.uncertainty import autoencoder as ae

    key, train, params = _autoencoder_key(scenario, variant, overrides)
    n_inputs = int(np.prod(train.x.shape[1:]))
    store = store_or_default(store)
    device = resolve_device()

    def compute() -> dict[str, Any]:
        started = time.perf_counter()
        module = ae.train_autoencoder(ae.autoencoder(n_inputs, params["hidden"], params["code"]), train.x,
                                      epochs=params["epochs"], batch_size=params["batch_size"], lr=params["lr"],
                                      seed=params["seed"], device=device, progress=subrange(progress, 0.0, 0.9))
        return {"weights": {k: v.detach().cpu().clone() for k, v in module.state_dict().items()},
                "train_seconds": round(time.perf_counter() - started, 2)}

    artifact = model_store(store).get_or_compute(key, compute, description={"op": "uncertainty_autoencoder",
                                                                             "scenario": scenario})
    module = ae.autoencoder(n_inputs, params["hidden"], params["code"])
    module.load_state_dict(artifact["weights"])
    module = module.to(device).eval()
    out = {}
    for name, bundle in bundles.items():
        out[name] = store.cached(lambda b=bundle: ae.reconstruction_error(module, b.x, batch_size, device),
                                 op="reconstruction_error", model_fingerprint=key, data_fingerprint=bundle.fingerprint,
                                 libraries=("numpy", "torch"))
    report(progress, 1.0, "autoencoder: done")
    return out
