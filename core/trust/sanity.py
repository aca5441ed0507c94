"""Can the explanation be trusted? Sanity checks and faithfulness for image attributions.

- Model parameter randomisation (Adebayo et al. 2018): re-initialise the weights layer by layer
  from the output down (cascading) or one layer at a time (independent), re-explain, and measure
  how similar the maps stay. A method whose maps survive randomisation is not explaining the model.
- Data randomisation: the same architecture trained on permuted labels (:func:`random_label_model`).
- Faithfulness: deletion and insertion curves (Petsiuk et al. 2018): remove (or add) pixels in
  order of attribution and watch the class probability, against random orders.
- Agreement: rank correlation and top-k overlap between methods' maps.
- Stability: max-sensitivity, the largest relative change of a map under small input noise.

Everything runs through :func:`core.attribution.explain_images` (batched, on the model's device,
cached by content) or batched ``predict_proba`` calls.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from collections.abc import Callable
from typing import Any

import numpy as np

from core.adapters.base import ModelAdapter
from core.attribution import ImageContext, explain_images, get_method
from core.attribution.occlusion import fill_images, OcclusionParams
from core.trust.degenerate import cannot_judge, degenerate_rows, excluded_note, is_degenerate, judged_mean
from core.errors import ParameterError, check_int
from core.progress import ProgressCallback, report, subrange
from core.rng import holds_global_rng
from core.store import ArtifactStore

MODES = ("cascading", "independent")
TOP_K_FRACTION = 0.1


# -- similarity of maps ---------------------------------------------------------------------------


def _ranks(values: np.ndarray) -> np.ndarray:
    """Average ranks along the last axis (ties share their mean rank), float64."""
    from scipy.stats import rankdata

    return rankdata(values, axis=-1)


def spearman(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Spearman rank correlation per row of (n, d) arrays (or of two vectors), shape (n,).

    The Pearson correlation of the rows' average ranks, as ``scipy.stats.spearmanr`` per row, in one
    vectorised pass. The project's one Spearman: image and text checks and
    :func:`core.text.shap_text.rank_agreement` call it. NaN where either row is constant (an all-zero
    Grad-CAM map, a one-word document) or holds a NaN: a constant ranking has no correlation, not even
    with itself. Such rows are degenerate (:mod:`core.trust.degenerate`): verdicts leave them out and
    means skip the NaN (:func:`core.trust.degenerate.judged_mean`).
    """
    ra, rb = _ranks(np.atleast_2d(a)), _ranks(np.atleast_2d(b))
    if ra.shape[1] == 0:  # no values (an empty document): nothing is ranked
        return np.full(len(ra), np.nan)
    ra -= ra.mean(axis=1, keepdims=True)
    rb -= rb.mean(axis=1, keepdims=True)
    denominator = np.sqrt((ra ** 2).sum(axis=1) * (rb ** 2).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominator > 0, (ra * rb).sum(axis=1) / denominator, np.nan)


def top_k_overlap(a: np.ndarray, b: np.ndarray, fraction: float = TOP_K_FRACTION) -> np.ndarray:
    """Share of the top ``fraction`` features of ``a`` (by value) that are also in ``b``'s, per row."""
    k = max(1, int(round(fraction * a.shape[1])))
    top_a = np.argsort(-a, axis=1, kind="stable")[:, :k]
    top_b = np.argsort(-b, axis=1, kind="stable")[:, :k]
    return np.array([len(np.intersect1d(x, y)) / k for x, y in zip(top_a, top_b)])


def ssim(a: np.ndarray, b: np.ndarray, window: int = 3) -> np.ndarray:
    """Structural similarity (Wang et al. 2004) of (n, H, W) maps, each scaled to [0, 1]; mean per map.

    Uniform ``window`` x ``window`` neighbourhoods (3 suits 8x8 digits as well as 28x28 MNIST).
    """
    from scipy.ndimage import uniform_filter

    def unit(m: np.ndarray) -> np.ndarray:
        low = m.min(axis=(1, 2), keepdims=True)
        span = m.max(axis=(1, 2), keepdims=True) - low
        return np.where(span > 0, (m - low) / np.where(span > 0, span, 1), 0.0)

    a, b = unit(np.asarray(a, dtype=np.float64)), unit(np.asarray(b, dtype=np.float64))
    size = (1, window, window)
    mu_a, mu_b = uniform_filter(a, size), uniform_filter(b, size)
    var_a = uniform_filter(a * a, size) - mu_a ** 2
    var_b = uniform_filter(b * b, size) - mu_b ** 2
    cov = uniform_filter(a * b, size) - mu_a * mu_b
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    score = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a ** 2 + mu_b ** 2 + c1) * (var_a + var_b + c2))
    return score.mean(axis=(1, 2))


