"""Every page of the navigation, for every built-in scenario, in a real browser.

The home page opens by a deep link naming the scenario; every other page is then reached as a user reaches it,
by the sidebar's navigation, and must still show the link's scenario. (A ``goto`` per page cost about twice the
renderer's CPU of a navigation, measured: ten visits 10.2 s against 4.7 s, and every browser test shares the 2
cores. Deep links to single pages are opened by the lecture and per-page tests.) Home is checked beyond its
heading: its model card (task, test accuracy) and its dataset browser. Each visit waits until the page's run has
finished and everything is painted, then checks that no exception or error is shown and saves a screenshot
(tests/e2e/screenshots/every-<scenario>-<page>.png); the seconds each page took go to every-<scenario>-seconds.json
beside them.
The pages' main interactions (pick a sample, change a method, select points, upload a model) are
exercised by the per-page browser tests beside this one.
"""

from __future__ import annotations

import json
import time

import pytest

from core.scenarios import SCENARIOS
from tests.conftest import require_dataset
from tests.e2e import helpers

pytestmark = pytest.mark.e2e

# url path -> the page's h1 (the navigation of app.py)
PAGES = {
    "": None,  # home: the h1 is the scenario's title
    "calibration": "Calibration",
    "images": "Image explanations",
    "text": "Text explanations",
    "trust": "Trust checks",
    "shapley": "Shapley values",
    "uncertainty": "Uncertainty",
    "embeddings": "Embeddings",
    "slices": "Slices and groups",
    "data": "Data checks",
    "upload": "Your model",
}


def open_view(page, heading: str, *, url: str | None = None, nav: str | None = None) -> float:
    """Open a page by its link (``url``) or by its sidebar entry (``nav``, the page's title in the navigation)."""
    started = time.perf_counter()
    if url is not None:
        page.goto(url)
        helpers.expect(page.locator('[data-testid="stApp"][data-test-connection-state="CONNECTED"]')).to_be_attached(
            timeout=helpers.UI_TIMEOUT_MS)
    else:
        helpers.sidebar(page).get_by_test_id("stSidebarNavLink").filter(has=page.get_by_text(nav, exact=True)).click()
    helpers.expect(helpers.title(page).filter(has_text=heading).first).to_be_visible(timeout=helpers.LOAD_TIMEOUT_MS)
    helpers.wait_settled(page)
    helpers.wait_visible_painted(page, timeout=helpers.LOAD_TIMEOUT_MS)
    job = helpers.main(page).get_by_text("runs in the background")
    if job.count():  # the view answered with a job's progress (MNIST's stress sets): the view it draws when done
        helpers.expect(job).to_have_count(0, timeout=helpers.LOAD_TIMEOUT_MS)
        helpers.wait_settled(page)
        helpers.wait_visible_painted(page, timeout=helpers.LOAD_TIMEOUT_MS)
    return time.perf_counter() - started


# Every view opens on its default: none needs minutes of first-use training on a cold cache (the uncertainty page
# opens on MC dropout, issue 19), and tests/pages/test_cold_defaults.py times every cold default view.


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_every_page_opens_for_the_scenario(name, page, app_url, screenshot_dir):
    spec = SCENARIOS[name]
    require_dataset(spec.dataset)
    timings = {}
    for path, heading in PAGES.items():
        if not path:
            timings["home"] = open_view(page, spec.title, url=f"{app_url}/?scenario={name}")
        else:
            timings[path] = open_view(page, heading, nav=heading)
            assert page.url.split("?")[0].rstrip("/").endswith(f"/{path}"), page.url
        helpers.assert_no_errors(page)
        helpers.expect(helpers.scenario_box(page)).to_have_value(spec.title)  # the link's scenario, not the default
        if not path:
            helpers.assert_home_page(page, spec)  # the model card and the dataset browser
        page.screenshot(path=str(screenshot_dir / f"every-{name}-{path or 'home'}.png"))
        if path in ("images", "trust") and spec.kind != "image" and spec.kind != "text":
            helpers.expect(helpers.main(page).get_by_test_id("stAlertContentInfo").first).to_be_visible()
    print(f"{name}: " + ", ".join(f"{p} {s:.1f} s" for p, s in timings.items()))
    # beside the screenshots, for reading a CI run's page times (pytest keeps no output of a passing test)
    (screenshot_dir / f"every-{name}-seconds.json").write_text(json.dumps(timings, indent=1))
