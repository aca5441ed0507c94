"""Many browser sessions at once against one server: one Chromium, one context (one Streamlit
session) per user, driven concurrently with Playwright's async API.

Shared by ``tests/e2e/test_many_sessions.py`` (10 sessions: success and no leaked state) and
``bench/load.py`` (10 and 30 sessions: latency per interaction and the server's memory). The sync
helpers in ``tests/e2e/helpers.py`` cannot drive pages concurrently (Playwright's sync API runs one
call at a time), so this module uses their locators (they only build selectors) and waits on the
same conditions with the async API.

Each session follows a :class:`Plan`: open the app, pick its scenario and model in the sidebar (or
upload its own model), switch to the Calibration page, change the recalibration method and pick a
bin. Every step's latency runs from the action to the new content being visible, the script run
settled and the page painted. Afterwards, when every session has finished, each one is checked for
its own state only (its scenario, model, method and bin, and only its own uploads in the picker).
"""

from __future__ import annotations

import asyncio
import re
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.scenarios import DEFAULT_SCENARIO, SCENARIOS
from tests.e2e import helpers

CONNECTED = '[data-testid="stApp"][data-test-connection-state="CONNECTED"]'
NOT_RUNNING = '[data-test-script-state="notRunning"]'
STALE = '[data-testid="stElementContainer"][data-stale="true"]'
METHODS = ("temperature", "platt", "isotonic")
BIN_LABEL = "Bin (or click a bar in the diagram)"
UPLOAD_BUTTON = "Check with a dry run and add to the sidebar"
UPLOAD_TITLE = re.compile(r"^Your model")
KINDS = ("open", "scenario", "model", "upload", "page", "method", "sample")


@dataclass(frozen=True)
class Plan:
    """What one session does. ``upload`` = (model file, data file): the session adds its own model
    on the 'Your model' page instead of picking ``scenario`` / ``model``."""

    index: int
    scenario: str
    model: str
    method: str
    bin_position: int
    upload: tuple[Path, Path] | None = None

    @property
    def title(self) -> str:
        return SCENARIOS[self.scenario].title

    def method_caption(self) -> str:
        """What the reliability diagram's title says for this recalibration method."""
        return "after temperature scaling" if self.method == "temperature" else f"after {self.method}"