def map_similarity(reference: np.ndarray, other: np.ndarray) -> dict[str, np.ndarray]:
    """Spearman of |values|, SSIM of |values| and top-10 % overlap of |values|, each of shape (n,)."""
    ref, oth = np.abs(reference), np.abs(other)
    flat_ref, flat_oth = ref.reshape(len(ref), -1), oth.reshape(len(oth), -1)
    return {"spearman": spearman(flat_ref, flat_oth), "ssim": ssim(ref, oth),
            "top_k": top_k_overlap(flat_ref, flat_oth)}


# -- model parameter randomisation -----------------------------------------------------------------


def parameter_layers(module: Any) -> list[str]:
    """Leaf layers with weights, from the input side to the output side.

    A module with a ``layer_groups()`` method (a transformer: its embeddings and each encoder block) has the
    leaves inside a group randomised together, as one stage: a block, not its dozen linear maps and norms.
    """
    leaves = [name for name, m in module.named_modules()
              if name and not list(m.children()) and any(p.requires_grad for p in m.parameters(recurse=False))]
    groups = getattr(module, "layer_groups", None)
    if not callable(groups):
        return leaves
    prefixes = groups()
    units: list[str] = []
    for leaf in leaves:
        unit = next((p for p in prefixes if leaf == p or leaf.startswith(p + ".")), leaf)
        if unit not in units:
            units.append(unit)
    return units


@holds_global_rng  # reset_parameters draws from torch's global generator
def randomized_module(module: Any, layers: list[str], seed: int) -> Any:
    """A deep copy of ``module`` whose ``layers`` are re-initialised (``reset_parameters``, seeded)."""
    import torch

    clone = copy.deepcopy(module)
    named = dict(clone.named_modules())
    for i, name in enumerate(layers):
        layer = named[name]
        generator_state = torch.random.get_rng_state()
        torch.manual_seed(seed * 1000 + i)
        try:
            # a leaf, or every module with weights inside a group (a transformer block)
            for part in [m for m in layer.modules() if any(True for _ in m.parameters(recurse=False))]:
                if hasattr(part, "reset_parameters"):
                    part.reset_parameters()
                else:
                    with torch.no_grad():
                        for p in part.parameters(recurse=False):
                            p.normal_(0.0, 0.05)
        finally:
            torch.random.set_rng_state(generator_state)
    return clone.eval()


def randomized_adapter(adapter: ModelAdapter, layers: list[str], seed: int, label: str) -> ModelAdapter:
    """``adapter`` around a copy of its module with ``layers`` re-initialised (same encoder, classes, device)."""
    from core.adapters.torch_adapter import TorchAdapter

    module = adapter.torch_module()
    copy_ = randomized_module(module, layers, seed)
    if isinstance(adapter, TorchAdapter):
        return adapter.with_module(copy_, f"{adapter.info.name}[{label}]")
    return TorchAdapter(copy_, name=f"{adapter.info.name}[{label}]", class_names=adapter.class_names,
                        input_kind=adapter.info.input_kind, outputs=getattr(adapter, "outputs", "logits"),
                        device=getattr(adapter, "device", None))


def randomization_stages(module: Any, mode: str) -> list[tuple[str, list[str]]]:
    """(label, layers randomised) per stage: ``original`` first, then from the output side down."""
    if mode not in MODES:
        raise ParameterError(f"The 'mode' parameter of the randomisation test must be one of {MODES}. "
                             f"Got {mode!r} instead.")
    layers = parameter_layers(module)[::-1]  # output side first
    stages: list[tuple[str, list[str]]] = [("original", [])]
    if mode == "cascading":
        stages += [(f"up to {name}", layers[: i + 1]) for i, name in enumerate(layers)]
    else:
        stages += [(name, [name]) for name in layers]
    return stages


