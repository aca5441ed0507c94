"""What removing unit j means, per modality, and the one deletion / insertion implementation built on it.

A masker answers one question for input ``i``: the model's probability of class ``target`` when only
the units in each row of ``keep`` (a boolean matrix, one column per unit) are present.

- :class:`PixelMasker`: a removed pixel shows the fill image (zero, the dataset mean or a blur: the
  same fills as occlusion); torch models get their batches built on the model's device.
- :class:`WordMasker`: a removed word is deleted everywhere it occurs (the text perturber's sparse
  path for scikit-learn pipelines, strings otherwise, exactly as LIME perturbs).

:func:`deletion_insertion` turns any masker and any per-unit values into the curves and areas of
:class:`core.trust.sanity.FaithfulnessCurves`; :func:`deletion_orders` gives the text page's
"delete the first k words of this order" curves from the same masker.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from core.adapters.base import ModelAdapter
from core.batching import for_each_range
from core.errors import InputShapeError, check_int
from core.progress import ProgressCallback, report
from core.trust.degenerate import is_degenerate


class PixelMasker:
    """Images (n, C, H, W); a unit is one pixel (all its channels), removed = the fill image's pixel."""

    unit = "pixels"

    def __init__(self, adapter: ModelAdapter, x: np.ndarray, fill: np.ndarray) -> None:
        self.adapter = adapter
        self.x = np.asarray(x, dtype=np.float32)
        self.fill = np.asarray(fill, dtype=np.float32)
        if self.x.ndim != 4 or self.fill.shape != self.x.shape:
            raise InputShapeError(f"PixelMasker needs images (n, C, H, W) and a fill of the same shape; got "
                                  f"{self.x.shape} and {self.fill.shape}.")
        self._device: tuple[Any, ...] | None = None

    def __len__(self) -> int:
        return len(self.x)

    def n_units(self, i: int) -> int:
        return self.x.shape[2] * self.x.shape[3]

    def probabilities(self, i: int, keep: np.ndarray, target: int, batch_size: int) -> np.ndarray:
        _n, _c, height, width = self.x.shape
        out = np.empty(len(keep), dtype=np.float64)
        if self.adapter.torch_module() is not None:
            from core.attribution.torch_ops import target_probabilities, to_device, torch_parts

            torch, _module, device = torch_parts(self.adapter)
            xi, fi = to_device(torch, self.x[i], device), to_device(torch, self.fill[i], device)

            def step(start: int, stop: int) -> None:
                kept = torch.as_tensor(keep[start:stop]).to(device).reshape(-1, 1, height, width)
                targets = torch.full((stop - start,), int(target), dtype=torch.int64, device=device)
                out[start:stop] = target_probabilities(self.adapter, torch.where(kept, xi, fi), targets)
        else:
            def step(start: int, stop: int) -> None:
                kept = keep[start:stop].reshape(-1, 1, height, width)
                batch = np.where(kept, self.x[i], self.fill[i])
                out[start:stop] = self.adapter.predict_proba(batch, len(batch))[:, int(target)]

        for_each_range(step, len(keep), batch_size, owner="PixelMasker")
        return out


class WordMasker:
    """Texts; a unit is one distinct word of the text, removed = every occurrence deleted."""

    unit = "words"

    def __init__(self, adapter: ModelAdapter, texts: list[str]) -> None:
        from core.text.words import WordDocument

        self.adapter = adapter
        self.docs = [WordDocument.parse(t) for t in texts]
        for doc in self.docs:
            doc.require_words()

    def __len__(self) -> int:
        return len(self.docs)

    def n_units(self, i: int) -> int:
        return self.docs[i].n_words

    def probabilities(self, i: int, keep: np.ndarray, target: int, batch_size: int) -> np.ndarray:
        from core.text.text_perturb import perturber

        return perturber(self.adapter, self.docs[i]).predict(np.asarray(keep, dtype=bool), batch_size)[:, int(target)]


def _ranks(order: np.ndarray) -> np.ndarray:
    ranks = np.empty(len(order), dtype=np.int64)
    ranks[order] = np.arange(len(order))
    return ranks


