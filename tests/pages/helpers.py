"""One way to open a page of app.py in AppTest, shared by the page tests.

AppTest reaches a page only by ``switch_page`` after a first run of app.py (which opens Home). So a
session is: session state the sidebar widgets read (set before the first run), the first run, the
page's own widget state (set after it), the page's run, then the checks every page test makes.
Each test module keeps a small ``open_page`` of its own with its defaults (scenario keys, title,
timeout) on top of :func:`open_app`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from streamlit.testing.v1 import AppTest

from tests.conftest import ROOT

APP = str(ROOT / "app.py")
DEFAULT_TIMEOUT = 300  # a first use may train a model inside the run


def sidebar_state(scenario: str | None = None, model: str | None = None, variant: str | None = None) -> dict[str, str]:
    """The sidebar's selection as session state (keys left out when ``None``)."""
    return {key: value for key, value in (("tl_scenario", scenario), ("tl_model", model), ("tl_variant", variant))
            if value}


def check(at: AppTest, *, errors: bool = True) -> AppTest:
    """No exception, and (``errors``) no ``st.error`` on the page."""
    assert not at.exception, at.exception
    if errors:
        assert not at.error, [e.value for e in at.error]
    return at


def open_app(
    page: str | None = None,
    *,
    state: Mapping[str, Any] | None = None,
    page_state: Mapping[str, Any] | None = None,
    query: Mapping[str, str] | None = None,
    page_query: Mapping[str, str] | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    errors: bool = False,
    title: str | None = None,
) -> AppTest:
    """A session of app.py opened on ``page`` (``"pages/images.py"``; None: Home, after the first run).

    Parameters
    ----------
    state : mapping, optional
        Session state set before the first run (the sidebar's widgets accept it then).
    page_state : mapping, optional
        Session state set after the first run, before the page's run (the page's own widgets).
    query : mapping, optional
        A link's query string, set before the first run and put back before the page's run (the
        first run, on Home, writes Home's view to the URL).
    page_query : mapping, optional
        A query string set only before the page's run.
    errors : bool
        Also fail on an ``st.error`` (an exception always fails).
    title : str, optional
        The page's expected title.
    """
    at = AppTest.from_file(APP, default_timeout=timeout)
    for key, value in (state or {}).items():
        at.session_state[key] = value
    if query:
        at.query_params.update(query)
    at.run()
    _after_first_use(at)
    if page is not None:
        for key, value in (page_state or {}).items():
            at.session_state[key] = value
        if query or page_query:
            at.query_params.clear()
            at.query_params.update({**(query or {}), **(page_query or {})})
        at.switch_page(page).run()
        _after_first_use(at)
    check(at, errors=errors)
    if title is not None:
        assert at.title[0].value == title, [t.value for t in at.title]
    return at


def _after_first_use(at) -> None:
    """A model that was not trained yet trains as a background job (and the uncertainty page scores its stress
    sets as one) while the page shows its progress: finish it and run the page again, as the page does by itself
    in a browser (on a fresh machine, the first test to open a scenario trains its model)."""
    from core import jobs

    if any(s.kind in ("train_model", "uncertainty_report") for s in jobs.runner().jobs(active_only=True)):
        finish_jobs(at)


def finish_jobs(at, timeout: float = 600):
    """Wait until every job (core.jobs) of this process has ended, check that each succeeded, then run the page
    again: what a page shows after its background job, as the user sees it when the progress bar is done."""
    from core import jobs

    for status in jobs.runner().jobs(active_only=True):
        final = jobs.runner().wait(status.id, timeout)
        assert final.status == "done", f"{final.title}: {final.status} {final.error or ''}"
    return at.run()
