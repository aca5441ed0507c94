"""The trust checks page in a real browser on the MNIST CNN."""

from __future__ import annotations

import re

import pytest

from core import scenarios
from tests.conftest import require_dataset
from tests.e2e import helpers

pytestmark = pytest.mark.e2e

# helpers.wait_painted waits for every chart and table, but those on hidden tabs are never drawn.
_VISIBLE_PAINTED = """() => {
  const visible = el => el.offsetParent !== null;
  if (document.querySelector('[data-testid="stSkeleton"]')) return false;
  for (const chart of document.querySelectorAll('.stPlotlyChart')) {
    if (visible(chart) && !chart.querySelector('g.xy, g.cartesianlayer')) return false;
  }
  return true;
}"""


def wait_visible_painted(page) -> None:
    page.wait_for_function(_VISIBLE_PAINTED, timeout=60_000)
    page.wait_for_timeout(500)


def test_randomisation_and_deletion_on_mnist(page, app_url, screenshot_dir):
    require_dataset("mnist")
    spec = scenarios.get_spec("mnist")
    helpers.open_app(page, app_url)
    helpers.select_scenario(page, spec)
    helpers.wait_for_scenario(page, spec)
    helpers.sidebar(page).get_by_role("link", name="Trust checks").click()
    main = helpers.main(page)
    helpers.expect(main.get_by_text(re.compile(r"^Gradient passes"))).to_be_visible(timeout=helpers.LOAD_TIMEOUT_MS)
    helpers.expect(main.get_by_text(re.compile(r"Similarity to the original model's map")).first).to_be_attached(
        timeout=helpers.LOAD_TIMEOUT_MS)
    helpers.wait_settled(page)
    wait_visible_painted(page)
    page.screenshot(path=str(screenshot_dir / "trust-randomisation.png"), full_page=True)
    helpers.assert_no_errors(page)
    main.get_by_text("Compare with the same model trained on shuffled labels").click()
    helpers.expect(main.get_by_text(re.compile(r"^Trained on shuffled labels: test accuracy"))).to_be_visible(
        timeout=helpers.LOAD_TIMEOUT_MS)
    helpers.expect(main.get_by_text(re.compile(r"model trained on shuffled labels differ|learned nothing")).first).to_be_visible(
        timeout=helpers.LOAD_TIMEOUT_MS)
    wait_visible_painted(page)
    page.screenshot(path=str(screenshot_dir / "trust-data-randomisation.png"), full_page=True)
    helpers.assert_no_errors(page)
    page.get_by_role("tab", name="Deletion / insertion").click()
    helpers.expect(main.get_by_text(re.compile(r"^Integrated Gradients: faithful"))).to_be_visible(
        timeout=helpers.LOAD_TIMEOUT_MS)
    wait_visible_painted(page)
    page.screenshot(path=str(screenshot_dir / "trust-deletion.png"), full_page=True)
    page.get_by_role("tab", name="Agreement").click()
    helpers.expect(main.get_by_text(re.compile(r"^Agreement between methods")).first).to_be_attached(
        timeout=helpers.LOAD_TIMEOUT_MS)
    wait_visible_painted(page)
    page.screenshot(path=str(screenshot_dir / "trust-agreement.png"), full_page=True)
    helpers.assert_no_errors(page)


def test_text_checks_on_the_newsgroups_bag_model(page, app_url, screenshot_dir):
    require_dataset("newsgroups")
    spec = scenarios.get_spec("newsgroups")
    helpers.open_app(page, app_url)
    helpers.select_scenario(page, spec)
    helpers.wait_for_scenario(page, spec)
    helpers.choose_option(page, helpers.sidebar(page).get_by_role("combobox", name="Model", exact=True), "bag")
    main = helpers.main(page)
    helpers.expect(main.get_by_role("heading", level=3, name="Model card: bag", exact=True)).to_be_visible(
        timeout=helpers.LOAD_TIMEOUT_MS)
    helpers.sidebar(page).get_by_role("link", name="Trust checks").click()
    helpers.expect(main.get_by_text(re.compile(r"^LIME (passes|fails): its word weights"))).to_be_visible(
        timeout=helpers.LOAD_TIMEOUT_MS)
    helpers.expect(main.get_by_text(re.compile(r"Similarity to the original model's word weights")).first).to_be_attached(
        timeout=helpers.LOAD_TIMEOUT_MS)
    helpers.wait_settled(page)
    wait_visible_painted(page)
    page.screenshot(path=str(screenshot_dir / "trust-text-randomisation.png"), full_page=True)
    helpers.assert_no_errors(page)
    page.get_by_role("tab", name="Deletion / insertion").click()
    helpers.expect(main.get_by_text(re.compile(r"^Leave one word out: (faithful|mixed|does not)"))).to_be_visible(
        timeout=helpers.LOAD_TIMEOUT_MS)
    wait_visible_painted(page)
    page.screenshot(path=str(screenshot_dir / "trust-text-deletion.png"), full_page=True)
    page.get_by_role("tab", name="Agreement").click()
    helpers.expect(main.get_by_text(re.compile(r"^Agreement between methods")).first).to_be_attached(
        timeout=helpers.LOAD_TIMEOUT_MS)
    wait_visible_painted(page)
    page.screenshot(path=str(screenshot_dir / "trust-text-agreement.png"), full_page=True)
    helpers.assert_no_errors(page)