def deletion_insertion(
    masker: PixelMasker | WordMasker,
    values: list[np.ndarray] | np.ndarray,
    targets: np.ndarray,
    *,
    method: str = "",
    steps: int = 20,
    random_orders: int = 3,
    seed: int = 0,
    batch_size: int = 256,
    progress: ProgressCallback | None = None,
) -> Any:
    """Deletion / insertion curves of per-unit values, one row per input, for any modality.

    ``values[i]`` has one value per unit of input ``i`` (larger = more evidence for ``targets[i]``).
    At point k of ``steps`` the first round(k / steps * d) units of the order are removed (deletion)
    or are the only ones present (insertion, from the all-removed input). Curves: ``deletion``
    (most relevant first), ``deletion_least`` (least relevant first), ``insertion``, and
    ``deletion_random`` / ``insertion_random`` (means over ``random_orders`` random orders, drawn
    input by input from ``seed``). Inputs whose values are degenerate are flagged (their "order" is
    the units' own order) and left out of the areas and verdict.
    """
    from core.trust.sanity import FaithfulnessCurves

    steps = check_int("steps", steps, "deletion_insertion")
    random_orders = check_int("random_orders", random_orders, "deletion_insertion", minimum=0)
    if not (len(masker) == len(targets) == len(values)):
        raise InputShapeError(f"deletion_insertion needs one target and one value vector per input; got "
                              f"{len(masker)} inputs, {len(targets)} targets, {len(values)} value vectors.")
    rng = np.random.default_rng(seed)
    fractions = np.linspace(0.0, 1.0, steps + 1)
    names = ["deletion", "deletion_least", "insertion"] + (["deletion_random", "insertion_random"] if random_orders else [])
    curves: dict[str, list[np.ndarray]] = {k: [] for k in names}
    for i in range(len(masker)):
        d = masker.n_units(i)
        w = np.asarray(values[i], dtype=np.float64).reshape(-1)
        if w.shape != (d,):
            raise InputShapeError(f"Input {i} has {d} {masker.unit} but its values have shape {w.shape}.")
        orders = [np.argsort(-w, kind="stable"), np.argsort(w, kind="stable")]
        orders += [rng.permutation(d) for _ in range(random_orders)]
        counts = np.round(fractions * d).astype(np.int64)
        ranks = np.stack([_ranks(order) for order in orders])
        hidden = ranks[:, None, :] < counts[None, :, None]  # (orders, points, d): the first k units of the order
        # Deletion rows keep the units not hidden; insertion rows keep only the hidden (first k) ones.
        keep = np.concatenate([~hidden, hidden], axis=0).reshape(-1, d)
        p = masker.probabilities(i, keep, int(targets[i]), batch_size).reshape(2, len(orders), steps + 1)
        curves["deletion"].append(p[0, 0])
        curves["deletion_least"].append(p[0, 1])
        curves["insertion"].append(p[1, 0])
        if random_orders:
            curves["deletion_random"].append(p[0, 2:].mean(axis=0))
            curves["insertion_random"].append(p[1, 2:].mean(axis=0))
        report(progress, (i + 1) / len(masker), f"deleting and inserting {masker.unit}: input {i + 1} of {len(masker)}")
    return FaithfulnessCurves(method, fractions, {k: np.stack(v) for k, v in curves.items()}, unit=masker.unit,
                              degenerate=np.array([is_degenerate(np.asarray(w)) for w in values], dtype=bool))


def deletion_orders(masker: PixelMasker | WordMasker, i: int, target: int, orders: list[np.ndarray], steps: int,
                    batch_size: int) -> np.ndarray:
    """P(target) of input ``i`` as the first 0..steps units of each order are removed, shape (len(orders), steps + 1)."""
    d = masker.n_units(i)
    keep = np.ones((len(orders), steps + 1, d), dtype=bool)
    for s, order in enumerate(orders):
        for k in range(1, steps + 1):
            keep[s, k:, order[k - 1]] = False
    return masker.probabilities(i, keep.reshape(-1, d), int(target), batch_size).reshape(len(orders), steps + 1)
