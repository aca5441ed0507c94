"""Shared test set-up.

- ``TRUSTLENS_CACHE_DIR``: kept if set (reuse trained models between local runs), otherwise a
  fresh temporary folder for the whole session, so tests never touch the developer's cache.
- ``TRUSTLENS_DATA_DIR``: kept if set, otherwise ``../shared/data`` beside the checkout when it
  exists. Tests that need a non-embedded dataset use ``require_dataset``: they skip when the data
  is missing, and fail instead when ``TRUSTLENS_REQUIRE_DATA=1`` (set by .ci/run when it found the
  data), so CI cannot pass by silently skipping.
- ``TRUSTLENS_MODEL_CACHE_DIR``: passed through (CI sets it, see .ci/run): trained built-in models are
  read from and written to it unless a test passes its own store (core/store.py, ``model_store``).

Tiers (pytest.ini): ``slow`` marks tests that train MNIST / newsgroups models, ensembles or Bayes by
backprop, or otherwise take seconds cold (each mark says what it measured); a test parametrized with
a model of ``SLOW_MODELS`` is marked here. Every test under tests/e2e is ``e2e`` (marked here, by
folder). ``python -m pytest -m "not slow and not e2e"`` is the edit-test loop (about 3.5 min cold on
the 2-core machines); ``python -m pytest`` runs everything.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# torch runs one intra-op thread per computation, as in the server (components/runtime.py; OMP_NUM_THREADS,
# MKL_NUM_THREADS or TRUSTLENS_TORCH_THREADS, when set, win). Set before torch is imported, so every thread of
# the test process and every subprocess trains with the same thread count: a model is then the same whichever
# test (or the e2e server) trains it first into the shared cache. Measured on the shared 2-core machine under
# load: the digits CNN trained in 104 s wall / 17 s CPU on one thread, 621 s wall / 165 s CPU on two (OpenMP
# teams spin while their other member waits for a core).
from components.runtime import configure_server  # noqa: E402 - imports neither torch nor streamlit

configure_server()

# A shared store or read-only mode set in a developer's shell would send every test's results there: tests that
# want them set them (tests/core/test_store_url.py, the servers they start).
for _name in ("TRUSTLENS_STORE", "TRUSTLENS_STORE_READONLY"):
    os.environ.pop(_name, None)
# Every app server the tests start (the browser tests' session servers, `serve`, the README server of the file-
# watcher test) would compile UMAP in a background thread: 60-75 s of one of the 2 cores each, and no browser test
# draws a UMAP map. tests/core/test_umap_warm.py sets the variable itself to test the warm-up.
os.environ.setdefault("TRUSTLENS_UMAP_WARMUP", "0")
if not os.environ.get("TRUSTLENS_CACHE_DIR"):
    # One fresh folder per run. Parallel workers (pytest -n, pytest-xdist) share their run's folder (named by the
    # run's id, which every worker of one run sees), so a model one worker trains the other reads; the store's
    # file locks make the second wait for the first instead of training it again.
    _run = os.environ.get("PYTEST_XDIST_TESTRUNUID")
    if _run:
        _folder = Path(tempfile.gettempdir()) / f"trustlens-test-cache-{_run[:16]}"
        _folder.mkdir(exist_ok=True)
        os.environ["TRUSTLENS_CACHE_DIR"] = str(_folder)
    else:
        os.environ["TRUSTLENS_CACHE_DIR"] = tempfile.mkdtemp(prefix="trustlens-test-cache-")
if not os.environ.get("TRUSTLENS_DATA_DIR"):
    candidate = ROOT.parent / "shared" / "data"
    if candidate.is_dir():
        os.environ["TRUSTLENS_DATA_DIR"] = str(candidate)


def require_dataset(dataset: str) -> None:
    """Skip (or fail, under TRUSTLENS_REQUIRE_DATA=1) when ``dataset`` is not available offline."""
    from core import datasets

    avail = datasets.availability(dataset)
    if avail.available:
        return
    message = f"{dataset} data not available offline: {avail.source}"
    if os.environ.get("TRUSTLENS_REQUIRE_DATA") == "1":
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture
def tmp_store(tmp_path):
    from core.store import ArtifactStore

    return ArtifactStore(tmp_path / "cache")


def store_with_models(folder, scenario: str, models: list[str] | None = None):
    """A new store at ``folder`` holding only the trained built-in ``models`` of ``scenario`` (default: all),
    copied from where the session keeps them (trained there once): a test that needs its own store for
    what it computes, but does not test the models' training, does not train them again."""
    import shutil

    from core import scenarios
    from core.store import ArtifactStore, model_store

    target = ArtifactStore(folder)
    for name in models or scenarios.get_spec(scenario).model_names:
        key = scenarios.load_model(scenario, name).key
        target.path_for(key).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(model_store().path_for(key), target.path_for(key))
    return target


