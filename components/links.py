"""Deep links: the state of a view that matters lives in the URL's query string.

Every page's widgets have stable keys; :data:`PAGE_PARAMS` names the ones worth linking (sample,
method and its parameters, layer, projection...) under short URL names. app.py calls
:func:`restore_shared` before the sidebar and :func:`restore_page` before the page, which copy URL
values into ``st.session_state`` so the widgets open on them, and :func:`publish` after the page,
which writes the current values back to the URL. Copying the address bar (or the sidebar's
"Copy link") therefore reopens the same view in another browser.

The URL is read once per session and page (a link opens a new session), so a widget the user
just changed is never overwritten by an older URL. Values that do not parse are ignored (the widget
keeps its default); values a widget does not offer are dropped by the widget itself or by the
page's own filtering.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import streamlit as st

from components import state

RESTORED_KEY = "tl_link_restored"  # scopes ("shared", "page:<path>") whose URL values this session has read
LINKED_KEY = "tl_link_applied"  # page keys the link that opened the page set, until the page asks (from_link)
PRESENT_KEY = "tl_present"
VIEW, HOME_VIEW = "view", "home"  # the page a written link belongs to


@dataclass(frozen=True)
class Param:
    """One linked value: ``name`` in the URL, ``key`` in st.session_state, ``kind`` how it is encoded."""

    name: str
    key: str
    kind: str = "str"  # str, int, float, bool, ints, strs, auto (int if it parses, else str), pair (a:b), pick (set:row)


def _p(name: str, key: str | None = None, kind: str = "str") -> Param:
    return Param(name, key or name, kind)


SHARED = (_p("scenario", state.SCENARIO_KEY), _p("model", state.MODEL_KEY), _p("variant", state.VARIANT_KEY),
          _p("slice", state.SLICE_KEY), _p("present", PRESENT_KEY, "bool"))



def _method_params() -> tuple[Param, ...]:
    """Every image method's settings, named as its params dataclass declares them (core/params.py)."""
    from core.attribution import get_method, method_names
    from core.params import link_kinds

    seen: dict[str, Param] = {}
    for name in method_names():
        method = get_method(name)
        for key, kind in link_kinds(method.params_type, method.prefix):
            seen.setdefault(key, Param(key, key, kind))
    return tuple(seen.values())


# Image attribution settings (the form's keys), shared by the pages that draw that form.
_METHOD_PARAMS = _method_params()