@dataclass(frozen=True, eq=False)
class RandomizationResult:
    """One method's maps and similarities across randomisation stages.

    Attributes
    ----------
    stages : tuple of str
        ``"original"`` then, cascading: ``"up to fc2"``, ``"up to fc1"``...; independent: ``"fc2"``...
    heatmaps : ndarray of shape (n_stages, n, H, W)
    similarity : dict metric -> ndarray of shape (n_stages, n)
        Similarity of each stage's map to the original's (1 at the original stage).
    degenerate : ndarray of shape (n_stages, n), bool
        Maps that are blank, constant or non-finite (:mod:`core.trust.degenerate`): they rank nothing,
        so an input whose original or fully randomised map is degenerate is left out of the verdict.
    """

    method: str
    mode: str
    stages: tuple[str, ...]
    heatmaps: np.ndarray
    similarity: dict[str, np.ndarray] = field(default_factory=dict)
    noun: str = "maps"  # "word weights" for text
    degenerate: np.ndarray | None = None

    def judged(self) -> np.ndarray:
        """Inputs the verdict reads, shape (n,): neither the original nor the final stage's map is degenerate."""
        n = next(iter(self.similarity.values())).shape[1]
        if self.degenerate is None:
            return np.ones(n, dtype=bool)
        return ~(self.degenerate[0] | self.degenerate[-1])

    def mean(self, metric: str = "spearman") -> np.ndarray:
        """Mean similarity per stage over the inputs whose original map is not degenerate, shape (n_stages,).

        NaN at every stage when every original map is degenerate.
        """
        values = self.similarity[metric]
        usable = np.ones(values.shape[1], bool) if self.degenerate is None else ~self.degenerate[0]
        if not usable.any():
            return np.full(len(values), np.nan)
        return judged_mean(values[:, usable], axis=1)  # a stage's constant map has a NaN Spearman

    def verdict(self, threshold: float = 0.5) -> str:
        """A one-line reading of the numbers (fully randomised stage, Spearman of |values|).

        Degenerate maps have no ranking: they never make a method pass (or fail); with none left,
        the verdict is "cannot judge".
        """
        judged = self.judged()
        if not judged.any():
            return cannot_judge(self.noun)
        final = float(self.similarity["spearman"][-1, judged].mean())
        note = excluded_note(int((~judged).sum()), len(judged), self.noun)
        if final < threshold:
            return (f"passes: its {self.noun} change when the weights are randomised (rank correlation {final:.2f} "
                    f"with every layer random){note}")
        return (f"fails: its {self.noun} barely change with random weights (rank correlation {final:.2f} with every "
                f"layer random); it shows the input more than the model{note}")


def randomization_test(
    adapter: ModelAdapter,
    x: np.ndarray,
    target: np.ndarray,
    methods: dict[str, Any],
    *,
    mode: str = "cascading",
    seed: int = 0,
    batch_size: int = 256,
    context: ImageContext | None = None,
    progress: ProgressCallback | None = None,
    store: ArtifactStore | None = None,
) -> dict[str, RandomizationResult]:
    """Model parameter randomisation test for several methods on the same images and targets.

    The targets stay those of the original model, so every stage explains the same class.
    """
    def explain_stage(stage_adapter: ModelAdapter, part: ProgressCallback | None) -> dict[str, list[np.ndarray]]:
        out = {}
        for j, (method, params) in enumerate(methods.items()):
            result = explain_images(stage_adapter, x, target, method, params, batch_size=batch_size, context=context,
                                    store=store, progress=subrange(part, j / len(methods), (j + 1) / len(methods)))
            out[method] = list(result.heatmap())
        return out

    return randomization(adapter, list(methods), explain_stage, map_similarity, mode=mode, seed=seed,
                         progress=progress, hint="pick a torch model (the CNNs).")