E2E_DIR = ROOT / "tests" / "e2e"
# Built-in models whose first training takes many seconds here (cold, one torch thread, 2 cores): a test
# parametrized with one of them (``scenario``/``model`` parameters, or a ``(scenario, model, ...)`` tuple) is slow.
SLOW_MODELS = {("mnist", "cnn"): "52-73 s", ("mnist", "vit"): "85 s on 2 cores", ("newsgroups", "bag"): "20 s",
               ("newsgroups", "forest"): "7-11 s, and its 500 trees predict slowly",
               ("newsgroups", "minilm"): "63-102 s per variant (a pretrained transformer encodes every post), and it "
                                         "reads 20-35 posts a second"}


def is_browser_test(item) -> bool:
    return E2E_DIR in Path(str(item.fspath)).resolve().parents


# The longest browser files, started first (seconds of test time in a CI run on 2 workers, stop 33: the two longest
# start together, one on each worker).
LONG_BROWSER_FILES = ("test_every_page.py",  # 170 s: mnist 43, newsgroups 40, adult 26, digits 25, titanic 23, ...
                      "test_upload_page.py",  # 289 s: eight every-page-with-an-upload sweeps, 21-57 s each
                      "test_many_sessions.py",  # 95-122 s
                      "test_jobs.py",  # 56-73 s: a server of its own, the digits CNN copied in, an ensemble trained
                      "test_shared_store.py")  # 30-35 s: a precompute into a local S3 server, two servers of its own


def parallel_order(item) -> tuple[int, int]:
    """Engine and AppTest tests first, then browser files, longest first (a sort key; the sort is stable)."""
    if not is_browser_test(item):
        return (0, 0)
    name = Path(str(item.fspath)).name
    return (1, LONG_BROWSER_FILES.index(name) if name in LONG_BROWSER_FILES else len(LONG_BROWSER_FILES))


def uses_slow_model(item) -> bool:
    params = getattr(getattr(item, "callspec", None), "params", {})
    if (params.get("scenario"), params.get("model")) in SLOW_MODELS:
        return True
    return any(isinstance(v, tuple) and tuple(v[:2]) in SLOW_MODELS for v in params.values())


def pytest_collection_modifyitems(config, items):
    if os.environ.get("PYTEST_XDIST_WORKER"):
        # Parallel run (pytest.ini: -n 2 --dist loadfile, whole files shared out in this order as workers free up):
        # the browser files go last, after the engine and AppTest files have trained the models and filled the run's
        # cache that both workers' Streamlit servers read; the longest browser files first, so that neither worker
        # is left running a long file alone at the end. (Not --dist loadgroup: with pytest 9 xdist 3.8 cannot rename
        # an item's nodeid, so the groups are ignored and every test is shared out on its own; measured, that made
        # a whole run 27 min instead of 21-25, files' module fixtures and models built on both workers at once.)
        items.sort(key=parallel_order)  # stable
    for item in items:
        if is_browser_test(item):
            item.add_marker(pytest.mark.e2e)  # every browser test, whether or not its module says so
            # A browser test that fails runs once more (pytest-rerunfailures): on the 2-core machine a real browser,
            # a server and the other worker share the CPU, and one lost click or late paint in 150 browser tests
            # failed a whole CI run twice. A test fails only if it fails twice; every rerun is listed in the
            # summary ("RERUN", pytest -ra) so that flakiness stays visible and gets fixed.
            item.add_marker(pytest.mark.flaky(reruns=1, reruns_delay=2))
        if uses_slow_model(item):
            item.add_marker(pytest.mark.slow)
    # GPU-marked tests skip cleanly on machines without CUDA (CI never has one).
    try:
        import torch

        has_cuda = torch.cuda.is_available()
    except Exception:  # pragma: no cover
        has_cuda = False
    if has_cuda:
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if item.get_closest_marker("gpu") is not None:
            item.add_marker(skip)
