"""Deterministic waits and UI actions for the browser tests.

Rule (see TESTING.md): after a click never wait on the script state alone (it races); wait for
content that only the rerun produces, then for the run to settle (script not running and no stale
element left), then assert.
"""

from __future__ import annotations

import os
import re
import time

from core.scenarios import ScenarioSpec

# First use of a scenario may train its model inside the server (a model trained earlier in the
# session is cached on disk and in the server process). The limit is a backstop, not a speed check
# (tests/pages/test_cold_defaults.py times the cold default views): in a parallel run two servers and
# two browsers share the 2 cores with the other worker's tests, and a cold view can take 3x its idle time.
LOAD_TIMEOUT_MS = int(float(os.environ.get("E2E_LOAD_TIMEOUT_S", "300")) * 1000)
UI_TIMEOUT_MS = 30_000


def expect(*args, **kwargs):
    """Playwright's ``expect`` with the UI timeout as its default instead of 5 s (see ``new_context`` in
    tests/e2e/conftest.py): a state the app reaches at once can still take seconds on the loaded 2-core machine."""
    from playwright.sync_api import expect as _expect

    _expect.set_options(timeout=UI_TIMEOUT_MS)
    return _expect(*args, **kwargs)


def main(page):
    return page.get_by_test_id("stMain")


def sidebar(page):
    return page.get_by_test_id("stSidebar")


def title(page):
    """The page's own h1 (the sidebar's "TrustLens" title is an h1 too, so stay in stMain)."""
    return main(page).get_by_role("heading", level=1)


def wait_settled(page, timeout: int = LOAD_TIMEOUT_MS) -> None:
    """The script has finished its run and every element of the previous run was replaced."""
    expect(page.locator('[data-test-script-state="notRunning"]')).to_be_attached(timeout=timeout)
    expect(page.locator('[data-testid="stElementContainer"][data-stale="true"]')).to_have_count(0, timeout=timeout)


_PAINTED_JS = """() => {
  const main = document.querySelector('[data-testid="stMain"]');
  if (!main || document.querySelector('[data-testid="stSkeleton"]')) return false;
  for (const img of main.querySelectorAll('[data-testid="stImage"] img'))
    if (!img.complete || img.naturalWidth === 0) return false;
  for (const chart of main.querySelectorAll('[data-testid="stPlotlyChart"]'))
    if (!chart.querySelector('.js-plotly-plot .main-svg g[class$="tick"]')) return false;  // xtick, x2tick...
  for (const grid of main.querySelectorAll('[data-testid="stDataFrame"]'))
    if (!grid.querySelector('canvas')) return false;
  return true;
}"""


def wait_painted(page, timeout: int = 60_000) -> None:
    """Settled is not painted: lazy elements show skeletons, images and charts load afterwards.

    Wait until no skeleton is left, every thumbnail has loaded, every Plotly chart has drawn its
    axes and every dataframe its canvas, so a screenshot shows what a user sees.
    """
    page.wait_for_function(_PAINTED_JS, timeout=timeout)


_VISIBLE_PAINTED_JS = """() => {
  const main = document.querySelector('[data-testid="stMain"]');
  if (!main || document.querySelector('[data-testid="stSkeleton"]')) return false;
  const shown = (el) => el.offsetParent !== null;
  for (const img of main.querySelectorAll('[data-testid="stImage"] img'))
    if (shown(img) && (!img.complete || img.naturalWidth === 0)) return false;
  for (const chart of main.querySelectorAll('[data-testid="stPlotlyChart"]'))
    if (shown(chart) && !chart.querySelector('.js-plotly-plot .main-svg .cartesianlayer, .js-plotly-plot .main-svg .polarlayer'))
      return false;  // drawn (image grids hide their axes, so ticks cannot be the signal)
  return true;
}"""


def wait_visible_painted(page, timeout: int = 60_000) -> None:
    """:func:`wait_painted` for what is visible only: a chart in a tab that is not open is never drawn,
    and waiting for it would only run into the timeout."""
    page.wait_for_function(_VISIBLE_PAINTED_JS, timeout=timeout)


def open_app(page, url: str, timeout: int = LOAD_TIMEOUT_MS) -> float:
    """Load the app and wait for its first full render; returns the seconds it took."""
    started = time.perf_counter()
    page.goto(url)
    expect(page.locator('[data-testid="stApp"][data-test-connection-state="CONNECTED"]')).to_be_attached(timeout=UI_TIMEOUT_MS)
    expect(title(page)).to_be_visible(timeout=timeout)
    expect(metric(page, "Test accuracy")).to_be_visible(timeout=timeout)
    wait_settled(page, timeout)
    wait_painted(page)
    return time.perf_counter() - started


def scenario_box(page):
    return sidebar(page).get_by_role("combobox", name="Scenario", exact=True)


def choose_option(page, combobox, option: str) -> None:
    """Open a selectbox by clicking it and click one of its options (the real UI path)."""
    combobox.click()
    choice = page.get_by_role("option", name=option, exact=True)
    expect(choice).to_be_visible(timeout=UI_TIMEOUT_MS)
    choice.click()


