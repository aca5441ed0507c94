"""Results a precompute job published (``python -m core precompute``), read instead of computed.

The pages ask here first: when the current model, split, method and settings match a published
precompute, the explanation is read from the store (``core.precompute.lookup``: the key the CLI used,
the manifest read once per process) and :func:`caption` says so; otherwise the usual cached function
computes it. Only results equal to what the page computes are read (the predicted class of a test
sample; methods whose values do not depend on the other inputs of a call).
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import streamlit as st

from components import cached
from core.precompute import lookup
from core.store import default_store


def store_url() -> str:
    """The app's store (``TRUSTLENS_STORE``, else the cache folder): where a precompute is looked for."""
    return default_store().url


def image_attributions(sel: Any, test: Any, rows: Any, images: np.ndarray, targets: tuple[int, ...],
                       methods: tuple[tuple[str, str], ...], batch_size: int, _progress=None
                       ) -> tuple[dict[str, Any], dict[str, tuple[lookup.Hit, int]]]:
    """``{method: ImageAttribution}`` of the images (as :func:`components.cached.image_attributions`), each
    method's maps read from a precompute for the test images ``rows`` it holds, computed for the others.

    Returns the results and ``{method: (provenance, images read)}`` for the methods read, for :func:`caption`.
    """
    if rows is None:  # an uploaded image: nothing precomputed
        return cached.image_attributions(sel.scenario, sel.model, sel.variant, images, targets, methods, batch_size,
                                         _progress=_progress), {}
    from core.attribution import get_method

    adapter = cached.trained_model(sel.scenario, sel.model, sel.variant).adapter
    wanted = np.asarray(targets, dtype=np.int64)
    results: dict[str, Any] = {}
    read: dict[str, tuple[lookup.Hit, int]] = {}
    todo: list[tuple[str, str]] = []
    for name, params_json in methods:
        params = get_method(name).params_type(**json.loads(params_json))
        found, part, hit = lookup.image_attribution(store_url(), adapter, test, name, params, rows, wanted)
        if part is None:
            todo.append((name, params_json))
            continue
        read[name] = (hit, int(found.sum()))
        if found.all():
            results[name] = part
            continue
        missing = ~found  # the other images: computed, then put back in the page's order
        rest = cached.image_attributions(sel.scenario, sel.model, sel.variant, images[missing],
                                         tuple(int(t) for t in wanted[missing]), ((name, params_json),), batch_size,
                                         _progress=_progress)[name]
        results[name] = _merge(part, rest, found)
    if todo:
        results.update(cached.image_attributions(sel.scenario, sel.model, sel.variant, images, targets, tuple(todo),
                                                 batch_size, _progress=_progress))
    return {name: results[name] for name, _ in methods}, read


def _merge(found_part: Any, computed: Any, found: np.ndarray) -> Any:
    """One ImageAttribution of every image: ``found_part``'s rows where ``found``, ``computed``'s elsewhere."""
    from dataclasses import replace

    order = np.argsort(np.concatenate([np.flatnonzero(found), np.flatnonzero(~found)]), kind="stable")

    def join(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return np.concatenate([np.asarray(a), np.asarray(b)])[order]

    extras = {k: join(found_part.extras[k], computed.extras[k]) for k in computed.extras if k in found_part.extras}
    return replace(computed, maps=join(found_part.maps, computed.maps), target=join(found_part.target, computed.target),
                   extras=extras)


def shap_explanation(sel: Any, n_rows: int, algorithm: str, background: str, background_size: int,
                     target: str | int, rows: tuple[int, ...] | None = None) -> tuple[Any, lookup.Hit | None]:
    """The Shapley page's SHAP values of the test rows (as :func:`components.cached.shap_explanation`), read from
    a precompute of the test split when one holds them for the predicted class, else computed."""
    if target == "predicted":
        from core.tabular.shap_tabular import Background, ShapParams, background_data

        splits = cached.scenario_data(sel.scenario, sel.variant)
        test = splits["test"]
        params = ShapParams(algorithm=algorithm, background=background, background_size=background_size)
        picked = np.arange(min(n_rows, len(test))) if rows is None else np.asarray(rows, dtype=np.int64)[:n_rows]
        adapter = cached.trained_model(sel.scenario, sel.model, sel.variant).adapter
        method = Background.of(background_data(splits["train"], params)).method
        expl, hit = lookup.table_attribution(store_url(), adapter, test, picked, params, method)
        if expl is not None:
            return expl, hit
    return cached.shap_explanation(sel.scenario, sel.model, sel.variant, n_rows, algorithm, background,
                                   background_size, target, rows), None


def text_explanation(adapter: Any, test: Any, index: int | None, text: str, method: str, params: Any,
                     target: str | int = "predicted", progress: Any = None) -> tuple[Any, lookup.Hit | None]:
    """The text page's explanation of ``text`` (as :func:`core.text.text_methods.explain_text`), read from a
    precompute of the test split when ``index`` is a test document it holds with this method and these
    settings, towards its predicted class; else computed. ``index`` None: a text of the user's, computed."""
    from core.text import text_methods

    if index is not None:
        expl, hit = lookup.text_explanation(store_url(), adapter, test, index, method, params, target)
        if expl is not None:
            return expl, hit
    return text_methods.explain_text(adapter, text, method, params, target, progress), None


def caption(read: dict[str, tuple[lookup.Hit, int]] | lookup.Hit | None, titles: dict[str, str] | None = None,
            total: int | None = None, where: Any = st, what: str | None = None) -> None:
    """One line saying what was read from a precompute: when and on which engine it ran."""
    if not read:
        return
    if isinstance(read, lookup.Hit):
        where.caption(f":material/bolt: {what or 'These results'}: precomputed by `python -m core precompute` on "
                      f"{read.date}, engine {read.engine}.")
        return
    hits = list(read.values())
    names = ", ".join((titles or {}).get(m, m) for m in read)
    counts = {n for _, n in hits}
    share = "" if total is None or counts == {total} else \
        f" ({', '.join(f'{n} of {total} images' for _, n in hits)}; the others computed)"
    dates = ", ".join(sorted({h.date for h, _ in hits}))
    engines = ", ".join(sorted({h.engine for h, _ in hits}))
    where.caption(f":material/bolt: {names}: precomputed by `python -m core precompute` on {dates}, "
                  f"engine {engines}{share}.")
