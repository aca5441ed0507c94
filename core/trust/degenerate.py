"""Is an explanation degenerate? One test for every modality's maps and word weights.

A map that carries no ranking cannot be shown as if it did, and no verdict can be drawn from it:
an all-zero Grad-CAM map (the weighted channels summed to a negative number everywhere, and
Grad-CAM's ReLU clipped it), a map that is the same value everywhere, a map with NaN or
infinite values, or one whose values vanished because the explained output is saturated (a
probability of 1.0 whose change or gradient underflows in float32).

:func:`degenerate_reason` says which, in words a page can print; :func:`degenerate_rows` is the
vectorised test over many maps. Pages show the reason beside the map; the trust checks in
:mod:`core.trust.sanity` and :mod:`core.trust.sanity_text` leave degenerate maps out of their verdicts and
say "cannot judge" when nothing is left.
"""

from __future__ import annotations

from typing import Any

import numpy as np

# float32 holds ~7 significant digits: values this close to each other, relative to the map's
# size, are one value printed seven ways.
RELATIVE_SPREAD = 1e-6
# Largest |value| under which a map is treated as vanished (float32 gradients of a saturated
# softmax come out as 0 or denormals around 1e-38; genuine maps here are 1e-6 and up).
VANISHING = 1e-12

NON_FINITE, CONSTANT, VANISHED = "non-finite", "constant", "vanished"


def _flat(values: Any) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64)
    return arr.reshape(len(arr), -1) if arr.ndim > 1 else arr.reshape(1, -1)


def degenerate_kinds(maps: Any) -> list[str | None]:
    """Per map, the kind of degeneracy or None, for ``maps`` of shape (n, ...) (one map per row).

    Kinds: ``"non-finite"`` (NaN or infinite values), ``"vanished"`` (every |value| below
    :data:`VANISHING`, zeros included), ``"constant"`` (the same value everywhere, up to float
    rounding, but not zero). A row with no values (an empty document) is ``"constant"``.
    """
    rows = _flat(maps)
    out: list[str | None] = []
    for row in rows:
        if row.size == 0:
            out.append(CONSTANT)
        elif not np.isfinite(row).all():
            out.append(NON_FINITE)
        else:
            size = float(np.abs(row).max())
            if size < VANISHING:
                out.append(VANISHED)
            elif float(row.max() - row.min()) <= RELATIVE_SPREAD * size:
                out.append(CONSTANT)
            else:
                out.append(None)
    return out


def degenerate_rows(maps: Any) -> np.ndarray:
    """Boolean ndarray of shape (n,): True where row i of ``maps`` (n, ...) is degenerate."""
    return np.array([k is not None for k in degenerate_kinds(maps)], dtype=bool)


def is_degenerate(values: Any) -> bool:
    """True when one map or weight vector (any shape) carries no ranking."""
    return degenerate_kind(values) is not None


# Why it happens and what to try, per kind; ``{method}`` is the method's title, ``{noun}`` "map"
# or "word weights".
_WHY = {
    NON_FINITE: ("some values are NaN or infinite: the model's output or gradient overflowed for this input",
                 "check the input's scale, or use a method that needs no gradients (occlusion)"),
    VANISHED: ("every value is zero: nothing in the input moves the explained output, which happens when the output "
               "is saturated (a probability of 1.0 whose change or gradient underflows) or, for Grad-CAM, when "
               "the layer's weighted channels are negative everywhere and its ReLU clips them (or, on a Vision "
               "Transformer, when the layer's patch tokens never reach the head, as after the last block)",
               "explain another class, pick a layer after an activation (Grad-CAM; on a Vision Transformer the tokens "
               "entering the last block's attention), or use a gradient method on the logit"),
    CONSTANT: ("every value is the same, so it ranks nothing",
               "another method, or a smaller patch / more samples"),
}


def degenerate_reason(values: Any, method: str = "This explanation", noun: str = "map") -> str | None:
    """A sentence for the page ("Grad-CAM's map is blank: ... Try: ...") or None for a usable map."""
    kind = degenerate_kind(values)
    if kind is None:
        return None
    why, what = _WHY[kind]
    verb = "are" if noun.endswith("s") else "is"
    blank = "blank" if kind != NON_FINITE else "unusable"
    return f"{method}'s {noun} {verb} {blank}: {why}. Try: {what}."


def degenerate_kind(values: Any) -> str | None:
    """The kind of degeneracy of one map or weight vector (any shape), or None."""
    return degenerate_kinds(np.asarray(values, dtype=np.float64).reshape(1, -1))[0]


def cannot_judge(noun: str, method: str = "") -> str:
    """The verdict when every map a check would judge is degenerate."""
    who = f"{method}'s " if method else ""
    return (f"cannot judge: {who}{noun} are blank or constant for every chosen input, and what ranks nothing can "
            "neither pass nor fail; pick other inputs or another setting")


def excluded_note(n_excluded: int, n_total: int, noun: str) -> str:
    """" (k of n inputs left out: their ... are blank)" or "" when none were left out."""
    if not n_excluded:
        return ""
    return f" ({n_excluded} of {n_total} inputs left out: their {noun} are blank or constant)"


def judged_mean(values: Any, axis: int | None = None) -> Any:
    """Mean over the judged entries (NaN marks a degenerate one); NaN where none is left, without a warning."""
    arr = np.asarray(values, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        counts = np.sum(~np.isnan(arr), axis=axis)
        totals = np.nansum(arr, axis=axis)
        return np.where(counts > 0, totals / np.maximum(counts, 1), np.nan)
