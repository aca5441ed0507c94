"""The lecture hall: a copied link reopens the same view in another browser; presentation mode steps
through curated examples on a projector-sized page."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.e2e import helpers

pytestmark = pytest.mark.e2e


def wait_page(page, heading: str) -> None:
    helpers.expect(helpers.title(page).filter(has_text=heading).first).to_be_visible(timeout=helpers.LOAD_TIMEOUT_MS)
    helpers.wait_settled(page)
    helpers.wait_painted(page, timeout=helpers.LOAD_TIMEOUT_MS)


def chips(page, label: str) -> list[str]:
    box = helpers.main(page).get_by_test_id("stMultiSelect").filter(has_text=label)
    return [t.strip() for t in box.locator("[data-tag]").all_inner_texts() if t.strip()]


def test_a_copied_link_reopens_the_same_view(new_page, app_url, screenshot_dir):
    a = new_page()
    a.goto(f"{app_url}/images?scenario=digits&images=5,9&methods=integrated_gradients,occlusion&ig_steps=80"
           "&opacity=0.4")
    wait_page(a, "Image explanations")
    helpers.assert_no_errors(a)
    picked = chips(a, "Test images")
    assert len(picked) == 2 and picked[0].startswith("#5") and picked[1].startswith("#9"), picked
    a.screenshot(path=str(screenshot_dir / "link-opened.png"))
    query = parse_qs(urlsplit(a.url).query)
    assert query["images"] == ["5,9"] and query["ig_steps"] == ["80"] and query["scenario"] == ["digits"], a.url

    # the sidebar's "Copy link" shows the view's absolute URL
    helpers.sidebar(a).get_by_role("button", name=re.compile("Copy link")).click()
    code = a.get_by_test_id("stCode").filter(has_text="/images?")
    helpers.expect(code).to_be_visible(timeout=helpers.UI_TIMEOUT_MS)
    link = code.inner_text().strip()
    assert link.startswith(app_url + "/images?"), link
    a.keyboard.press("Escape")

    b = new_page()  # a colleague: another page, another Streamlit session (a session is a websocket, not a cookie)
    b.goto(link)
    wait_page(b, "Image explanations")
    helpers.assert_no_errors(b)
    assert chips(b, "Test images") == picked
    assert chips(b, "Methods (columns)") == chips(a, "Methods (columns)")
    b.screenshot(path=str(screenshot_dir / "link-reopened.png"))


def test_presentation_mode_steps_through_the_curated_examples(page, app_url, screenshot_dir):
    page.goto(f"{app_url}/images?scenario=digits&present=1&methods=gradient")
    wait_page(page, "Image explanations")
    helpers.assert_no_errors(page)
    # the sidebar starts collapsed and the controls are folded into a popover
    helpers.expect(helpers.sidebar(page)).to_have_attribute("data-collapsed", "true")
    helpers.expect(helpers.main(page).get_by_test_id("stPopover")).to_have_count(1)
    bar = helpers.main(page).get_by_text(re.compile(r"^\d+ curated examples"))
    helpers.expect(bar).to_be_visible()

    seen = []
    for step in (1, 2):
        page.get_by_role("button", name=re.compile("Next example")).click()
        header = helpers.main(page).get_by_text(re.compile(rf"^Example {step} of \d+:"))
        helpers.expect(header).to_be_visible(timeout=helpers.LOAD_TIMEOUT_MS)
        helpers.wait_settled(page)
        helpers.wait_painted(page)
        helpers.assert_no_errors(page)
        images = parse_qs(urlsplit(page.url).query)["images"]
        seen.append(images[0])
        page.screenshot(path=str(screenshot_dir / f"present-images-{step}.png"))
    assert seen[0] != seen[1], "the second example shows another image"
    assert "mistake" in helpers.main(page).inner_text().lower()
