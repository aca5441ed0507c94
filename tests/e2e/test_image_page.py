"""The image explanations page in a real browser: the lecture's method grid on digits and MNIST."""

from __future__ import annotations

import re

import pytest

from core import scenarios
from tests.conftest import require_dataset
from tests.e2e import helpers

pytestmark = pytest.mark.e2e


def open_image_page(page, app_url, scenario: str) -> None:
    spec = scenarios.get_spec(scenario)
    require_dataset(spec.dataset)
    helpers.open_app(page, app_url)
    if scenario != scenarios.DEFAULT_SCENARIO:
        helpers.select_scenario(page, spec)
    helpers.wait_for_scenario(page, spec)
    helpers.sidebar(page).get_by_role("link", name="Image explanations").click()
    helpers.expect(helpers.title(page).filter(has_text="Image explanations")).to_be_visible(timeout=helpers.UI_TIMEOUT_MS)


def grid_titles(page) -> list[str]:
    """The column titles of the attribution grid (plotly annotations), each line joined by a space."""
    grid = helpers.main(page).locator(".stPlotlyChart").first
    helpers.expect(grid.locator("g.annotation-text-g").first).to_be_attached(timeout=helpers.LOAD_TIMEOUT_MS)
    # A title broken with <br> is drawn as one <tspan> per line, whose text contents run together.
    return grid.locator("g.annotation-text-g text").evaluate_all(
        "texts => texts.map(t => { const lines = t.querySelectorAll('tspan.line');"
        " return lines.length ? Array.from(lines).map(l => l.textContent).join(' ') : t.textContent; })")


@pytest.mark.parametrize("scenario", ["digits", "mnist"])
def test_the_lecture_grid_for_digit_images(page, app_url, screenshot_dir, scenario):
    open_image_page(page, app_url, scenario)
    titles = grid_titles(page)
    for column in ("Original", "Gradient", "SmoothGrad", "Guided BackProp", "Integrated Gradients", "Class probabilities"):
        assert column in titles, titles
    main = helpers.main(page)
    helpers.expect(main.get_by_text(re.compile(r"Integrated Gradients completeness"))).to_be_visible()
    helpers.expect(main.get_by_role("button", name=re.compile("Download the grid"))).to_be_visible()
    helpers.wait_settled(page)
    helpers.wait_painted(page)
    page.screenshot(path=str(screenshot_dir / f"images-{scenario}-grid.png"), full_page=True)
    helpers.assert_no_errors(page)
    # Four images by default: four rows of heatmaps (original + 4 methods = 5 per row, + overlays' backdrops).
    heatmaps = main.locator(".stPlotlyChart").first.locator("g.hm image")
    assert heatmaps.count() >= 4 * 5


def test_occlusion_and_grad_cam_columns_on_mistakes(page, app_url, screenshot_dir):
    open_image_page(page, app_url, "digits")
    helpers.click_radio(page, "Predictions", "incorrect")
    main = helpers.main(page)
    methods = main.get_by_role("combobox", name="Methods (columns)")
    helpers.add_options(page, methods, ("Occlusion", "Grad-CAM", "LRP"))
    helpers.expect(main.get_by_text(re.compile(r"^Occlusion: probability of the explained class"))).to_be_visible(
        timeout=helpers.LOAD_TIMEOUT_MS)
    # Each pick reruns the page: wait for the last one (LRP's column) before reading the titles.
    grid = main.locator(".stPlotlyChart").first
    helpers.expect(grid.locator("g.annotation-text-g text").filter(has_text="LRP")).to_be_attached(
        timeout=helpers.LOAD_TIMEOUT_MS)
    helpers.wait_settled(page)
    titles = grid_titles(page)
    assert {"Occlusion", "Grad-CAM", "LRP"} <= set(titles), titles
    helpers.wait_painted(page)
    page.screenshot(path=str(screenshot_dir / "images-digits-mistakes.png"), full_page=True)
    helpers.assert_no_errors(page)
    # The grid's row labels (y-axis titles of the first column): only mistakes were offered.
    texts = main.locator(".stPlotlyChart").first.locator("text").all_text_contents()
    labels = {t for t in texts if "→" in t}
    assert len(labels) == 4 and all("✗" in label for label in labels), labels


def test_an_uploaded_digit_is_explained(page, app_url, screenshot_dir, tmp_path):
    from PIL import Image, ImageDraw

    paper = Image.new("L", (120, 120), 255)  # a dark "7" drawn on white paper, as a phone photo would be
    ImageDraw.Draw(paper).line([(25, 25), (95, 25), (50, 100)], fill=0, width=14)
    path = tmp_path / "seven.png"
    paper.save(path)
    open_image_page(page, app_url, "digits")
    helpers.click_radio(page, "Images", "Upload an image")
    main = helpers.main(page)
    main.locator("input[type=file]").set_input_files(str(path))
    helpers.expect(main.get_by_text(re.compile(r"seven\.png: 120x120 px, shown to the model at 8x8, inverted"))).to_be_visible(
        timeout=helpers.LOAD_TIMEOUT_MS)
    titles = grid_titles(page)
    assert "Integrated Gradients" in titles
    helpers.wait_settled(page)
    helpers.wait_painted(page)
    page.screenshot(path=str(screenshot_dir / "images-upload.png"), full_page=True)
    helpers.assert_no_errors(page)
    # An upload has no true label: the page does not offer to explain it.
    radio = main.get_by_test_id("stRadio").filter(has_text="Explain the score of the")
    assert "true class" not in radio.inner_text()