PAGE_PARAMS: dict[str, tuple[Param, ...]] = {
    "": (  # home
        _p("split", "home_split"), _p("classes", "home_classes", "ints"), _p("by", "home_filter_by"),
        _p("correct", "home_correctness"), _p("sort", "home_sort"), _p("page", "home_page", "int"),
    ),
    "calibration": (
        _p("models", "cal_models", "strs"), _p("bins", "cal_bins", "int"), _p("binning", "cal_strategy"),
        _p("recal", "cal_method"), _p("of", "cal_of", "auto"), _p("bin", "cal_bin", "int"),
    ),
    "images": (
        _p("classes", "img_classes", "ints"), _p("correct", "img_correctness"), _p("sort", "img_sort"),
        _p("images", "img_picks", "ints"), _p("target", "img_target"), _p("class", "img_target_class", "int"),
        _p("methods", "img_methods", "strs"), *_METHOD_PARAMS, _p("batch", "img_batch", "int"),
        _p("opacity", "img_opacity", "float"), _p("clip", "img_clip", "float"), _p("overlay", "img_overlay", "bool"),
    ),
    "text": (
        _p("classes", "text_classes", "ints"), _p("correct", "text_correctness"), _p("sort", "text_sort"),
        _p("doc", "text_doc", "int"), _p("samples", "lime_samples", "int"), _p("words", "lime_features", "int"),
        _p("selection", "lime_selection"), _p("seed", "lime_seed", "int"), _p("target", "lime_target", "auto"),
        _p("compare", "text_compare", "pair"), _p("methods", "text_methods", "strs"),
        _p("steps", "deletion_steps", "int"),
    ),
    "trust": (
        _p("images", "trust_picks", "ints"), _p("methods", "trust_methods", "strs"), _p("mode", "trust_mode"),
        _p("metric", "trust_metric"), _p("strip", "trust_strip_image", "int"), _p("steps", "trust_steps", "int"),
        _p("fill", "trust_fill"), _p("measure", "trust_agreement"), *_METHOD_PARAMS,
        _p("docs", "trust_text_picks", "ints"), _p("text_methods", "trust_text_methods", "strs"),
        _p("text_mode", "trust_text_mode"), _p("text_metric", "trust_text_metric"),
        _p("text_steps", "trust_text_steps", "int"),
    ),
    "shapley": (
        _p("rows", "shap_rows", "int"), _p("algorithm", "shap_algorithm"), _p("background", "shap_background"),
        _p("background_size", "shap_background_size", "int"), _p("target", "shap_target", "auto"),
        _p("row", "shap_focus", "int"), _p("feature", "shap_dependence", "auto"), _p("depth", "glass_depth", "int"),
    ),
    "uncertainty": (
        _p("source", "unc_source"), _p("members", "unc_members", "int"), _p("samples", "unc_samples", "int"),
        _p("epsilon", "unc_epsilon", "float"), _p("autoencoder", "unc_autoencoder", "bool"),
        _p("auroc", "unc_auroc_of"), _p("sets", "unc_sets", "strs"), _p("colour", "unc_colour"),
        _p("pick", "unc_pick", "pick"), _p("gallery", "unc_gallery_set"), _p("score", "unc_gallery_score"),
    ),
    "embeddings": (
        _p("layer", "emb_layer"), _p("points", "emb_split"), _p("method", "emb_method"),
        _p("standardize", "emb_standardize", "bool"), _p("pca", "emb_pca_dims", "int"),
        _p("perplexity", "emb_perplexity", "float"), _p("exaggeration", "emb_exaggeration", "float"),
        _p("iter", "emb_iter", "int"), _p("seed", "emb_seed", "int"), _p("neighbors", "emb_neighbors", "int"),
        _p("min_dist", "emb_min_dist", "float"), _p("metric", "emb_metric"), _p("colour", "emb_colour"),
        _p("point", "emb_point", "int"), _p("k", "emb_k", "int"), _p("adv", "emb_adv", "bool"),
        _p("eps", "emb_eps", "float"), _p("adv_n", "emb_adv_n", "int"),
    ),
    "slices": (
        _p("split", "slice_split"), _p("positive", "slice_positive"),
        _p("conditions", "slice_conditions", "int"), _p("sensitive", "slice_sensitive", "strs"),
        _p("compare", "slice_compare"),
    ),
    "data": (_p("pair", "data_pair", "int"),),
    "upload": (),
}


# -- encoding ---------------------------------------------------------------------------------------

def encode(kind: str, value: Any) -> str | None:
    """The URL text for ``value`` (None: not linkable, e.g. no value yet)."""
    if value is None:
        return None
    if kind == "bool":
        return "1" if value else "0"
    if kind in ("ints", "strs"):
        return ",".join(str(v) for v in value)
    if kind in ("pair", "pick"):
        return ":".join("" if v is None else str(v) for v in value)
    if kind == "float":
        return repr(float(value))
    return str(value)


def decode(kind: str, text: str) -> Any:
    """The session-state value for URL ``text``; raises ValueError when it does not parse."""
    if kind == "int":
        return int(text)
    if kind == "float":
        value = float(text)
        if value != value or value in (float("inf"), float("-inf")):
            raise ValueError(text)
        return value
    if kind == "bool":
        if text.lower() in ("1", "true", "yes", "on"):
            return True
        if text.lower() in ("0", "false", "no", "off"):
            return False
        raise ValueError(text)
    if kind == "ints":
        return [int(v) for v in text.split(",") if v.strip()]
    if kind == "strs":
        return [v for v in text.split(",") if v]
    if kind == "auto":
        return int(text) if text.lstrip("-").isdigit() else text
    if kind == "pair":
        first, _, second = text.partition(":")
        return (first, second or None)
    if kind == "pick":
        name, _, row = text.rpartition(":")
        if not name:
            raise ValueError(text)
        return (name, int(row))
    return text


# -- restore / publish ------------------------------------------------------------------------------

def _restore(params: tuple[Param, ...], scope: str) -> list[str]:
    """Copy the URL's values into session state, once per ``scope`` and session; returns the keys set.

    Only the first run of a session (shared values) or of a page in it reads the URL: a link opens
    a new session. Later runs never do, because the query string a rerun request carries can be
    older than the value the session holds (a widget changed right after the previous run wrote
    the URL), and applying it would undo the user's change.
    """
    restored = st.session_state.setdefault(RESTORED_KEY, set())
    if scope in restored:
        return []
    restored.add(scope)
    applied = []
    for p in params:
        text = st.query_params.get(p.name)
        if text is None:
            continue
        try:
            st.session_state[p.key] = decode(p.kind, text)
        except (ValueError, TypeError):
            continue  # a mangled link: the widget keeps its own value
        applied.append(p.key)
    return applied