def randomization(
    adapter: ModelAdapter,
    methods: list[str],
    explain_stage: Callable[[ModelAdapter, ProgressCallback | None], dict[str, list[np.ndarray]]],
    similarity: Callable[[np.ndarray, np.ndarray], dict[str, np.ndarray]],
    *,
    mode: str = "cascading",
    seed: int = 0,
    noun: str = "maps",
    ragged: bool = False,
    progress: ProgressCallback | None = None,
    hint: str = "pick a torch model.",
) -> dict[str, RandomizationResult]:
    """The model parameter randomisation test for any modality: one implementation.

    ``explain_stage(stage_adapter, progress)`` gives each method's values per input (a list over the
    inputs: maps for images, word weights for text) on one stage's model; ``similarity(original,
    stage)`` compares inputs' values row by row, metric -> (n,). ``ragged``: the inputs' values have
    their own lengths (word weights), kept as an object array (stages, n) and compared one input at a
    time. Stages follow :func:`randomization_stages`.
    The targets stay those of the original model, so every stage explains the same class.
    """
    if mode not in MODES:
        raise ParameterError(f"The 'mode' parameter of randomization_test must be one of {MODES}. Got {mode!r} instead.")
    module = adapter.torch_module()
    if module is None:
        raise ParameterError(f"The randomisation test re-initialises weights, which needs a torch model; "
                             f"{adapter.info.name!r} is {adapter.info.framework}.", hint=hint)
    stages = randomization_stages(module, mode)
    values: dict[str, list[list[np.ndarray]]] = {m: [] for m in methods}
    for s, (label, randomized) in enumerate(stages):
        stage_adapter = adapter if not randomized else randomized_adapter(adapter, randomized, seed, label)
        found = explain_stage(stage_adapter, subrange(progress, s / len(stages), (s + 1) / len(stages)))
        for m in methods:
            values[m].append(found[m])
        report(progress, (s + 1) / len(stages), f"randomisation: {label}")
    out = {}
    labels = tuple(label for label, _ in stages)
    for m in methods:
        n = len(values[m][0])
        same_shape = not ragged
        if same_shape:  # maps: one array (stages, n, ...)
            stacked = np.stack([np.stack(stage) for stage in values[m]])
        else:  # word weights: one vector per document, of its own length
            stacked = np.empty((len(stages), n), dtype=object)
            for s in range(len(stages)):
                for i in range(n):
                    stacked[s, i] = values[m][s][i]
        sims = [_similarity_rows(similarity, values[m][0], values[m][s], same_shape) for s in range(len(stages))]
        degenerate = np.array([[is_degenerate(np.asarray(v)) for v in stage] for stage in values[m]], dtype=bool)
        out[m] = RandomizationResult(m, mode, labels, stacked, {k: np.stack([sim[k] for sim in sims]) for k in sims[0]},
                                     noun=noun, degenerate=degenerate)
    return out


def _similarity_rows(similarity: Callable[[np.ndarray, np.ndarray], dict[str, np.ndarray]], reference: list[np.ndarray],
                     other: list[np.ndarray], same_shape: bool) -> dict[str, np.ndarray]:
    if same_shape:
        return similarity(np.stack(reference), np.stack(other))
    rows = [similarity(np.asarray(a)[None], np.asarray(b)[None]) for a, b in zip(reference, other)]
    return {k: np.concatenate([r[k] for r in rows]) for k in rows[0]}


# -- faithfulness: deletion and insertion ---------------------------------------------------------


@dataclass(frozen=True, eq=False)
class FaithfulnessCurves:
    """Class probability as pixels are deleted or inserted in order of attribution.

    Attributes
    ----------
    fractions : ndarray of shape (steps + 1,)
        Share of pixels removed (deletion) or restored (insertion) at each point.
    curves : dict name -> ndarray of shape (n, steps + 1)
        ``deletion`` (most relevant first), ``deletion_least`` (least relevant first),
        ``insertion`` (most relevant first), and ``deletion_random`` / ``insertion_random``
        (mean over random orders).
    degenerate : ndarray of shape (n,), bool, optional
        Inputs whose map is blank, constant or non-finite: its "order" is the raster order, so
        their curves say nothing about the method and are left out of the areas and the verdict.
    """

    method: str
    fractions: np.ndarray
    curves: dict[str, np.ndarray]
    unit: str = "pixels"  # "words" for text
    degenerate: np.ndarray | None = None

    def judged(self) -> np.ndarray:
        """Inputs the areas and verdict read, shape (n,)."""
        n = len(next(iter(self.curves.values())))
        return np.ones(n, dtype=bool) if self.degenerate is None else ~np.asarray(self.degenerate, dtype=bool)

    def area(self, name: str) -> np.ndarray:
        """Area under a curve per image (trapezoid over the fraction axis), shape (n,)."""
        c = self.curves[name]
        return ((c[:, 1:] + c[:, :-1]) / 2 * np.diff(self.fractions)).sum(axis=1)

    def areas(self) -> dict[str, float]:
        """Mean area per curve over the judged inputs (NaN when every map is degenerate)."""
        judged = self.judged()
        return {name: float(self.area(name)[judged].mean()) if judged.any() else float("nan") for name in self.curves}

    def verdict(self) -> str:
        judged = self.judged()
        noun = "maps" if self.unit == "pixels" else "word weights"
        if not judged.any():
            return cannot_judge(noun)
        return self._verdict() + excluded_note(int((~judged).sum()), len(judged), noun)

    def _verdict(self) -> str:
        a = self.areas()
        deletion_ok = a["deletion"] < a["deletion_random"]
        insertion_ok = a["insertion"] > a["insertion_random"]
        if deletion_ok and insertion_ok:
            return (f"faithful: deleting its top {self.unit} drops the probability faster than random (area "
                    f"{a['deletion']:.3f} vs {a['deletion_random']:.3f}) and inserting them raises it faster "
                    f"({a['insertion']:.3f} vs {a['insertion_random']:.3f})")
        if not deletion_ok and not insertion_ok:
            return (f"does not beat random deletion ({a['deletion']:.3f} vs {a['deletion_random']:.3f}) nor random "
                    f"insertion ({a['insertion']:.3f} vs {a['insertion_random']:.3f})")
        which = "insertion" if deletion_ok else "deletion"
        return f"mixed: beats random on {'deletion' if deletion_ok else 'insertion'} but not on {which}"


