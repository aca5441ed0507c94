"""Ten browser sessions at once against one server: each sees only its own state.

Ten contexts of one Chromium (tests/e2e/session_driver.py, the driver bench/load.py uses too), all
driven concurrently: each picks its own scenario and model in the sidebar (one session uploads
its own model and data instead), switches to the Calibration page, picks a recalibration method
and a bin. When all ten have finished, each is checked for its scenario, model, page, method and
bin, and for its scenario picker listing the built-ins plus only its own upload.

On a 2-core machine Chromium's renderers and the server share the CPU, so this asserts success
and no leakage; latencies are printed (run with -s to see them), not asserted.
"""

from __future__ import annotations

import statistics

import pytest

from core import datasets
from core.scenarios import SCENARIOS
from tests.e2e import session_driver as driver

pytestmark = pytest.mark.e2e
N_SESSIONS = 10
UPLOADER = 3  # this session adds its own model (a skops pipeline + CSV) on the 'Your model' page


@pytest.fixture(scope="module")
def upload_files(tmp_path_factory):
    from tests.hostile import models

    folder = tmp_path_factory.mktemp("many-sessions-upload")
    model, table = models.breast_cancer_skops()
    (folder / "cancer.skops").write_bytes(model)
    (folder / "cancer.csv").write_bytes(table)
    return folder / "cancer.skops", folder / "cancer.csv"


def test_ten_concurrent_sessions_each_see_only_their_own_state(app_url, screenshot_dir, upload_files):
    # The scenarios whose models train in seconds (and need no downloaded data): the test is
    # about concurrency, not about first-use training under ten sessions' load.
    scenarios = [name for name in ("digits", "breast-cancer", "titanic")
                 if datasets.availability(SCENARIOS[name].dataset).available]
    plans = driver.make_plans(N_SESSIONS, scenarios, uploads={UPLOADER: upload_files})
    assert len({(p.scenario, p.model, p.method) for p in plans if p.upload is None}) >= 6  # neighbours differ

    result = driver.run_sessions(app_url, plans, screenshot_dir=screenshot_dir / "many-sessions", log=print)

    for kind in driver.KINDS:
        values = [o.latencies[kind] for o in result.outcomes if kind in o.latencies]
        if values:
            print(f"{kind:<9} n={len(values):>2} median {statistics.median(values):6.2f} s  max {max(values):6.2f} s")
    if driver.LOST_CHOICES:
        print(f"selections the app dropped and that were made again: {driver.LOST_CHOICES}")
    failures = [f"session {o.plan.index} ({o.plan.scenario}/{o.plan.model}): {o.error}\n{o.seen.get('traceback', '')}"
                for o in result.outcomes if o.error]
    assert not failures, "\n".join(failures)
    leaks = [f"session {o.plan.index}: {leak}" for o in result.outcomes for leak in o.leaks]
    assert not leaks, "state of another session showed up:\n" + "\n".join(leaks)
    # every session really did its own thing (the checks above compared against these)
    uploader = result.outcomes[UPLOADER]
    assert uploader.seen["scenario"].startswith("Your model") and uploader.seen["model"] == "uploaded"
    others = [o for o in result.outcomes if o.plan.upload is None]
    assert {o.seen["scenario"] for o in others} == {SCENARIOS[s].title for s in scenarios}
    assert all(o.bin_label and o.seen["bin"] == o.bin_label for o in result.outcomes)
