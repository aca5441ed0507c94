"""The embeddings page in a real browser: the map draws, a box selection shows its summary, a click its sample."""

from __future__ import annotations

import os
import re

import pytest

from core.scenarios import SCENARIOS
from tests.conftest import require_dataset
from tests.e2e import helpers

pytestmark = pytest.mark.e2e

MAP = '[data-testid="stPlotlyChart"]:has(.scattergl, canvas)'

# Page coordinates of data point (x, y) of the first Plotly chart on the page.
_TO_PAGE_JS = """([x, y]) => {
  const plot = document.querySelector('[data-testid="stMain"] .js-plotly-plot');
  const layout = plot._fullLayout, box = plot.getBoundingClientRect();
  return [box.left + layout.xaxis._offset + layout.xaxis.l2p(x), box.top + layout.yaxis._offset + layout.yaxis.l2p(y)];
}"""
# The x / y data of the points of the first trace (a class of the true-label colouring).
_FIRST_TRACE_JS = """() => {
  const plot = document.querySelector('[data-testid="stMain"] .js-plotly-plot');
  const t = plot._fullData[0];
  return [Array.from(t.x), Array.from(t.y), t.customdata.map(c => c[0])];
}"""


def open_embeddings(page, app_url, spec) -> None:
    helpers.open_app(page, app_url)
    if spec.name != "digits":
        helpers.select_scenario(page, spec)
        helpers.wait_for_scenario(page, spec)
    helpers.sidebar(page).get_by_role("link", name="Embeddings").click()
    main = helpers.main(page)
    helpers.expect(main.get_by_role("heading", name="Embeddings", level=1)).to_be_visible(timeout=helpers.LOAD_TIMEOUT_MS)
    helpers.expect(main.get_by_text(re.compile(r"^Click a point for its sample"))).to_be_visible(
        timeout=helpers.LOAD_TIMEOUT_MS)
    helpers.wait_settled(page)
    helpers.wait_painted(page)
    helpers.assert_no_errors(page)


def box_select_cluster(page) -> int:
    """Drag a box around the first class's points (their middle 60 %); returns how many were inside."""
    xs, ys, _ = page.evaluate(_FIRST_TRACE_JS)
    xs, ys = sorted(xs), sorted(ys)
    lo_x, hi_x = xs[int(0.2 * len(xs))], xs[int(0.8 * len(xs))]
    lo_y, hi_y = ys[int(0.2 * len(ys))], ys[int(0.8 * len(ys))]
    page.locator(f'{MAP} .modebar-btn[data-val="select"]').first.click()
    x0, y0 = page.evaluate(_TO_PAGE_JS, [lo_x, hi_y])
    x1, y1 = page.evaluate(_TO_PAGE_JS, [hi_x, lo_y])
    page.mouse.move(x0, y0)
    page.mouse.down()
    page.mouse.move((x0 + x1) / 2, (y0 + y1) / 2, steps=5)
    page.mouse.move(x1, y1, steps=5)
    page.mouse.up()
    return len(xs)


@pytest.mark.parametrize("name", ["digits"] + (["mnist"] if os.environ.get("E2E_MNIST_MAP") == "1" else []))
def test_box_selection_shows_class_histogram_accuracy_and_gallery(name, page, app_url, screenshot_dir):
    spec = SCENARIOS[name]
    require_dataset(spec.dataset)
    open_embeddings(page, app_url, spec)
    main = helpers.main(page)
    # digits (1,797 samples) opens on every split, MNIST (70,000) on its test split (core/lecture/defaults.py)
    points = {"digits": "1,797 points, all splits", "mnist": "10,000 points, test"}[name]
    helpers.expect(main.locator(".js-plotly-plot").first.get_by_text(re.compile(rf"PCA of relu3 \({points}"))).to_be_visible()
    page.screenshot(path=str(screenshot_dir / f"embeddings-{name}-map.png"))

    box_select_cluster(page)
    heading = main.get_by_role("heading", name=re.compile(r"^Selection: [\d,]+ points$"))
    helpers.expect(heading).to_be_visible(timeout=helpers.UI_TIMEOUT_MS)
    helpers.wait_settled(page)
    helpers.wait_painted(page)
    page.screenshot(path=str(screenshot_dir / f"embeddings-{name}-selection.png"))
    helpers.assert_no_errors(page)
    selected = int(re.search(r"([\d,]+)", heading.inner_text()).group(1).replace(",", ""))
    assert selected >= 10
    helpers.expect(helpers.metric(page, "Accuracy of the selection")).to_be_visible()
    helpers.expect(main.locator(".js-plotly-plot").get_by_text("True class of the selected points")).to_be_visible()
    assert main.get_by_test_id("stImage").count() == min(32, selected)  # the gallery


def test_clicking_a_point_shows_its_sample_and_neighbours(page, app_url, screenshot_dir):
    spec = SCENARIOS["digits"]
    open_embeddings(page, app_url, spec)
    xs, ys, rows = page.evaluate(_FIRST_TRACE_JS)
    # Click an isolated-enough point: the one farthest from the trace's centre is rarely covered by others.
    i = max(range(len(xs)), key=lambda j: (xs[j] - sum(xs) / len(xs)) ** 2 + (ys[j] - sum(ys) / len(ys)) ** 2)
    x, y = page.evaluate(_TO_PAGE_JS, [xs[i], ys[i]])
    main = helpers.main(page)
    heading = main.get_by_role("heading", name=re.compile(r"^Point #\d+: \w+ sample \d+$"))
    for attempt in range(3):
        # WebGL traces find the point under the cursor on hover: move there, let the hover label show, then click.
        page.mouse.move(x - 3, y - 3)
        page.mouse.move(x, y, steps=3)
        helpers.expect(page.locator(".hoverlayer .hovertext").first).to_be_visible(timeout=helpers.UI_TIMEOUT_MS)
        page.mouse.down()
        page.mouse.up()
        try:
            helpers.expect(heading).to_be_visible(timeout=helpers.UI_TIMEOUT_MS)
            break
        except AssertionError:
            # Seen once with the CPU overloaded (load 14 on 2 cores, two browser suites at once): the hover label
            # showed but the click's selection never reached the server. A user clicks again; so does the test,
            # and fails after three clicks that select nothing.
            if attempt == 2:
                raise
            helpers.wait_settled(page)  # a late rerun of the first click may still show it: never click it away
            if heading.count():
                break
    helpers.wait_settled(page)
    helpers.wait_painted(page)
    page.screenshot(path=str(screenshot_dir / "embeddings-digits-point.png"))
    helpers.assert_no_errors(page)
    helpers.expect(main.locator(".js-plotly-plot").first.get_by_text("nearest neighbours (activations)")).to_be_visible()
    assert main.get_by_test_id("stImage").count() == 1 + 8  # the sample and its 8 neighbours