def faithfulness_curves(
    adapter: ModelAdapter,
    x: np.ndarray,
    target: np.ndarray,
    heatmap: np.ndarray,
    *,
    method: str = "",
    steps: int = 20,
    fill: str = "zero",
    random_orders: int = 3,
    seed: int = 0,
    batch_size: int = 256,  # on CPU, 512 or 2048 rows of the MNIST CNN took twice as long per row as 256
    context: ImageContext | None = None,
    progress: ProgressCallback | None = None,
) -> FaithfulnessCurves:
    """Deletion / insertion curves of one map per image.

    Parameters
    ----------
    heatmap : ndarray of shape (n, H, W)
        Pixel relevance (signed maps: larger = more evidence for the target).
    steps : int
        Points after the start; each removes / restores ``1 / steps`` of the pixels.
    fill : {"zero", "mean", "blur"}
        What a deleted pixel becomes (and what an insertion starts from).

    One implementation for every modality: :func:`core.trust.maskers.deletion_insertion` with a
    :class:`~core.trust.maskers.PixelMasker`.
    """
    from core.trust.maskers import PixelMasker, deletion_insertion

    x = np.asarray(x, dtype=np.float32)
    heat = np.asarray(heatmap, dtype=np.float64).reshape(len(x), -1)
    masker = PixelMasker(adapter, x, fill_images(x, OcclusionParams(fill=fill), context))
    return deletion_insertion(masker, heat, np.asarray(target, dtype=np.int64).reshape(-1), method=method, steps=steps,
                              random_orders=random_orders, seed=seed, batch_size=batch_size, progress=progress)


# -- agreement and stability -----------------------------------------------------------------------


def agreement(heatmaps: dict[str, np.ndarray],
              fraction: float = TOP_K_FRACTION) -> tuple[list[str], np.ndarray, np.ndarray]:
    """(names, Spearman (m, m, n), top-``fraction`` overlap (m, m, n)) between every pair of methods' |maps|.

    A pair involving a degenerate map (blank, constant, non-finite) is NaN: it cannot agree or
    disagree. Average with ``np.nanmean``.
    """
    names = list(heatmaps)
    flat = {k: np.abs(np.asarray(v, dtype=np.float64)).reshape(len(v), -1) for k, v in heatmaps.items()}
    blank = {k: degenerate_rows(np.asarray(v, dtype=np.float64).reshape(len(v), -1)) for k, v in heatmaps.items()}
    n = len(next(iter(flat.values())))
    rho = np.ones((len(names), len(names), n))
    top = np.ones((len(names), len(names), n))
    for i, a in enumerate(names):
        for j, b in enumerate(names):
            if j > i:
                rho[i, j] = rho[j, i] = spearman(flat[a], flat[b])
                top[i, j] = top_k_overlap(flat[a], flat[b], fraction)
                top[j, i] = top_k_overlap(flat[b], flat[a], fraction)
            if j >= i:
                either = blank[a] | blank[b]
                for matrix in (rho, top):
                    matrix[i, j, either] = matrix[j, i, either] = np.nan
    return names, rho, top


