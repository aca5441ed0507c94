"""The Shapley page's bill-splitting game in a real browser."""

from __future__ import annotations

import re

import pytest

from tests.e2e import helpers

pytestmark = pytest.mark.e2e


def test_restaurant_game_shows_the_lecture_answer(page, app_url, screenshot_dir):
    helpers.open_app(page, app_url)
    helpers.sidebar(page).get_by_role("link", name="Shapley values").click()
    main = helpers.main(page)
    helpers.expect(main.get_by_role("heading", name="Shapley values", level=1)).to_be_visible(timeout=helpers.UI_TIMEOUT_MS)
    helpers.expect(main.get_by_text("Efficiency holds")).to_be_visible(timeout=helpers.UI_TIMEOUT_MS)
    helpers.wait_settled(page)
    helpers.wait_painted(page)
    page.screenshot(path=str(screenshot_dir / "shapley-game.png"))
    helpers.assert_no_errors(page)
    for player, value in (("Alice", "180.00"), ("Bob", "360.00"), ("Carol", "460.00")):
        helpers.expect(helpers.metric(page, player)).to_contain_text(value)


def open_shapley(page, app_url, scenario: str | None = None) -> None:
    from core import scenarios

    helpers.open_app(page, app_url)
    if scenario:
        spec = scenarios.get_spec(scenario)
        helpers.select_scenario(page, spec)
        helpers.wait_for_scenario(page, spec)
    helpers.sidebar(page).get_by_role("link", name="Shapley values").click()
    helpers.expect(helpers.main(page).get_by_role("heading", name="Shapley values", level=1)).to_be_visible(
        timeout=helpers.UI_TIMEOUT_MS)


def test_pixel_shap_on_digits(page, app_url, screenshot_dir):
    open_shapley(page, app_url)
    main = helpers.main(page)
    helpers.expect(main.get_by_role("heading", name="SHAP on the pixels of Digits (8x8) / cnn")).to_be_visible(
        timeout=helpers.LOAD_TIMEOUT_MS)
    helpers.expect(helpers.metric(page, "Gap / |score - base|")).to_be_visible(timeout=helpers.LOAD_TIMEOUT_MS)
    grid = main.locator(".stPlotlyChart").last
    helpers.expect(grid.get_by_text("Expected Gradients (SHAP)")).to_be_attached(timeout=helpers.LOAD_TIMEOUT_MS)
    helpers.wait_settled(page)
    helpers.wait_painted(page)
    page.screenshot(path=str(screenshot_dir / "shapley-image.png"), full_page=True)
    helpers.assert_no_errors(page)
    gap = float(helpers.metric_value(page, "Gap / |score - base|").rstrip("%"))
    assert 0 <= gap < 10


def test_tabular_shap_on_breast_cancer(page, app_url, screenshot_dir):
    open_shapley(page, app_url, "breast-cancer")
    main = helpers.main(page)
    helpers.expect(main.get_by_role("heading", name="SHAP on the features of Breast cancer (Wisconsin) / gboost")).to_be_visible(
        timeout=helpers.LOAD_TIMEOUT_MS)
    helpers.expect(main.locator(".stPlotlyChart").nth(3)).to_be_attached(timeout=helpers.LOAD_TIMEOUT_MS)
    helpers.wait_settled(page)
    helpers.wait_painted(page)
    page.screenshot(path=str(screenshot_dir / "shapley-tabular.png"), full_page=True)
    helpers.assert_no_errors(page)


def test_uploaded_rows_are_explained(page, app_url, screenshot_dir, tmp_path):
    from core.scenarios import load_data
    from core.upload.table_upload import template_csv

    csv = tmp_path / "my-passengers.csv"
    csv.write_bytes(template_csv(load_data("titanic")["test"], rows=7))
    open_shapley(page, app_url, "titanic")
    helpers.click_radio(page, "Rows to explain", "Your table (CSV)")
    main = helpers.main(page)
    main.locator("input[type=file]").set_input_files(str(csv))
    helpers.expect(main.get_by_text("my-passengers.csv: 7 rows.")).to_be_visible(timeout=helpers.LOAD_TIMEOUT_MS)
    helpers.expect(main.get_by_text(re.compile(r"^Why row 0: SHAP values"))).to_be_attached(timeout=helpers.LOAD_TIMEOUT_MS)
    helpers.wait_settled(page)
    helpers.wait_painted(page)
    page.screenshot(path=str(screenshot_dir / "shapley-upload.png"), full_page=True)
    helpers.assert_no_errors(page)
