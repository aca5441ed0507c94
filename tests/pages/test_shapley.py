"""AppTest of the Shapley page's bill-splitting game."""

from __future__ import annotations

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from core.tabular import shapley
from tests.pages.helpers import open_app


def open_page(**state) -> AppTest:
    """The page with ``state`` set before the first run (so the sidebar's widgets accept it)."""
    return open_app("pages/shapley.py", state=state, timeout=240)


IMAGE_METRICS = ("Mean base value", "Mean |efficiency gap|", "Gap / |score - base|")


def shown(at: AppTest) -> dict[str, float]:
    """The game's metrics (the default digits scenario also shows the image SHAP section's)."""
    return {m.label: float(m.value.replace(",", "")) for m in at.metric if m.label not in IMAGE_METRICS}


def test_default_game_is_the_restaurant_bill():
    at = open_page()
    assert not at.error
    assert shown(at) == {"Alice": 180.0, "Bob": 360.0, "Carol": 460.0}
    assert "Efficiency holds" in at.success[0].value
    orders = at.dataframe[0].value
    assert len(orders) == 6 + 1  # 3! join orders and the mean row
    assert orders.iloc[-1]["Bob"] == pytest.approx(360.0)


def test_editing_a_coalition_value_updates_the_shares():
    at = open_page()
    at.number_input(key="game_v_Alice|Bob|Carol_Alice,Bob,Carol").set_value(1300.0).run()
    expected = dict(shapley.RESTAURANT_BILL, **{"Alice,Bob,Carol": 1300.0})
    phi = shapley.shapley_values(shapley.Game.from_mapping(expected))
    got = shown(at)
    assert list(got) == ["Alice", "Bob", "Carol"]
    assert [got[p] for p in got] == pytest.approx(list(phi.round(2)))
    assert sum(got.values()) == pytest.approx(1300.0, abs=0.02)


def test_other_players_get_defaults_and_exact_values():
    at = open_page(game_players="Ann, Ben")
    assert not at.error
    assert len(at.number_input) == 3  # v(Ann), v(Ben), v(Ann, Ben)
    game = shapley.Game.from_mapping(shapley.default_values(["Ann", "Ben"]))
    phi = shapley.shapley_values(game)
    assert shown(at) == pytest.approx({"Ann": round(phi[0], 2), "Ben": round(phi[1], 2)})


@pytest.mark.parametrize("text, message", [("Solo", "2 to 5 players"), ("A, B, A", "distinct"),
                                           ("A, B, C, D, E, F", "2 to 5 players")])
def test_bad_player_lists_show_an_error(text, message):
    at = open_page(game_players=text)
    assert at.error and message in at.error[0].value
    assert not at.metric


def test_tabular_shap_section_matches_core_and_is_additive():
    from core.tabular.shap_tabular import ShapParams, background_data, explain_tabular
    from tests.conftest import require_dataset

    require_dataset("titanic")
    at = open_page(tl_scenario="titanic", tl_model="gboost", shap_rows=50)
    assert not at.error, [e.value for e in at.error]
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Algorithm"] == "shap/tree"
    assert float(metrics["Additivity error (max)"]) < 1e-6
    # the values behind the plots equal an independent call of the core explainer
    splits = scenarios_data("titanic")
    params = ShapParams()
    expl = explain_tabular(load("titanic", "gboost").adapter, splits["test"], np.arange(50),
                           background_data(splits["train"], params), params, "predicted")
    assert metrics["Mean base value"] == f"{float(np.mean(expl.base_values)):.4f}"
    waterfall = next(c for c in charts(at) if c["data"][0]["type"] == "waterfall")
    assert waterfall["layout"]["title"]["text"].startswith("Why row 0")
    assert at.main.code[-1].value.splitlines()[0].startswith("|--- Sex_male <=")  # the glass-box tree


def test_image_scenario_shows_pixel_shap_beside_integrated_gradients():
    at = open_page(shap_image_picks=[0, 5], shap_image_samples=100)  # digits
    assert not at.error
    spec = charts(at)[0]
    titles = [a["text"] for a in spec["layout"]["annotations"]]
    assert titles[:3] == ["Original", "Expected Gradients (SHAP)", "Integrated Gradients"]
    metrics = {m.label: m.value for m in at.metric}
    ratio = float(metrics["Gap / |score - base|"].rstrip("%")) / 100
    assert 0 <= ratio < 0.1  # Monte Carlo error of 100 samples on the trained digits CNN
    # The numbers are the engine's for the same images, background and seed.
    from core.attribution import explain_images, image_context
    from core.attribution.expected_gradients import ExpectedGradientsParams

    adapter = load("digits", "cnn").adapter
    test = scenarios_data("digits")["test"]
    x = np.asarray(test.x[[0, 5]], dtype=np.float32)
    result = explain_images(adapter, x, adapter.predict(x), "expected_gradients", ExpectedGradientsParams(samples=100),
                            context=image_context(scenarios_data("digits")["train"]))
    assert metrics["Mean base value"] == f"{np.mean(result.extras['base_value']):.3f}"


def test_scikit_learn_image_model_gets_the_reason_instead():
    at = open_page(tl_model="logreg")
    assert not at.error
    assert any("need a differentiable model" in i.value for i in at.info)


def scenarios_data(name):
    from core import scenarios

    return scenarios.load_data(name)


def load(name, model):
    from core import scenarios

    return scenarios.load_model(name, model)


def charts(at: AppTest) -> list[dict]:
    import json

    return [json.loads(c.proto.spec) for c in at.get("plotly_chart")]


@pytest.mark.slow  # 2.2 s: the newsgroups forest
def test_text_scenario_shows_shap_words_beside_lime():
    from tests.conftest import require_dataset

    require_dataset("newsgroups")
    at = open_page(tl_scenario="newsgroups", tl_model="logreg", tl_variant="headers", shap_text_doc=1,
                   shap_text_evals=300)
    assert not at.error
    assert [h.value for h in at.header] == ["SHAP on the words of 20 Newsgroups: atheism vs christian / logreg"]
    metrics = {m.label: m.value for m in at.metric}
    assert float(metrics["Additivity error"]) < 1e-6
    assert -1.0 <= float(metrics["LIME vs SHAP: rank correlation"]) <= 1.0
    bodies = [h.proto.body for h in at.get("html")]
    assert len(bodies) == 2 and all('class="tl-word"' in b for b in bodies)
    assert "atheism" in bodies[0]  # the post's most telling word is shaded by SHAP too
