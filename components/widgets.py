"""Reusable widgets: the sidebar's scenario/model picker and the device line."""

from __future__ import annotations

import streamlit as st

from components import state
from core import scenarios


def _reset_model() -> None:
    # A new scenario has other models and variants: fall back to its defaults.
    spec = state.scenario_spec(st.session_state[state.SCENARIO_KEY])
    st.session_state[state.MODEL_KEY] = spec.default_model
    st.session_state[state.VARIANT_KEY] = spec.variants[0] if spec.variants else None


def scenario_sidebar() -> state.Selection:
    """Scenario, variant and model pickers in the sidebar; returns the selection."""
    preloaded = _preloaded_scenario()
    uploads = state.session_uploads()
    if preloaded and preloaded not in uploads:
        state.add_upload(preloaded, select=state.SCENARIO_KEY not in st.session_state)
        uploads = state.session_uploads()
    names = uploads + list(scenarios.SCENARIOS)
    pending = st.session_state.pop(state.PENDING_KEY, None)
    if pending in names:
        st.session_state[state.SCENARIO_KEY] = pending
        _reset_model()
    if st.session_state.get(state.SCENARIO_KEY) not in names:
        st.session_state[state.SCENARIO_KEY] = scenarios.DEFAULT_SCENARIO
    with st.sidebar:
        st.selectbox(
            "Scenario",
            names,
            key=state.SCENARIO_KEY,
            format_func=lambda n: state.scenario_spec(n).title,
            on_change=_reset_model,
            help="A dataset and the models trained on it. Digits and breast cancer work offline.",
        )
        spec = state.scenario_spec(st.session_state[state.SCENARIO_KEY])
        if spec.variants:
            if st.session_state.get(state.VARIANT_KEY) not in spec.variants:
                st.session_state[state.VARIANT_KEY] = spec.variants[0]
            st.radio("Data variant", spec.variants, key=state.VARIANT_KEY, horizontal=True,
                     help="'headers' keeps From:/Subject:/NNTP-Posting-Host: lines; 'no-headers' strips them.")
        if st.session_state.get(state.MODEL_KEY) not in spec.model_names:
            st.session_state[state.MODEL_KEY] = spec.default_model
        st.selectbox("Model", spec.model_names, key=state.MODEL_KEY)
        st.caption(spec.model(st.session_state[state.MODEL_KEY]).description)
    selection = state.current()
    from components import active_slice

    active_slice.sidebar(selection)
    return selection


def _preloaded_scenario() -> str | None:
    """The scenario ``python -m core serve`` / ``core.upload.byom.launch`` preloaded, or None; errors shown once in the sidebar."""
    import os

    from core.upload import byom

    if not os.environ.get(byom.PRELOAD_ENV):
        return None
    from components.cached import preloaded_scenario
    from core.errors import TrustLensError

    try:
        return preloaded_scenario()
    except TrustLensError as exc:
        st.sidebar.error(f"The model given to `serve` could not be opened: {exc.message}")
        return None


def device_caption() -> None:
    """The device line at the foot of the sidebar (imports torch, so call it after the page)."""
    from core.errors import TrustLensError

    try:
        label = _device_label()
    except TrustLensError as exc:
        st.sidebar.error(exc.message)
        return
    st.sidebar.caption(f"Device: **{label}**")


def _device_label() -> str:
    from components.cached import device_label

    return device_label()


def require_kind(sel: state.Selection, kind: str, icon: str) -> None:
    """Stop the page with a pointer to the right scenarios when the selected one is not of ``kind``."""
    if sel.spec.kind != kind:
        names = ", ".join(s.title for s in scenarios.SCENARIOS.values() if s.kind == kind)
        st.info(f"This page explains {kind} models: pick {'an' if kind[0] in 'aeiou' else 'a'} {kind} scenario in the "
                f"sidebar ({names}).", icon=icon)
        st.stop()


def scenario_test_split(sel: state.Selection):
    """(adapter, splits, test split, test probabilities) of the selected model; errors shown, page stopped."""
    from components import cached
    from components.feedback import guarded

    with guarded():
        splits = cached.scenario_data(sel.scenario, sel.variant)
        loaded = cached.trained_model(sel.scenario, sel.model, sel.variant)
    return loaded.adapter, splits, splits["test"], cached.predictions(sel.scenario, sel.model, sel.variant, "test")
