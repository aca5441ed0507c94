"""The selection shared by every page (scenario, model, variant) in ``st.session_state``."""

from __future__ import annotations

from dataclasses import dataclass

import streamlit as st

from core import scenarios

SCENARIO_KEY, MODEL_KEY, VARIANT_KEY = "tl_scenario", "tl_model", "tl_variant"


@dataclass(frozen=True)
class Selection:
    scenario: str
    model: str
    variant: str | None

    @property
    def spec(self) -> scenarios.ScenarioSpec:
        return scenarios.get_spec(self.scenario)


def current() -> Selection:
    """The sidebar's selection (defaults before the sidebar has run)."""
    name = st.session_state.get(SCENARIO_KEY, scenarios.DEFAULT_SCENARIO)
    spec = scenarios.get_spec(name)
    model = st.session_state.get(MODEL_KEY, spec.default_model)
    if model not in spec.model_names:
        model = spec.default_model
    return Selection(name, model, spec.variant(st.session_state.get(VARIANT_KEY)) if spec.variants else None)
