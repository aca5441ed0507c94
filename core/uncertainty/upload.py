"""Uncertainty for an uploaded model: sources and stress sets that need no training recipe.

The built-in sources retrain members, a Bayesian CNN and an autoencoder from the scenario's
recipe; an upload has no recipe, so it gets what its file allows:

- ``single``: the model's own probabilities (one member). Scores: 1 - confidence, predictive
  entropy, 1 - margin (the member-disagreement scores are 0 for one member, so they are left out).
- ``mc_dropout``: T passes of a *copy* of the module with only its dropout modules in training
  mode (the shared model is never switched). Offered for TorchScript and trusted full torch
  models that have dropout modules which really sample: a traced TorchScript model recorded its
  dropout in evaluation mode as a constant (measured: ``.train()`` on it changes nothing), so
  two passes are compared before the source is offered. torch.export programs, ONNX and skops
  files get no MC dropout, with the reason.

Stress sets come from the upload's own test split (:func:`generic_stress_sets`): Gaussian noise
and FGSM for images, feature noise and a feature shift for tables, word dropout for text.
Unlabelled uploads (the predictions stand in for labels, see :mod:`core.upload.byom`) get sets without
labels, so no accuracy or error AUROC is reported for them.

Everything is cached by content through the ArtifactStore: predictions by the model's and the
set's fingerprints, MC dropout passes by (model, passes, seed, set), FGSM by (model, images,
labels, epsilon).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from core.adapters.base import ModelAdapter
from core.bundle import DataBundle
from core.errors import ParameterError, check_int, unknown_name
from core.progress import ProgressCallback, report, subrange
from core.store import ArtifactStore, default_store
from core.uncertainty.members import DROPOUT_TYPES, dropout_layers, layer_type, mc_dropout_module
from core.uncertainty.report import SINGLE_MODEL_SCORES, UncertaintyReport, report_of_sets
from core.uncertainty.stress import DEFAULT_EPSILON, StressSet

if TYPE_CHECKING:
    from core.upload.byom import UploadedScenario

UPLOAD_SOURCES: dict[str, str] = {"single": "the model's own probabilities", "mc_dropout": "MC dropout"}
IMAGE_SIGMAS = (0.1, 0.25, 0.5)  # pixels in [0, 1]
FEATURE_SIGMAS = (0.5, 1.0)  # in units of each feature's standard deviation on the train split
FEATURE_SHIFT = 2.0  # standard deviations
WORD_DROPOUT = (0.25, 0.5)
MC_VERSION = 2  # 2: masks keyed by sample (independent of the batch size) where the dropout is Python's
DEFAULT_BATCH_SIZE = 128
NO_MC_FORMATS = {
    "torch_export": "a torch.export program is a fixed graph of operations: dropout was compiled in with the mode "
                    "it was exported in and there are no dropout modules to switch on",
    "onnx": "an ONNX model runs in onnxruntime, which exports dropout in inference mode (an identity) and has "
            "no training mode to switch it on",
    "skops": "a scikit-learn model has no dropout layers",
    "pickle": "a scikit-learn model has no dropout layers",
}


# -- MC dropout ---------------------------------------------------------------------------------
def mc_dropout_copy(module: Any) -> Any:
    """A copy of ``module`` in evaluation mode except its dropout modules, which sample.

    A copy, because uploaded adapters are shared by every session: switching the shared module's
    dropout on would make everyone's predictions random.
    """
    return mc_dropout_module(module, hint="use the model's own probabilities as the source.")


def mc_dropout_reason(uploaded: "UploadedScenario") -> str | None:
    """None when MC dropout can run on the upload; otherwise why not (naming the format)."""
    fmt = uploaded.inspection.format or ""
    title = uploaded.inspection.format_title
    if fmt in NO_MC_FORMATS:
        return f"{title}: {NO_MC_FORMATS[fmt]}"
    adapter = uploaded.trained.adapter
    module = adapter.torch_module()
    if module is None:
        return f"{title}: the model runs without torch, so there are no dropout modules to switch on"
    names = dropout_layers(module)
    if not names:
        return f"{title}: the model has no dropout modules (nn.Dropout, Dropout2d, AlphaDropout...)"
    rates = [float(getattr(layer, "p", 1.0)) for _, layer in module.named_modules() if layer_type(layer) in DROPOUT_TYPES]
    if rates and max(rates) <= 0:
        return f"{title}: every dropout module has probability p = 0, so the passes would all be equal"
    sample = uploaded.splits["test"].x[:8]
    passes = _passes(mc_dropout_copy(module), adapter, sample, 2, seed=0, batch_size=8)
    if np.array_equal(passes[0], passes[1]):
        return (f"{title}: its {len(names)} dropout module(s) do not sample in training mode: a model saved with "
                "torch.jit.trace records dropout in evaluation mode as a constant. Save it with "
                "torch.jit.script(model) to get MC dropout")
    return None


def upload_support(uploaded: "UploadedScenario") -> dict[str, str | None]:
    """Every upload source -> None when it applies, else the reason."""
    return {"single": None, "mc_dropout": mc_dropout_reason(uploaded)}


def _passes(module: Any, adapter: ModelAdapter, x: np.ndarray, passes: int, *, seed: int, batch_size: int,
            progress: ProgressCallback | None = None) -> np.ndarray:
    from core.uncertainty.members import stochastic_passes

    return stochastic_passes(module, adapter.to_tensor, x, passes, seed=seed, batch_size=batch_size,
                             outputs=adapter.outputs, progress=progress, message="MC dropout")


@dataclass(frozen=True, eq=False)
class UploadSource:
    """An uploaded model's source of member predictions (the interface the report reads).

    Attributes
    ----------
    kind : {"single", "mc_dropout"}
    n_members : int
        1 (single) or T passes (MC dropout).
    """

    kind: str
    scenario: str
    model: str
    n_members: int
    adapter: ModelAdapter
    fingerprint: str
    seed: int = 0
    member_accuracy: tuple[float, ...] = ()
    _module: Any = field(default=None, repr=False)
    variant: str | None = None

    @property
    def is_ensemble(self) -> bool:
        return False

    @property
    def adapters(self) -> tuple[ModelAdapter, ...]:
        return (self.adapter,)

    @property
    def attack_adapter(self) -> ModelAdapter:
        return self.adapter

    @property
    def title(self) -> str:
        if self.kind == "single":
            return "the model's own probabilities"
        return f"MC dropout, {self.n_members} samples"

    def probabilities(self, bundle: DataBundle, *, batch_size: int = DEFAULT_BATCH_SIZE,
                      progress: ProgressCallback | None = None, store: ArtifactStore | None = None) -> np.ndarray:
        """Member probabilities on ``bundle``, ndarray of shape (n_members, n_samples, n_classes), float32."""
        from core.inference import predict_proba_cached

        batch_size = check_int("batch_size", batch_size, "UploadSource.probabilities")
        store = store or default_store()
        if self.kind == "single":
            proba = predict_proba_cached(self.adapter, bundle, batch_size=batch_size, store=store, progress=progress)
            return np.asarray(proba, dtype=np.float32)[None]

        def compute() -> np.ndarray:
            return _passes(self._module, self.adapter, bundle.x, self.n_members, seed=self.seed, batch_size=batch_size,
                           progress=progress)

        from core.uncertainty.keyed import is_keyed

        params: dict[str, Any] = {"passes": self.n_members, "seed": self.seed, "version": MC_VERSION}
        if not is_keyed(self._module):  # TorchScript dropout draws per batch: the batch size changes the masks
            params["batch_size"] = batch_size
        return store.cached(compute, op="upload_mc_dropout", model_fingerprint=self.fingerprint,
                            data_fingerprint=bundle.fingerprint, params=params,
                            libraries=("numpy", "torch"))


def upload_source(uploaded: "UploadedScenario", kind: str = "single", n: int = 30, *, seed: int = 0) -> UploadSource:
    """The uploaded model as a source: ``single`` (``n`` ignored) or ``mc_dropout`` with ``n`` passes."""
    if kind not in UPLOAD_SOURCES:
        raise unknown_name("uncertainty source of an uploaded model", kind, list(UPLOAD_SOURCES))
    n = check_int("n", n, "upload_source")
    adapter = uploaded.trained.adapter
    accuracy = uploaded.trained.metrics.get("test_accuracy")
    accuracies = (float(accuracy),) if uploaded.labelled and accuracy is not None else ()
    if kind == "single":
        return UploadSource("single", uploaded.name, uploaded.trained.spec.name, 1, adapter, adapter.fingerprint,
                            seed, accuracies)
    reason = mc_dropout_reason(uploaded)
    if reason:
        raise ParameterError(f"MC dropout does not apply to this upload: {reason}.",
                             hint="use the model's own probabilities as the source.")
    # The file's hash too: a TorchScript adapter's fingerprint covers weights and layer names, not the graph's code.
    fingerprint = hashlib.sha256(f"upload_mc_dropout|{adapter.fingerprint}|{uploaded.inspection.sha256}".encode()).hexdigest()
    return UploadSource("mc_dropout", uploaded.name, uploaded.trained.spec.name, n, adapter, fingerprint, seed,
                        accuracies, mc_dropout_copy(adapter.torch_module()))


# -- stress sets --------------------------------------------------------------------------------
def fgsm_reason(adapter: ModelAdapter) -> str | None:
    """None when FGSM can attack ``adapter``; otherwise why not."""
    kind = adapter.info.input_kind
    if kind != "image":
        return f"FGSM moves pixels along the loss gradient and is offered for image models; this model takes {kind}"
    if adapter.torch_module() is None:
        return adapter.info.gradients_unavailable or "the model gives no input gradients"
    return None


def _with(test: DataBundle, x: Any, y: np.ndarray | None, name: str, display: bool = False) -> DataBundle:
    return replace(test, x=x, y=y, name=f"{test.name}/{name}", display=test.display if display else None,
                   index=np.arange(len(test)))


def _drop_words(text: str, p: float, rng: np.random.RandomState) -> str:
    words = str(text).split()
    if not words:
        return str(text)
    draws = rng.rand(len(words))
    kept = [w for w, d in zip(words, draws) if d >= p]
    return " ".join(kept or [words[int(draws.argmax())]])  # one word at least: an empty text is another question


def generic_stress_sets(
    test: DataBundle,
    train: DataBundle,
    *,
    labelled: bool = True,
    attack: ModelAdapter | None = None,
    epsilon: float = DEFAULT_EPSILON,
    attack_labels: np.ndarray | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: ProgressCallback | None = None,
    store: ArtifactStore | None = None,
) -> list[StressSet]:
    """Stress sets made from ``test`` alone, for any data kind (seeded: the same input gives the same sets).

    Parameters
    ----------
    test : DataBundle
        The clean reference; the first set returned.
    train : DataBundle
        Tables: each feature's standard deviation (the noise and shift scale) comes from it.
    labelled : bool
        False: every set's ``y`` is None (no accuracy, no error AUROC).
    attack : ModelAdapter, optional
        Image models with input gradients: add the FGSM copy of ``test`` against it.
    attack_labels : ndarray of shape (n,), optional
        Classes whose loss FGSM raises (default ``test.y``: true labels, or an unlabelled upload's predictions).

    Returns
    -------
    list of StressSet: ``clean``, then image ``fgsm`` and ``noise_<sigma>``; table ``noise_<sigma>``
    and ``shift``; text ``drop_<p>``.
    """
    from core.trust.adversarial import fgsm

    y = np.asarray(test.y) if labelled and test.y is not None else None
    n = len(test)
    sets = [StressSet("clean", "clean test", _with(test, test.x, y, "clean", display=True), False,
                      f"the {n:,} inputs of the test split" + ("" if y is not None else " (no labels)"))]
    if test.kind == "image":
        x = np.asarray(test.x, dtype=np.float32)
        if attack is not None:
            report(progress, 0.0, f"FGSM (epsilon {epsilon:g}) against {attack.info.name}")
            target = np.asarray(test.y if attack_labels is None else attack_labels)
            adv = fgsm(attack, x, target, epsilon, batch_size=batch_size, progress=subrange(progress, 0.0, 0.8),
                       store=store)
            whose = "the true class" if y is not None else "the model's own prediction (no labels)"
            sets.append(StressSet("fgsm", f"FGSM ε={epsilon:g}", _with(test, adv, y, f"fgsm-{epsilon:g}"), True,
                                  f"the test images moved by ±{epsilon:g} per pixel along the sign of the loss "
                                  f"gradient of {whose}"))
        for i, sigma in enumerate(IMAGE_SIGMAS):
            noise = np.random.RandomState(100 + i).normal(0.0, sigma, x.shape).astype(np.float32)
            sets.append(StressSet(f"noise_{sigma:g}", f"Gaussian noise σ={sigma:g}",
                                  _with(test, np.clip(x + noise, 0.0, 1.0), y, f"noise-{sigma:g}"), True,
                                  f"the test images plus Gaussian noise of standard deviation {sigma:g} per pixel "
                                  "(pixels in [0, 1], clipped); labels kept"))
    elif test.kind == "tabular":
        x = np.asarray(test.x, dtype=np.float32)
        scale = np.asarray(train.x, dtype=np.float64).std(axis=0)
        for i, sigma in enumerate(FEATURE_SIGMAS):
            noise = np.random.RandomState(200 + i).normal(0.0, 1.0, x.shape) * sigma * scale
            sets.append(StressSet(f"noise_{sigma:g}", f"feature noise {sigma:g} sd",
                                  _with(test, (x + noise).astype(np.float32), y, f"noise-{sigma:g}"), True,
                                  f"every feature plus Gaussian noise of {sigma:g} of its standard deviation on the "
                                  "train split; labels kept"))
        sets.append(StressSet("shift", f"features shifted +{FEATURE_SHIFT:g} sd",
                              _with(test, (x + FEATURE_SHIFT * scale).astype(np.float32), None, "shift"), True,
                              f"every feature moved up by {FEATURE_SHIFT:g} of its standard deviation (a covariate "
                              "shift; no labels: the true class of such a row is unknown)"))
    else:
        texts = [str(t) for t in test.x]
        for i, p in enumerate(WORD_DROPOUT):
            rng = np.random.RandomState(300 + i)
            dropped = np.array([_drop_words(t, p, rng) for t in texts], dtype=object)
            sets.append(StressSet(f"drop_{p:g}", f"word dropout {p:.0%}", _with(test, dropped, y, f"drop-{p:g}"), True,
                                  f"each word of each test text removed with probability {p:g} (one word at least "
                                  "stays); labels kept"))
    report(progress, 1.0, "stress sets ready")
    return sets


def upload_report(
    uploaded: "UploadedScenario",
    kind: str = "single",
    n: int = 30,
    *,
    epsilon: float = DEFAULT_EPSILON,
    seed: int = 0,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: ProgressCallback | None = None,
    store: ArtifactStore | None = None,
) -> UncertaintyReport:
    """Score the upload's stress sets with one of its sources (see :func:`upload_source`)."""
    batch_size = check_int("batch_size", batch_size, "upload_report")
    store = store or default_store()
    source = upload_source(uploaded, kind, n, seed=seed)
    adapter = uploaded.trained.adapter
    attack = adapter if fgsm_reason(adapter) is None else None
    test = uploaded.splits["test"]
    sets = generic_stress_sets(test, uploaded.splits["train"], labelled=uploaded.labelled, attack=attack,
                               epsilon=epsilon, batch_size=batch_size, progress=subrange(progress, 0.0, 0.3),
                               store=store)
    keep = SINGLE_MODEL_SCORES if kind == "single" else None
    return report_of_sets(source, sets, float(epsilon) if attack is not None else float("nan"), keep=keep,
                          batch_size=batch_size, progress=subrange(progress, 0.3, 1.0), store=store)
