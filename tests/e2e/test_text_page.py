"""The text page in a real browser: the lecture's "which model do you trust?" and HTML escaping."""

from __future__ import annotations

import re

import pytest

from core import scenarios
from tests.conftest import require_dataset
from tests.e2e import helpers

pytestmark = pytest.mark.e2e


def open_text_page(page, app_url, model: str) -> None:
    require_dataset("newsgroups")
    spec = scenarios.get_spec("newsgroups")
    helpers.open_app(page, app_url)
    helpers.select_scenario(page, spec)
    helpers.wait_for_scenario(page, spec)
    helpers.choose_option(page, helpers.sidebar(page).get_by_role("combobox", name="Model", exact=True), model)
    helpers.expect(helpers.main(page).get_by_role("heading", level=3, name=f"Model card: {model}", exact=True)).to_be_visible(
        timeout=helpers.LOAD_TIMEOUT_MS)
    helpers.sidebar(page).get_by_role("link", name="Text explanations").click()
    helpers.expect(helpers.title(page).filter(has_text="Text explanations")).to_be_visible(timeout=helpers.UI_TIMEOUT_MS)


def words_with_weight(scope) -> list[str]:
    """Words shaded in a highlighted document (their tooltips start with 'word: +0.1234')."""
    return [re.match(r"^(\w+):", t).group(1) for t in scope.locator("span.tl-word").evaluate_all(
        "spans => spans.map(s => s.title)")]


def test_forest_relies_on_headers_logreg_without_headers_does_not(page, app_url, screenshot_dir):
    open_text_page(page, app_url, "forest")
    main = helpers.main(page)
    # Document #1 of the test split: an atheism post whose headers the forest latches on to.
    main.get_by_role("combobox", name=re.compile(r"^Test document")).click()
    page.get_by_role("option").filter(has_text=re.compile(r"^#1 ")).first.click()
    helpers.expect(main.get_by_role("heading", level=4, name=re.compile(r"^logreg \[no-headers\]"))).to_be_visible(
        timeout=helpers.LOAD_TIMEOUT_MS)
    helpers.expect(main.get_by_text(re.compile(r"as the top-ranked words are deleted")).first).to_be_attached(
        timeout=helpers.LOAD_TIMEOUT_MS)
    helpers.wait_settled(page)
    helpers.wait_painted(page)
    page.screenshot(path=str(screenshot_dir / "text-which-model.png"))
    helpers.assert_no_errors(page)
    helpers.expect(main.get_by_text(re.compile(r"appear only in the Usenet header")).first).to_be_visible()
    columns = main.get_by_test_id("stColumn").filter(has=page.get_by_role("heading", level=4))
    forest = columns.filter(has=page.get_by_role("heading", level=4, name=re.compile(r"^forest")))
    logreg = columns.filter(has=page.get_by_role("heading", level=4, name=re.compile(r"^logreg")))
    forest_words, logreg_words = words_with_weight(forest), words_with_weight(logreg)
    header = {"Posting", "Host", "NNTP", "Re", "Distribution", "edu"}
    assert len(header & set(forest_words)) >= 3, forest_words
    assert not {"Posting", "Host", "NNTP"} & set(logreg_words), logreg_words
    assert main.get_by_text("None of its top 6 words comes from the Usenet header").count() >= 1
    # The trust checks drew their charts.
    helpers.expect(main.get_by_text(re.compile(r"LIME weights over 5 seeds"))).to_be_visible()
    helpers.expect(main.get_by_text(re.compile(r"Random order \(mean of 10\) \(faithfulness"))).to_be_visible()
    main.get_by_text(re.compile(r"^Can this explanation be trusted")).scroll_into_view_if_needed()
    helpers.wait_painted(page)
    page.screenshot(path=str(screenshot_dir / "text-trust-checks.png"))


def test_pasted_html_is_shown_as_text_not_run(page, app_url, screenshot_dir):
    open_text_page(page, app_url, "logreg")
    main = helpers.main(page)
    helpers.click_radio(page, "Document", "Your own text")
    area = main.get_by_role("textbox", name=re.compile(r"^Paste a text"))
    helpers.expect(area).to_be_visible(timeout=helpers.UI_TIMEOUT_MS)
    hostile = ('<script>window.__tl_pwned = 1</script> God bless <img src=x onerror="window.__tl_pwned = 2"> '
               'the church, said the atheist <b>bold</b>')
    area.fill(hostile)
    area.press("Control+Enter")
    highlight = main.locator(".tl-highlight").first
    helpers.expect(highlight).to_contain_text("<script>window.__tl_pwned = 1</script>", timeout=helpers.LOAD_TIMEOUT_MS)
    helpers.wait_settled(page)
    helpers.expect(highlight).to_contain_text('<img src=x onerror="window.__tl_pwned = 2">')
    assert page.evaluate("() => window.__tl_pwned") is None
    assert main.locator(".tl-highlight img, .tl-highlight script, .tl-highlight b").count() == 0
    assert set(words_with_weight(highlight)) & {"God", "church", "atheist", "script", "img"}
    helpers.assert_no_errors(page)
    page.screenshot(path=str(screenshot_dir / "text-escaped.png"))


def test_shapley_page_shows_text_shap_beside_lime(page, app_url, screenshot_dir):
    open_text_page(page, app_url, "forest")
    helpers.sidebar(page).get_by_role("link", name="Shapley values").click()
    main = helpers.main(page)
    helpers.expect(main.get_by_role("heading", name=re.compile(r"^SHAP on the words of"))).to_be_visible(
        timeout=helpers.LOAD_TIMEOUT_MS)
    helpers.expect(helpers.metric(page, "Additivity error")).to_be_visible(timeout=helpers.LOAD_TIMEOUT_MS)
    helpers.wait_settled(page)
    helpers.wait_painted(page)
    main.get_by_role("heading", name=re.compile(r"^SHAP on the words of")).scroll_into_view_if_needed()
    page.screenshot(path=str(screenshot_dir / "shapley-text.png"))
    helpers.assert_no_errors(page)
    assert float(helpers.metric_value(page, "Additivity error")) < 1e-6
    shap_col = main.get_by_test_id("stColumn").filter(has=page.get_by_role("heading", level=4, name="SHAP (partition)"))
    assert len(words_with_weight(shap_col)) >= 3
