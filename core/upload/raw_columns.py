"""What a raw-column pipeline makes of an uploaded table: categories it never saw in training.

A scikit-learn pipeline fitted on a DataFrame encodes its text columns itself (``OneHotEncoder``,
``OrdinalEncoder``, inside a ``ColumnTransformer`` or not). A category the encoder never saw is
its own ``handle_unknown``'s business: ``"error"`` refuses the rows, ``"ignore"`` encodes them as
all zeros, ``"infrequent_if_exist"`` as the infrequent category, ``"use_encoded_value"`` as its
``unknown_value``. :func:`unseen_categories` finds those categories so that the upload can say what
happened, naming the column, the values and the encoder's choice.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

MAX_SHOWN = 5
_ENCODERS = ("OneHotEncoder", "OrdinalEncoder")


@dataclass(frozen=True)
class Unseen:
    column: str
    values: tuple[str, ...]  # the data's categories the encoder lacks
    handle_unknown: str  # the encoder's setting

    @property
    def text(self) -> str:
        shown = ", ".join(repr(v) for v in self.values[:MAX_SHOWN])
        more = f" and {len(self.values) - MAX_SHOWN} more" if len(self.values) > MAX_SHOWN else ""
        effect = {"error": "the pipeline refuses rows holding them",
                  "ignore": "the pipeline encodes them as no category at all (all zeros)",
                  "infrequent_if_exist": "the pipeline puts them in its infrequent category",
                  "use_encoded_value": "the pipeline gives them its unknown_value"}.get(self.handle_unknown,
                                                                                       "the pipeline decides")
        return (f"column {self.column!r} holds {len(self.values)} categor{'y' if len(self.values) == 1 else 'ies'} "
                f"never seen in training ({shown}{more}): handle_unknown={self.handle_unknown!r}, so {effect}")


def _encoders(estimator: Any, columns: tuple[str, ...] | None = None) -> Iterator[tuple[Any, tuple[str, ...]]]:
    """(encoder, the raw columns it encodes) anywhere in a pipeline or column transformer."""
    name = type(estimator).__name__
    if name in _ENCODERS:
        own = getattr(estimator, "feature_names_in_", None)
        yield estimator, tuple(str(c) for c in (own if own is not None else columns or ()))
        return
    for _, step in getattr(estimator, "steps", None) or ():
        yield from _encoders(step, columns)
        columns = None  # after the first step the columns are no longer the raw ones
    for _, transformer, selected in getattr(estimator, "transformers_", None) or ():
        if isinstance(transformer, str):  # "drop" / "passthrough"
            continue
        picked = tuple(str(c) for c in selected) if all(isinstance(c, str) for c in selected) else None
        yield from _encoders(transformer, picked)


def unseen_categories(estimator: Any, categories: dict[str, tuple[str, ...]]) -> list[Unseen]:
    """The data's text categories (``categories``: column -> texts) that the pipeline's encoders never saw."""
    out: list[Unseen] = []
    for encoder, columns in _encoders(estimator):
        known = getattr(encoder, "categories_", None)
        if known is None or len(columns) != len(known):
            continue
        for column, seen in zip(columns, known):
            texts = categories.get(column)
            if not texts:
                continue
            seen_text = {str(v) for v in seen}
            missing = tuple(t for t in texts if t not in seen_text)
            if missing:
                out.append(Unseen(column, missing, str(getattr(encoder, "handle_unknown", "error"))))
    return out
