"""Real-browser fixtures: one Streamlit server and one headless Chromium for the whole session.

- The server is ``python -m streamlit run app.py`` on a free port, started from the repository
  root with this process's environment (the top-level conftest has already set
  TRUSTLENS_CACHE_DIR and TRUSTLENS_DATA_DIR in ``os.environ``, so the server and the tests share
  the model cache). It is ready when ``GET /_stcore/health`` answers ``ok`` and is stopped by its
  PID at teardown (terminate, then kill).
- The browser is Debian's Chromium driven by the ``playwright`` package (never ``playwright install``: it
  downloads a browser): its headless shell, /usr/bin/chromium-headless-shell, when installed, else
  /usr/bin/chromium in its headless mode. The shell is the same Blink without the browser's UI layer: on the
  sweep of every page of MNIST and newsgroups it spent 30-36 s of CPU where full Chromium spent 39-41 s
  (docs/testing.md). When neither is there, or playwright is missing, the tests skip, unless
  ``E2E_REQUIRED=1`` (set by .ci/run when it installed Chromium): then they fail.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import ROOT

CHROMIUM_CANDIDATES = (Path("/usr/bin/chromium-headless-shell"), Path("/usr/bin/chromium"))


def _executable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


CHROMIUM = next((p for p in CHROMIUM_CANDIDATES if _executable(p)), CHROMIUM_CANDIDATES[0])
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
VIEWPORT = {"width": 1400, "height": 2600}  # tall: Streamlit scrolls inside stMain, not the page
SCREENSHOTS = Path(__file__).resolve().parent / "screenshots"  # git-ignored
HEALTH_TIMEOUT_S = 60.0


def _unavailable_reason() -> str | None:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError as exc:
        return f"the playwright package is not installed ({exc}); pip install -r requirements-dev.txt"
    if not _executable(CHROMIUM):
        return ("neither /usr/bin/chromium-headless-shell nor /usr/bin/chromium is installed: apt-get install -y "
                "--no-install-recommends chromium-headless-shell "
                "(do not run `playwright install`)")
    return None


def _skip_or_fail(reason: str) -> None:
    if os.environ.get("E2E_REQUIRED") == "1":
        pytest.fail(f"E2E_REQUIRED=1 but {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def e2e_available() -> None:
    reason = _unavailable_reason()
    if reason:
        _skip_or_fail(reason)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
            return response.status == 200 and response.read().decode().strip() == "ok"
    except OSError:
        return False


def _tail(path: Path, n: int = 4000) -> str:
    try:
        return path.read_text(errors="replace")[-n:]
    except OSError:
        return "<no server log>"


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


@contextlib.contextmanager
def streamlit_server(log_dir: Path, env: dict[str, str] | None = None) -> Iterator[str]:
    """Run app.py under ``streamlit run`` on a free port; yields its base URL once healthy."""
    with streamlit_process(log_dir, env=env) as (url, _proc):
        yield url


@contextlib.contextmanager
def streamlit_process(log_dir: Path, port: int | None = None,
                      env: dict[str, str] | None = None) -> Iterator[tuple[str, subprocess.Popen]]:
    """:func:`streamlit_server` that also yields the server process (bench/load.py reads its memory).

    ``port``: default a free one; ``env``: added to this process's environment for the server.
    """
    port = port or _free_port()
    url = f"http://127.0.0.1:{port}"
    log_path = log_dir / "streamlit.log"
    cmd = [
        sys.executable, "-m", "streamlit", "run", "app.py",
        "--server.headless", "true", "--server.port", str(port), "--server.address", "127.0.0.1",
        "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none",
    ]
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, cwd=ROOT, env={**os.environ, **(env or {})}, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + HEALTH_TIMEOUT_S
        while not _healthy(url):
            if proc.poll() is not None:
                pytest.fail(f"streamlit exited with code {proc.returncode} before it was healthy:\n{_tail(log_path)}")
            if time.monotonic() > deadline:
                pytest.fail(f"streamlit not healthy after {HEALTH_TIMEOUT_S:.0f} s:\n{_tail(log_path)}")
            time.sleep(0.2)
        yield url, proc
    finally:
        _stop(proc)


@pytest.fixture(scope="session")
def app_url(e2e_available, browser_context, tmp_path_factory) -> Iterator[str]:
    """Base URL of a Streamlit server running app.py for the whole test session.

    A warm-up session renders the app once before any test runs, so the default scenario's model
    is trained (when the cache is cold) outside the tests' own time limits and no test depends on
    being the first session of the process (test_server_start.py covers that case on servers of
    its own).

    No browser test draws a UMAP map, so the server skips UMAP's background compile
    (``TRUSTLENS_UMAP_WARMUP=0``): 60-75 s of one of the machine's two cores per server, taken from
    the other tests (tests/core/test_umap_warm.py tests the warm-up itself).
    """
    from core.embeddings.warm import WARMUP_ENV_VAR
    from tests.e2e import helpers

    with streamlit_server(tmp_path_factory.mktemp("e2e-server"), env={WARMUP_ENV_VAR: "0"}) as url:
        page = browser_context.new_page()
        try:
            helpers.open_app(page, url)
        finally:
            page.close()
        yield url


@pytest.fixture(scope="session")
def browser(e2e_available):
    from playwright.sync_api import sync_playwright

    manager = sync_playwright().start()
    try:
        chromium = manager.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()
    finally:
        manager.stop()


@pytest.fixture(scope="session")
def browser_context(browser):
    """One browser context for the session's pages: each page (tab) is still a Streamlit session of its own (a
    session is a websocket, not a cookie), and the context's HTTP and code caches are kept, so a page does not
    fetch and compile Streamlit's JavaScript again. Measured on the data page, eight loads: 33 s in a fresh
    context each, 26 s in one context. Tests that need a context of their own (ten concurrent sessions, the
    servers of the shared-store test) open one."""
    context = new_context(browser)
    try:
        yield context
    finally:
        context.close()


def new_context(browser):
    """A browser context with the suite's viewport and the suite's patience.

    Playwright's defaults (30 s for a navigation, 5 s for an ``expect``) are for a machine with cores to spare. On
    the 2-core CI machine a reload next to the ten-session test or a training job waited past 30 s for its load
    event (tests/e2e/test_jobs.py failed so and passed on its rerun, 140 s lost): a navigation gets the load
    timeout, and any other action the UI timeout. A test that needs a state soon still says its own timeout.
    """
    from tests.e2e import helpers

    context = browser.new_context(viewport=VIEWPORT)
    context.set_default_navigation_timeout(helpers.LOAD_TIMEOUT_MS)
    context.set_default_timeout(helpers.UI_TIMEOUT_MS)
    return context


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)


@pytest.fixture
def new_page(request, browser_context, app_url) -> Iterator[Callable[[], object]]:
    """Factory: a new page (a fresh Streamlit session) in the session's browser context, tall viewport.

    When the test fails, every page it opened is saved as screenshots/FAILED-<test>-<n>.png.
    """
    yield from _page_factory(request, browser_context)


def _page_factory(request, context) -> Iterator[Callable[[], object]]:
    pages = []

    def make():
        pages.append(context.new_page())
        return pages[-1]

    yield make
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name)
        # pytest-rerunfailures prints nothing of a failure whose rerun passed: its reason is kept beside the pages
        (SCREENSHOTS / f"FAILED-{name}.txt").write_text(str(report.longrepr))
        for n, page in enumerate(pages):
            try:
                page.screenshot(path=str(SCREENSHOTS / f"FAILED-{name}-{n}.png"))
            except Exception:  # noqa: BLE001 - best effort, never mask the failure
                pass
    for page in pages:
        page.close()


@pytest.fixture
def page(new_page):
    return new_page()


@pytest.fixture(scope="session")
def screenshot_dir() -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS
