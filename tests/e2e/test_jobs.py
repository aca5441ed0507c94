"""Training as a background job, in a real browser (issue 22's done-when): two sessions asking for the same
deep ensemble share one job, and a reload finds its progress again.

A server of its own whose caches hold nothing but the digits CNN (copied in, so the test spends its time on the
ensemble it trains, not on the scenario's model): the session server's model cache may hold the ensemble's
members from an earlier run. Before the Train click the page's whole first run is drawn: a click on a button that
run is still redrawing was lost, or waited past its timeout, under the other worker's load.
"""

from __future__ import annotations

import json
import re
import shutil

import pytest

from core.embeddings.warm import WARMUP_ENV_VAR
from tests.conftest import require_dataset
from tests.e2e import helpers
from tests.e2e.conftest import _page_factory, streamlit_server

pytestmark = pytest.mark.e2e
RUNNING = re.compile(r"runs in the background")


def _records(cache) -> list[dict]:
    """The training jobs' records (the page scores the stress sets as a job of its own afterwards)."""
    found = [json.loads(p.read_text()) for p in sorted((cache / "jobs").glob("*.json"))]
    return [r for r in found if r["kind"] == "uncertainty_source"]


@pytest.fixture
def empty_server(request, e2e_available, browser_context, tmp_path):
    """(url, cache folder, page factory): a server of its own whose caches hold only the digits CNN, copied from
    this run's model store (the ensemble, not the scenario's model, is what the test trains)."""
    require_dataset("digits")
    from core import scenarios
    from core.store import model_store

    cache, models = tmp_path / "cache", tmp_path / "models"
    key = scenarios.load_model("digits", "cnn").key
    target = models / key[:2] / f"{key}.pkl"
    target.parent.mkdir(parents=True)
    shutil.copy2(model_store().path_for(key), target)
    env = {"TRUSTLENS_CACHE_DIR": str(cache), "TRUSTLENS_MODEL_CACHE_DIR": str(models), WARMUP_ENV_VAR: "0"}
    with streamlit_server(tmp_path, env=env) as url:
        pages = _page_factory(request, browser_context)
        yield url, cache, next(pages)
        next(pages, None)  # screenshots of every page when the test failed, then the pages close


def test_two_sessions_share_one_training_job_and_a_reload_finds_it(empty_server, screenshot_dir):
    url, cache, make = empty_server
    first = make()
    first.goto(f"{url}/uncertainty?scenario=digits&members=2")
    helpers.expect(helpers.title(first).filter(has_text="Uncertainty")).to_be_visible(timeout=helpers.LOAD_TIMEOUT_MS)
    # the default view drawn first (MC dropout; its stress sets are scored by a job of their own, whose progress
    # bar redraws every second): a click on a button a run is still redrawing is lost, or waits for a stable button
    # past its timeout under the other worker's load
    helpers.expect(helpers.main(first).locator(".js-plotly-plot").first).to_be_visible(timeout=helpers.LOAD_TIMEOUT_MS)
    helpers.wait_settled(first)
    helpers.wait_visible_painted(first, timeout=helpers.LOAD_TIMEOUT_MS)
    train = helpers.main(first).get_by_role("button", name=re.compile(r"^Train the deep ensemble \(about "))
    helpers.expect(train).to_be_visible(timeout=helpers.LOAD_TIMEOUT_MS)
    train.click()
    # the page answers at once with the job's progress instead of blocking on the training
    helpers.expect(helpers.main(first).get_by_text(RUNNING)).to_be_visible(timeout=helpers.UI_TIMEOUT_MS)
    helpers.expect(first.get_by_test_id("stProgress")).to_be_visible()
    assert "source=deep" in first.url  # the view's link names the source now: a reload asks for the same work

    # a second session asking for the same ensemble attaches to the running job
    second = make()
    second.goto(f"{url}/uncertainty?scenario=digits&source=deep&members=2")
    helpers.expect(helpers.main(second).get_by_text(re.compile(r"2 sessions asked for it"))).to_be_visible(
        timeout=helpers.LOAD_TIMEOUT_MS)
    second.screenshot(path=str(screenshot_dir / "jobs-second-session.png"))
    records = _records(cache)
    assert len(records) == 1 and records[0]["status"] in ("queued", "running"), records

    # a reload of the first session finds the job again, with its progress
    first.reload()
    helpers.expect(helpers.main(first).get_by_text(RUNNING)).to_be_visible(timeout=helpers.LOAD_TIMEOUT_MS)
    helpers.expect(first.get_by_test_id("stProgress")).to_be_visible()
    helpers.expect(first.get_by_test_id("stProgress")).to_contain_text(re.compile(r"so far"))
    first.screenshot(path=str(screenshot_dir / "jobs-reloaded.png"))

    # both show the ensemble once the one job is done
    for page in (first, second):
        helpers.expect(helpers.main(page).locator(".js-plotly-plot").get_by_text("member 2", exact=True).first
                       ).to_be_visible(timeout=600_000)
        helpers.wait_settled(page)
        helpers.assert_no_errors(page)
    records = _records(cache)
    assert len(records) == 1 and records[0]["status"] == "done", records
    assert records[0]["params"] == {"scenario": "digits", "model": "cnn", "variant": None, "kind": "deep", "n": 2}
