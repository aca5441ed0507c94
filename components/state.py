"""The selection shared by every page (scenario, model, variant) in ``st.session_state``."""

from __future__ import annotations

from dataclasses import dataclass

import streamlit as st

from core import scenarios

SCENARIO_KEY, MODEL_KEY, VARIANT_KEY = "tl_scenario", "tl_model", "tl_variant"
SLICE_KEY = "tl_slice"  # the sidebar's active slice (components/active_slice.py), linked as ``slice``
UPLOADS_KEY, PENDING_KEY = "tl_uploads", "tl_pending_scenario"  # this session's uploaded scenarios; one to select next run


def scenario_spec(name: str) -> scenarios.ScenarioSpec:
    """A built-in scenario's spec, or the spec of an upload registered in this process."""
    from core.upload import byom

    if byom.is_upload(name):
        return byom.get(name).spec
    return scenarios.get_spec(name)


def session_uploads() -> list[str]:
    """Names of the uploaded scenarios this session may see (its own uploads + the launcher's preload)."""
    from core.upload import byom

    return [n for n in st.session_state.get(UPLOADS_KEY, []) if byom.registered(n)]


def add_upload(name: str, select: bool = True) -> None:
    """Show ``name`` in this session's scenario picker (and select it on the next run)."""
    uploads = list(st.session_state.get(UPLOADS_KEY, []))
    if name not in uploads:
        uploads.append(name)
    st.session_state[UPLOADS_KEY] = uploads
    if select:
        st.session_state[PENDING_KEY] = name


@dataclass(frozen=True)
class Selection:
    scenario: str
    model: str
    variant: str | None

    @property
    def spec(self) -> scenarios.ScenarioSpec:
        return scenario_spec(self.scenario)


def _ensure_app_shell() -> None:
    """Rerun through app.py when Streamlit ran a page script on its own.

    Because the project has a ``pages/`` folder, a process whose very first request is a deep
    link (``/calibration``) runs that page in Streamlit's legacy multipage mode, without app.py
    (no sidebar, no st.navigation), until some run calls st.navigation. Switching the legacy
    flag off and rerunning makes the same URL go through app.py.
    """
    try:
        from streamlit.runtime.pages_manager import PagesManager
    except ImportError:  # pragma: no cover - internal module moved; the root URL still works
        return
    if PagesManager.uses_pages_directory:
        PagesManager.uses_pages_directory = False
        st.rerun()


def current() -> Selection:
    """The sidebar's selection (defaults before the sidebar has run).

    Every page calls this first; it also makes sure the page runs inside app.py's shell.
    """
    _ensure_app_shell()
    name = st.session_state.get(SCENARIO_KEY, scenarios.DEFAULT_SCENARIO)
    if name not in scenarios.SCENARIOS and name not in session_uploads():
        name = scenarios.DEFAULT_SCENARIO  # an upload this process no longer holds, or another session's
    spec = scenario_spec(name)
    model = st.session_state.get(MODEL_KEY, spec.default_model)
    if model not in spec.model_names:
        model = spec.default_model
    return Selection(name, model, spec.variant(st.session_state.get(VARIANT_KEY)) if spec.variants else None)