def add_options(page, combobox, options, attempts: int = 3) -> None:
    """Add options to a multiselect one at a time, as a user would, and make sure each one stuck.

    Each pick reruns the page. A pick made while the previous pick's rerun is still running was once
    lost under load (CI, parallel run: the last column never came), so wait for every pick's run to
    settle, then check the selection's chips and pick again what is missing.
    """
    box = combobox.locator("xpath=ancestor::*[@data-testid='stMultiSelect'][1]")
    for _ in range(attempts):
        missing = [o for o in options if box.get_by_role("button", name=f"Remove {o}", exact=True).count() == 0]
        if not missing:
            return
        for option in missing:
            choose_option(page, combobox, option)
            page.keyboard.press("Escape")
            wait_settled(page)
        time.sleep(0.5)  # let a late rerun replace the chips before they are counted again
        wait_settled(page)
    missing = [o for o in options if box.get_by_role("button", name=f"Remove {o}", exact=True).count() == 0]
    assert not missing, f"picked {missing} {attempts} times and they did not stay selected"


def select_scenario(page, spec: ScenarioSpec) -> None:
    choose_option(page, scenario_box(page), spec.title)


def metric(page, label: str):
    label_el = page.get_by_test_id("stMetricLabel").filter(has_text=re.compile(rf"^\s*{re.escape(label)}\s*$"))
    return main(page).get_by_test_id("stMetric").filter(has=label_el)


def metric_value(page, label: str) -> str:
    return metric(page, label).get_by_test_id("stMetricValue").inner_text().strip()


def wait_for_scenario(page, spec: ScenarioSpec, timeout: int = LOAD_TIMEOUT_MS) -> None:
    """Content that only a run for ``spec`` produces, then a settled, painted page.

    During a rerun the previous run's elements stay on the page (stale) beside the new ones, so
    only the title (always the first element, replaced in place) is waited on before the run has
    settled; the rest is checked once no stale element is left.
    """
    expect(title(page).filter(has_text=re.compile(rf"^\s*{re.escape(spec.title)}\s*$"))).to_be_visible(timeout=timeout)
    wait_settled(page, timeout)
    wait_painted(page)
    assert [t.strip() for t in title(page).all_inner_texts()] == [spec.title]
    card = main(page).get_by_role("heading", level=3, name=f"Model card: {spec.default_model}", exact=True)
    expect(card).to_be_visible(timeout=UI_TIMEOUT_MS)
    expect(metric(page, "Test accuracy")).to_be_visible(timeout=UI_TIMEOUT_MS)
    expect(scenario_box(page)).to_have_value(spec.title)


def assert_no_errors(page) -> None:
    exceptions = page.get_by_test_id("stException")
    assert exceptions.count() == 0, f"Streamlit exception on the page: {exceptions.all_inner_texts()}"
    errors = page.get_by_test_id("stAlertContentError")
    assert errors.count() == 0, f"error alert on the page: {errors.all_inner_texts()}"


def browser_summary(page) -> tuple[int, int]:
    """(matching, total) from the dataset browser's "N of M samples match" caption."""
    text = main(page).get_by_text(re.compile(r"^\d+ of \d+ samples match")).inner_text()
    found = re.match(r"^(\d+) of (\d+) samples match", text.strip())
    assert found, text
    return int(found.group(1)), int(found.group(2))


def assert_home_page(page, spec: ScenarioSpec) -> str:
    """Home's model card and dataset browser for ``spec`` (already rendered): the task, a test accuracy in
    [0, 100] %, and the browser's first page for this kind of data. Returns the accuracy as shown."""
    assert metric_value(page, "Task") == f"{len(spec.class_names)}-class"
    accuracy = metric_value(page, "Test accuracy")
    assert accuracy.endswith("%") and 0.0 <= float(accuracy[:-1]) <= 100.0, accuracy
    matching, total = browser_summary(page)
    assert matching == total > 0
    if spec.kind == "image":
        expect(main(page).get_by_test_id("stImage")).to_have_count(min(48, total))
    else:
        expect(main(page).get_by_test_id("stDataFrame")).to_have_count(1)
    if spec.kind == "text":
        expect(main(page).get_by_test_id("stCode")).to_have_count(1)
    return accuracy


def click_radio(page, label: str, option: str) -> None:
    radio = main(page).get_by_test_id("stRadio").filter(has_text=label)
    radio.get_by_test_id("stRadioOption").filter(has_text=re.compile(rf"^\s*{re.escape(option)}\s*$")).click()


def wait_for_browser_summary_change(page, timeout: int = LOAD_TIMEOUT_MS) -> tuple[int, int]:
    """After a filter that drops samples: wait for a summary that no longer counts them all.

    The previous run's summary may still be on the page (stale) beside the new one, so wait for
    the new text itself, then for the run to settle, and only then read the (single) summary.
    """
    changed = main(page).get_by_text(re.compile(r"^(\d+) of (?!\1 samples)\d+ samples match"))
    expect(changed.first).to_be_visible(timeout=timeout)
    wait_settled(page, timeout)
    wait_painted(page)
    return browser_summary(page)