def max_sensitivity(
    adapter: ModelAdapter,
    x: np.ndarray,
    target: np.ndarray,
    method: str,
    params: Any = None,
    *,
    radius: float = 0.02,
    samples: int = 8,
    seed: int = 0,
    batch_size: int = 256,
    context: ImageContext | None = None,
    store: ArtifactStore | None = None,
) -> np.ndarray:
    """max_j ||e(x + u_j) - e(x)|| / ||e(x)|| over ``samples`` uniform perturbations in [-radius, radius], shape (n,).

    NaN for an image whose own map is degenerate (blank: the ratio has no meaning).
    """
    samples = check_int("samples", samples, "max_sensitivity")
    x = np.asarray(x, dtype=np.float32)
    n = len(x)
    noise = np.random.default_rng(seed).uniform(-radius, radius, size=(n * samples, *x.shape[1:])).astype(np.float32)
    noisy = np.repeat(x, samples, axis=0) + noise
    base = explain_images(adapter, x, target, method, params, batch_size=batch_size, context=context, store=store)
    moved = explain_images(adapter, noisy, np.repeat(target, samples), method, params, batch_size=batch_size,
                           context=context, store=store)
    ref = base.heatmap().reshape(n, -1)
    diff = moved.heatmap().reshape(n, samples, -1) - ref[:, None]
    norm = np.maximum(np.linalg.norm(ref, axis=1), 1e-12)
    out = (np.linalg.norm(diff, axis=2).max(axis=1) / norm).astype(np.float64)
    return np.where(degenerate_rows(ref), np.nan, out)


SEEDED = ("smoothgrad", "expected_gradients")  # methods whose maps depend on a random seed


def seed_stability(adapter: ModelAdapter, x: np.ndarray, target: np.ndarray, method: str, params: Any = None,
                   seeds: int = 5, *, batch_size: int = 256, context: ImageContext | None = None,
                   store: ArtifactStore | None = None) -> np.ndarray:
    """Mean pairwise Spearman of |maps| over ``seeds`` seeds of a sampling method, shape (n,).

    NaN for an image where any seed's map is degenerate.
    """
    from dataclasses import replace

    spec = get_method(method)
    params = spec.params_type() if params is None else params
    if not hasattr(params, "seed"):
        raise ParameterError(f"{spec.title} has no random seed: its maps do not vary across seeds.")
    heats = [explain_images(adapter, x, target, method, replace(params, seed=s), batch_size=batch_size,
                            context=context, store=store).heatmap().reshape(len(x), -1) for s in range(seeds)]
    pairs = [spearman(np.abs(heats[i]), np.abs(heats[j])) for i in range(seeds) for j in range(i + 1, seeds)]
    blank = np.any([degenerate_rows(h) for h in heats], axis=0)
    return np.where(blank, np.nan, np.mean(pairs, axis=0))


# -- data randomisation ----------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class DataRandomizationResult:
    """One method's maps for the real model and for the same recipe trained on shuffled labels.

    Attributes
    ----------
    real, shuffled : ndarray of shape (n, H, W)
    similarity : dict metric -> ndarray of shape (n,)
    """

    method: str
    real: np.ndarray
    shuffled: np.ndarray
    similarity: dict[str, np.ndarray]

    def judged(self) -> np.ndarray:
        """Images where neither map is degenerate, shape (n,)."""
        n = len(self.real)
        return ~(degenerate_rows(np.reshape(self.real, (n, -1))) | degenerate_rows(np.reshape(self.shuffled, (n, -1))))

    def verdict(self, threshold: float = 0.5) -> str:
        judged = self.judged()
        if not judged.any():
            return cannot_judge("maps")
        rho = float(self.similarity["spearman"][judged].mean())
        note = excluded_note(int((~judged).sum()), len(judged), "maps")
        if rho < threshold:
            return (f"passes: its maps for the model trained on shuffled labels differ from the real model's "
                    f"(rank correlation {rho:.2f}){note}")
        return f"fails: a model that learned nothing gets much the same maps (rank correlation {rho:.2f}){note}"


def data_randomization_test(
    adapter: ModelAdapter,
    shuffled_adapter: ModelAdapter,
    x: np.ndarray,
    target: np.ndarray,
    methods: dict[str, Any],
    *,
    batch_size: int = 256,
    context: ImageContext | None = None,
    progress: ProgressCallback | None = None,
    store: ArtifactStore | None = None,
) -> dict[str, DataRandomizationResult]:
    """Maps of each method for the real model and for ``shuffled_adapter`` (same targets), and their similarity."""
    out = {}
    for i, (method, params) in enumerate(methods.items()):
        maps = []
        for j, model in enumerate((adapter, shuffled_adapter)):
            step = 2 * i + j
            maps.append(explain_images(model, x, target, method, params, batch_size=batch_size, context=context,
                                       store=store, progress=subrange(progress, step / (2 * len(methods)),
                                                                      (step + 1) / (2 * len(methods)))).heatmap())
        out[method] = DataRandomizationResult(method, maps[0], maps[1], map_similarity(maps[0], maps[1]))
    return out