def make_plans(n: int, scenarios: list[str], uploads: dict[int, tuple[Path, Path]] | None = None) -> list[Plan]:
    """``n`` plans that differ from their neighbours: scenario cycles fastest, then the model;
    the method and the bin position follow the index."""
    plans = []
    for i in range(n):
        name = scenarios[i % len(scenarios)]
        models = SCENARIOS[name].model_names
        model = models[(i // len(scenarios) + (1 if len(models) > 1 else 0)) % len(models)]
        plans.append(Plan(i, name, model, METHODS[i % len(METHODS)], i, (uploads or {}).get(i)))
    return plans


@dataclass
class Outcome:
    plan: Plan
    latencies: dict[str, float] = field(default_factory=dict)
    bin_label: str | None = None
    error: str | None = None
    leaks: list[str] = field(default_factory=list)
    seen: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.error is None and not self.leaks


@dataclass
class SlowJob:
    """A session that starts a cold t-SNE of every MNIST point on the Embeddings page before the
    others start, so their latencies are measured while it computes (``seed`` makes it cold)."""

    seed: int
    started_s: float | None = None
    finished_s: float | None = None
    still_running_when_others_done: bool | None = None
    error: str | None = None


@dataclass
class RunResult:
    outcomes: list[Outcome]
    wall_s: float
    slow_job: SlowJob | None = None


# -- async versions of helpers' waits ------------------------------------------------------------
def expect(*args, **kwargs):
    from playwright.async_api import expect as _expect

    return _expect(*args, **kwargs)


async def _settled(page, timeout: int) -> None:
    await expect(page.locator(NOT_RUNNING)).to_be_attached(timeout=timeout)
    await expect(page.locator(STALE)).to_have_count(0, timeout=timeout)


async def _painted(page, timeout: int) -> None:
    await page.wait_for_function(helpers._PAINTED_JS, timeout=timeout)


async def _done(page, timeout: int) -> None:
    await _settled(page, timeout)
    await _painted(page, timeout)


LOST_CHOICES: list[str] = []  # selections the app dropped and that were made again (see _choose)


async def _choose(page, combobox, option: str, timeout: int, attempts: int = 3) -> None:
    """Pick ``option`` in a selectbox and wait until the box shows it.

    A choice made while the previous run's reruns are still arriving was seen to be dropped (the
    box went back to its old value); it is made again, up to ``attempts`` times, and recorded in
    ``LOST_CHOICES`` so the benchmark reports it instead of hiding it.
    """
    for attempt in range(attempts):
        await _option_labels(page, combobox, timeout)
        await page.get_by_role("option", name=option, exact=True).click()
        try:
            await expect(combobox).to_have_value(option, timeout=15_000 if attempt < attempts - 1 else timeout)
            return
        except AssertionError:
            LOST_CHOICES.append(option)
            await _settled(page, timeout)


async def _choose_and_see(page, combobox, option: str, content, timeout: int, attempts: int = 3) -> None:
    """Pick ``option`` and wait for ``content`` (what the rerun for it draws).

    When the box has gone back to another value by then, the app dropped the choice after taking
    it: recorded in ``LOST_CHOICES`` and made again.
    """
    for attempt in range(attempts):
        await _choose(page, combobox, option, timeout)
        try:
            await expect(content).to_be_visible(timeout=20_000)
            return
        except AssertionError:
            if attempt == attempts - 1 or await combobox.input_value() == option:
                await expect(content).to_be_visible(timeout=timeout)  # still on it, only slow
                return
            LOST_CHOICES.append(f"{option} (reverted to {await combobox.input_value()})")
            await _settled(page, timeout)


def _model_box(page):
    return helpers.sidebar(page).get_by_role("combobox", name="Model", exact=True)


def _bin_box(page):
    return helpers.main(page).get_by_role("combobox", name=BIN_LABEL, exact=True)


async def _go_to(page, link: str, heading: str, timeout: int) -> None:
    await helpers.sidebar(page).get_by_role("link", name=link, exact=True).click()
    await expect(helpers.title(page).filter(has_text=re.compile(rf"^\s*{re.escape(heading)}"))).to_be_visible(
        timeout=timeout)


# -- one session ---------------------------------------------------------------------------------
class _Clock:
    def __init__(self, outcome: Outcome) -> None:
        self.outcome = outcome

    def step(self, kind: str):
        clock = self

        class _Step:
            async def __aenter__(self):
                self.started = time.perf_counter()

            async def __aexit__(self, exc_type, exc, tb):
                if exc_type is None:
                    clock.outcome.latencies[kind] = time.perf_counter() - self.started
                return False

        return _Step()


async def _open(page, url: str, timeout: int) -> None:
    await page.goto(url, timeout=timeout)  # Playwright's default (30 s) is too short for 30 sessions on 2 cores
    await expect(page.locator(CONNECTED)).to_be_attached(timeout=timeout)
    await expect(helpers.title(page)).to_be_visible(timeout=timeout)
    await expect(helpers.metric(page, "Test accuracy")).to_be_visible(timeout=timeout)
    await _done(page, timeout)


async def _upload(page, plan: Plan, timeout: int) -> None:
    model_path, data_path = plan.upload
    main = helpers.main(page)
    await _go_to(page, "Your model", "Your model", timeout)
    await _settled(page, timeout)
    dropzones = page.get_by_test_id("stFileUploaderDropzoneInput")
    await dropzones.nth(0).set_input_files(str(model_path))
    await expect(main.get_by_text("2. The data")).to_be_visible(timeout=timeout)
    await _settled(page, timeout)
    await dropzones.nth(1).set_input_files(str(data_path))
    await expect(main.get_by_role("button", name=UPLOAD_BUTTON)).to_be_visible(timeout=timeout)
    await _settled(page, timeout)
    await main.get_by_role("button", name=UPLOAD_BUTTON).click()
    await expect(main.get_by_text(re.compile("Added .* to the sidebar"))).to_be_visible(timeout=timeout)
    await expect(helpers.scenario_box(page)).to_have_value(UPLOAD_TITLE, timeout=timeout)
    await _settled(page, timeout)


async def run_plan(page, url: str, plan: Plan, outcome: Outcome, timeout: int) -> None:
    """The interactions of one session; latencies go into ``outcome`` (errors propagate)."""
    clock = _Clock(outcome)
    main = helpers.main(page)
    async with clock.step("open"):
        await _open(page, url, timeout)
    if plan.upload is not None:
        async with clock.step("upload"):
            await _upload(page, plan, timeout)
    else:
        spec = SCENARIOS[plan.scenario]
        if plan.scenario != DEFAULT_SCENARIO:
            async with clock.step("scenario"):
                await _choose_and_see(page, helpers.scenario_box(page), spec.title, helpers.title(page).filter(
                    has_text=re.compile(rf"^\s*{re.escape(spec.title)}\s*$")), timeout)
                await _done(page, timeout)
        if plan.model != spec.default_model:
            async with clock.step("model"):
                await _choose_and_see(page, _model_box(page), plan.model, main.get_by_role(
                    "heading", level=3, name=f"Model card: {plan.model}", exact=True), timeout)
                await _done(page, timeout)
    async with clock.step("page"):
        await _go_to(page, "Calibration", "Calibration", timeout)
        await expect(_bin_box(page)).to_be_visible(timeout=timeout)
        await _done(page, timeout)
    async with clock.step("method"):
        await main.get_by_role("radio", name=plan.method, exact=True).click()  # segmented control options are radios
        await expect(main.locator(".gtitle").filter(has_text=plan.method_caption())).to_be_visible(
            timeout=timeout)
        await _done(page, timeout)
    async with clock.step("sample"):
        box = _bin_box(page)
        labels = await _option_labels(page, box, timeout)
        label = labels[plan.bin_position % len(labels)]
        await page.get_by_role("option", name=label, exact=True).click()
        await expect(box).to_have_value(label, timeout=timeout)
        await _done(page, timeout)
        outcome.bin_label = label


async def _option_labels(page, box, timeout: int) -> list[str]:
    """Open a selectbox's list and return its options' labels (the list stays open).

    A click that lands while the page re-renders can leave the list closed: close and retry.
    """
    options = page.get_by_role("option")
    deadline = time.monotonic() + timeout / 1000
    while True:
        await box.click()
        try:
            await expect(options.first).to_be_visible(timeout=5000)
            return [(t or "").strip() for t in await options.all_inner_texts()]
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            await page.keyboard.press("Escape")


async def _scenario_options(page, timeout: int) -> list[str]:
    box = helpers.scenario_box(page)
    options = page.get_by_role("option")
    texts = await _option_labels(page, box, timeout)
    await page.keyboard.press("Escape")
    await expect(options).to_have_count(0, timeout=timeout)
    return texts


async def check_own_state(page, plan: Plan, outcome: Outcome, timeout: int) -> None:
    """Record in ``outcome.leaks`` everything this session shows that is not its own."""
    main = helpers.main(page)
    await _settled(page, timeout)
    seen = {
        "scenario": await helpers.scenario_box(page).input_value(),
        "model": await _model_box(page).input_value(),
        "title": [t.strip() for t in await helpers.title(page).all_inner_texts()],
        "diagram": [t.strip() for t in await main.locator(".gtitle").all_text_contents()],
        "bin": await _bin_box(page).input_value(),
    }
    seen["scenario_options"] = await _scenario_options(page, timeout)
    outcome.seen = seen
    expected_model = "uploaded" if plan.upload is not None else plan.model
    if plan.upload is not None:
        if not UPLOAD_TITLE.match(seen["scenario"]):
            outcome.leaks.append(f"scenario {seen['scenario']!r}, expected this session's upload")
    elif seen["scenario"] != plan.title:
        outcome.leaks.append(f"scenario {seen['scenario']!r}, expected {plan.title!r}")
    if seen["model"] != expected_model:
        outcome.leaks.append(f"model {seen['model']!r}, expected {expected_model!r}")
    if seen["title"] != ["Calibration"]:
        outcome.leaks.append(f"page {seen['title']!r}, expected ['Calibration']")
    reliability = [t for t in seen["diagram"] if t.startswith("Reliability diagram")]
    if len(reliability) != 1 or plan.method_caption() not in reliability[0]:
        outcome.leaks.append(f"reliability diagram {reliability!r}, expected one '{plan.method_caption()}'")
    if seen["bin"] != outcome.bin_label:
        outcome.leaks.append(f"bin {seen['bin']!r}, expected {outcome.bin_label!r}")
    uploads = [o for o in seen["scenario_options"] if UPLOAD_TITLE.match(o)]
    expected_uploads = 1 if plan.upload is not None else 0
    if len(uploads) != expected_uploads:
        outcome.leaks.append(f"{len(uploads)} uploaded scenarios in the picker ({uploads!r}), expected {expected_uploads}")
    builtin = [s.title for s in SCENARIOS.values()]
    if [o for o in seen["scenario_options"] if not UPLOAD_TITLE.match(o)] != builtin:
        outcome.leaks.append(f"scenario options {seen['scenario_options']!r}, expected the built-ins {builtin!r}")


# -- the slow job --------------------------------------------------------------------------------
async def start_slow_job(page, url: str, job: SlowJob, timeout: int) -> None:
    """Open the Embeddings page on MNIST (all points), set a fresh seed and start t-SNE; returns
    once its progress bar shows (the computation runs in the server while the others start)."""
    main = helpers.main(page)
    await _open(page, url, timeout)
    await _choose(page, helpers.scenario_box(page), SCENARIOS["mnist"].title, timeout)
    await expect(helpers.title(page).filter(has_text=SCENARIOS["mnist"].title)).to_be_visible(timeout=timeout)
    await _settled(page, timeout)
    await _go_to(page, "Embeddings", "Embeddings", timeout)
    await expect(main.get_by_role("radio", name="t-SNE", exact=True)).to_be_visible(timeout=timeout)
    await _settled(page, timeout)
    await main.get_by_text("Parameters", exact=True).click()
    seed = main.get_by_label("Seed", exact=True)
    await expect(seed).to_be_visible(timeout=timeout)
    await seed.fill(str(job.seed))
    await seed.press("Enter")
    await expect(seed).to_have_value(str(job.seed), timeout=timeout)
    await _settled(page, timeout)
    await main.get_by_role("radio", name="t-SNE", exact=True).click()
    job.started_s = time.perf_counter()
    await expect(main.get_by_test_id("stProgress").first).to_be_visible(timeout=timeout)


async def _slow_job_running(page) -> bool:
    return await page.locator('[data-test-script-state="running"]').count() > 0


# -- everything ----------------------------------------------------------------------------------
async def _run(url: str, plans: list[Plan], *, timeout_ms: int, slow_job: SlowJob | None,
               viewport: dict[str, int], screenshot_dir: Path | None, log: Callable[[str], None]) -> RunResult:
    from playwright.async_api import async_playwright

    from tests.e2e.conftest import CHROMIUM, CHROMIUM_ARGS

    outcomes = [Outcome(plan) for plan in plans]
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            contexts = [await browser.new_context(viewport=viewport) for _ in plans]
            for context in contexts:  # clicks, uploads, screenshots: the same patience as the waits
                context.set_default_timeout(timeout_ms)
            pages = [await c.new_page() for c in contexts]
            slow_page = None
            if slow_job is not None:
                slow_page = await (await browser.new_context(viewport=viewport)).new_page()
                try:
                    await start_slow_job(slow_page, url, slow_job, timeout_ms)
                    log(f"slow job started (t-SNE of MNIST, seed {slow_job.seed})")
                except Exception as exc:  # noqa: BLE001 - reported, the others still run
                    slow_job.error = f"{type(exc).__name__}: {exc}".splitlines()[0]
            started = time.perf_counter()

            async def session(page, outcome: Outcome) -> None:
                try:
                    await run_plan(page, url, outcome.plan, outcome, timeout_ms)
                except Exception as exc:  # noqa: BLE001 - one failed session is a result, not a crash
                    outcome.error = f"{type(exc).__name__}: {exc}".splitlines()[0]
                    outcome.seen["traceback"] = traceback.format_exc(limit=3)

            await asyncio.gather(*(session(p, o) for p, o in zip(pages, outcomes)))
            wall = time.perf_counter() - started
            if slow_job is not None and slow_page is not None and slow_job.error is None:
                slow_job.still_running_when_others_done = await _slow_job_running(slow_page)
            log(f"{sum(o.error is None for o in outcomes)}/{len(outcomes)} sessions finished their interactions "
                f"in {wall:.1f} s; checking each one's state")

            async def check(page, outcome: Outcome) -> None:
                if outcome.error is not None:
                    return
                try:
                    await check_own_state(page, outcome.plan, outcome, timeout_ms)
                except Exception as exc:  # noqa: BLE001
                    outcome.error = f"state check: {type(exc).__name__}: {exc}".splitlines()[0]
                    outcome.seen["traceback"] = traceback.format_exc(limit=4)

            await asyncio.gather(*(check(p, o) for p, o in zip(pages, outcomes)))
            if screenshot_dir is not None:
                screenshot_dir.mkdir(parents=True, exist_ok=True)
                for page, outcome in zip(pages, outcomes):
                    status = "ok" if outcome.ok else "FAILED"
                    try:  # best effort: a screenshot timing out under load must not lose the results
                        await page.screenshot(path=str(screenshot_dir / f"session-{outcome.plan.index:02d}-{status}.png"))
                    except Exception as exc:  # noqa: BLE001
                        log(f"no screenshot of session {outcome.plan.index}: {type(exc).__name__}")
            if slow_job is not None and slow_page is not None and slow_job.error is None:
                try:
                    await expect(slow_page.locator(NOT_RUNNING)).to_be_attached(timeout=timeout_ms)
                    slow_job.finished_s = time.perf_counter()
                    if screenshot_dir is not None:
                        await slow_page.screenshot(path=str(screenshot_dir / "slow-job.png"), timeout=60_000)
                except Exception as exc:  # noqa: BLE001
                    slow_job.error = f"did not finish: {type(exc).__name__}".splitlines()[0]
        finally:
            await browser.close()
    return RunResult(outcomes, wall, slow_job)


def run_sessions(url: str, plans: list[Plan], *, timeout_ms: int = helpers.LOAD_TIMEOUT_MS,
                 slow_job: SlowJob | None = None, viewport: dict[str, int] | None = None,
                 screenshot_dir: Path | None = None, log: Callable[[str], None] = lambda _m: None) -> RunResult:
    """Run every plan in its own browser context at once; blocking.

    The event loop runs in a thread of its own, so this works beside Playwright's sync API
    (the e2e suite's session-wide browser lives in the calling thread).
    """
    from tests.e2e.conftest import VIEWPORT

    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["result"] = asyncio.run(_run(url, plans, timeout_ms=timeout_ms, slow_job=slow_job,
                                             viewport=viewport or VIEWPORT, screenshot_dir=screenshot_dir, log=log))
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
            box["error"] = exc

    thread = threading.Thread(target=target, name="many-sessions", daemon=True)
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box["result"]