def restore_shared() -> None:
    """Scenario, model, variant and presentation mode from the URL (call before the sidebar is drawn)."""
    applied = _restore(SHARED, "shared")
    names = list(state.session_uploads()) + _builtin_names()
    if state.SCENARIO_KEY in applied:
        name = st.session_state[state.SCENARIO_KEY]
        if name not in names:
            st.session_state.pop(state.SCENARIO_KEY, None)  # the sidebar falls back to the default scenario
            st.session_state["tl_link_problem"] = f"The link names a scenario this server does not have: '{name}'."
        elif state.MODEL_KEY not in applied:
            st.session_state.pop(state.MODEL_KEY, None)  # the sidebar falls back to the scenario's default


def _builtin_names() -> list[str]:
    from core import scenarios

    return list(scenarios.SCENARIOS)


def restore_page(url_path: str) -> None:
    """The page's linked widget values from the URL (call after st.navigation, before the page runs).

    Links written by :func:`publish` name their page (``view=``); values written for another page
    (several pages share names such as ``classes`` or ``sort``) are not applied here. A hand-written
    link without ``view`` applies to the page in its path.
    """
    view = st.query_params.get(VIEW)
    if view is not None and view != (url_path or HOME_VIEW):
        st.session_state.setdefault(RESTORED_KEY, set()).add(f"page:{url_path}")
        return
    applied = _restore(PAGE_PARAMS.get(url_path, ()), f"page:{url_path}")
    if applied:
        st.session_state[LINKED_KEY] = set(applied)


def from_link(key: str) -> bool:
    """True, once, when the link that opened this page set ``key``: the page may treat the value as the
    user's explicit choice (the uncertainty page then trains a linked ensemble without asking first)."""
    applied = st.session_state.get(LINKED_KEY)
    if applied and key in applied:
        applied.discard(key)
        return True
    return False


def current_params(url_path: str) -> dict[str, str]:
    """The query string of the current view: shared values, then the page's values that are set."""
    out: dict[str, str] = {}
    for p in SHARED:
        text = encode(p.kind, st.session_state.get(p.key))
        if text is not None and not (p.kind == "bool" and text == "0"):
            out[p.name] = text
    out[VIEW] = url_path or HOME_VIEW
    for p in PAGE_PARAMS.get(url_path, ()):
        if p.key not in st.session_state:
            continue
        text = encode(p.kind, st.session_state[p.key])
        if text is not None and p.name not in out:
            out[p.name] = text
    return out


def publish(url_path: str) -> None:
    """Write the current view to the URL (call after the page ran, also when it stopped early)."""
    params = current_params(url_path)
    if dict(st.query_params) != params:
        st.query_params.from_dict(params)


def link(url_path: str) -> str:
    """The absolute URL of the current view, as the browser addressed this server."""
    base = _base_url()
    path = f"{base.rstrip('/')}/{url_path}" if url_path else base
    query = urlencode(current_params(url_path))
    return f"{path}?{query}" if query else path


def _base_url() -> str:
    """The app's root URL in the user's browser (``st.context.url`` minus the page path)."""
    from urllib.parse import urlsplit, urlunsplit

    try:
        url = st.context.url or ""
    except Exception:  # noqa: BLE001 - outside a browser session (AppTest): a relative link
        url = ""
    if not url:
        return "/"
    parts = urlsplit(url)
    path = parts.path
    pages = [p for p in PAGE_PARAMS if p]
    for page in pages:
        if path.rstrip("/").endswith("/" + page):
            path = path.rstrip("/")[: -len(page)]
            break
    return urlunsplit((parts.scheme, parts.netloc, path or "/", "", ""))


def copy_link_control(url_path: str, where: Any = None) -> Any:
    """A popover (in the sidebar, or ``where``) with the view's link in a code block, whose copy button puts
    the link on the clipboard. Returns the block's placeholder, to refresh the link after the page ran."""
    where = where if where is not None else st.sidebar
    with where.popover("Copy link", icon=":material/link:", width="stretch"):
        st.caption("This view's link: scenario, model, sample, method and its settings. Copy it with the button "
                   "at the block's top right and send it; it reopens this view.")
        slot = st.empty()
        slot.code(link(url_path), language=None, wrap_lines=True)
    problem = st.session_state.pop("tl_link_problem", None)
    if problem:
        where.warning(problem, icon=":material/link_off:")
    return slot
