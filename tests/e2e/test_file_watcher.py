"""`streamlit run app.py` as README command (1) starts it: the file watcher stays off the big folders.

With Streamlit's default watcher (watchdog) every imported source file's folder is watched
*recursively* with inotify, app.py's folder included: the whole checkout, so `.venv/` (thousands of
directories), the model cache (``data/cache/`` by default) and the data folders. Writes there (the
cache filling, pip, .pyc files) flooded the log with "Inotify queue overflowed" (2,100 lines in
20 minutes). ``.streamlit/config.toml`` sets ``server.fileWatcherType = "poll"``: Streamlit then
polls only the source files the app imported (app.py, pages/, components/, core/), so editing a
page still reruns the app, and nothing else is watched.

The server here is started as the README's command does: the ``streamlit`` script, ``run app.py``
from the repository root, no watcher flag (only the port, address, headless and usage-stats
flags), with the cache inside the checkout (``data/cache/watch-test-<random>``, removed after).
Two pages are opened in the browser, the cache folder gets a burst of writes, then the test fails
on any watcher message in the server's log and on any inotify watch the server holds on `.venv/`,
`data/`, `.git/`, `tests/`, `bench/results/` or a ``__pycache__`` folder (read from
``/proc/<pid>/fdinfo``, which lists every inotify watch of the process by inode).
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.e2e import helpers
from tests.e2e.conftest import HEALTH_TIMEOUT_S, _free_port, _healthy, _page_factory, _stop, _tail

pytestmark = pytest.mark.e2e

# "Inotify queue overflowed", "inotify watch limit reached", "OSError: [Errno 28] ...", watchdog's
# "Failed to schedule watch observer", "Failed to watch file", "Received event for non-watched path".
WATCHER_MESSAGE = re.compile(r"inotify|watch|errno 28", re.IGNORECASE)
# Folders no watch may be on (relative to the repository root); any __pycache__ too.
UNWATCHED = (".venv", "data", ".git", "tests", "bench/results")
BURST_FILES = 3000  # files written and deleted in the cache folder, as a cache filling up does


def streamlit_command() -> str:
    """The ``streamlit`` script that README command (1) runs (the one beside this interpreter)."""
    script = Path(sys.executable).with_name("streamlit")
    found = str(script) if script.is_file() else shutil.which("streamlit")
    if not found:
        pytest.fail("no `streamlit` script beside the interpreter or on PATH: pip install -r requirements.txt")
    return found


def kernel_dev(st_dev: int) -> int:
    """``st_dev`` as the kernel prints it in fdinfo (``sdev``: major << 20 | minor)."""
    return (os.major(st_dev) << 20) | os.minor(st_dev)


def inotify_watches(pid: int) -> list[tuple[int, int]]:
    """(kernel device, inode) of every inotify watch the process holds, from /proc/<pid>/fdinfo."""
    watches = []
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}") != "anon_inode:inotify":
                continue
            lines = Path(f"/proc/{pid}/fdinfo/{fd}").read_text().splitlines()
        except OSError:  # closed meanwhile
            continue
        for line in lines:
            if line.startswith("inotify wd:"):
                fields = dict(part.split(":", 1) for part in line.split()[1:] if ":" in part)
                watches.append((int(fields["sdev"], 16), int(fields["ino"], 16)))
    return watches


def unwatched_directories() -> dict[tuple[int, int], str]:
    """(kernel device, inode) -> path of every directory that must not be watched."""
    found: dict[tuple[int, int], str] = {}

    def add(path: Path) -> None:
        st = path.stat()
        found[(kernel_dev(st.st_dev), st.st_ino)] = str(path.relative_to(ROOT))

    for folder, dirnames, _files in os.walk(ROOT):
        here = Path(folder)
        rel = here.relative_to(ROOT).as_posix()
        if here.name == "__pycache__" or any(rel == u or rel.startswith(u + "/") for u in UNWATCHED):
            add(here)
        for name in list(dirnames):
            if (here / name).is_symlink():
                dirnames.remove(name)
    return found


@pytest.fixture
def readme_server(e2e_available, tmp_path):
    """(url, process, log path, cache dir): ``streamlit run app.py`` with no watcher flag, cache in the tree."""
    cache_root = ROOT / "data" / "cache"
    made_root = not cache_root.exists()
    cache = cache_root / f"watch-test-{secrets.token_hex(4)}"
    cache.mkdir(parents=True)
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    log_path = tmp_path / "streamlit.log"
    cmd = [streamlit_command(), "run", "app.py", "--server.headless", "true", "--server.port", str(port),
           "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false"]
    assert not any("fileWatcher" in part or "folderWatch" in part for part in cmd)
    env = {**os.environ, "TRUSTLENS_CACHE_DIR": str(cache)}
    proc = None
    try:
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + HEALTH_TIMEOUT_S
        while not _healthy(url):
            if proc.poll() is not None:
                pytest.fail(f"streamlit exited with code {proc.returncode} before it was healthy:\n{_tail(log_path)}")
            if time.monotonic() > deadline:
                pytest.fail(f"streamlit not healthy after {HEALTH_TIMEOUT_S:.0f} s:\n{_tail(log_path)}")
            time.sleep(0.2)
        yield url, proc, log_path, cache
    finally:
        if proc is not None:
            _stop(proc)
        shutil.rmtree(cache, ignore_errors=True)
        if made_root:
            shutil.rmtree(cache_root, ignore_errors=True)


def test_readme_server_does_not_watch_venv_cache_or_data(request, browser_context, readme_server):
    url, proc, log_path, cache = readme_server
    pages = _page_factory(request, browser_context)
    page = next(pages)()
    try:
        started = time.perf_counter()
        helpers.open_app(page, url)  # a cold cache: the default scenario's model is trained into the tree
        print(f"home rendered in {time.perf_counter() - started:.1f} s")
        helpers.assert_no_errors(page)
        helpers.sidebar(page).get_by_test_id("stSidebarNavLink").filter(has_text="Calibration").click()
        helpers.expect(helpers.title(page).filter(has_text="Calibration")).to_be_visible(
            timeout=helpers.LOAD_TIMEOUT_MS)
        helpers.wait_settled(page)
        helpers.assert_no_errors(page)

        # The cache keeps filling while the app runs: a burst of writes in the watched tree.
        burst = cache / "burst"
        burst.mkdir()
        for i in range(BURST_FILES):
            (burst / f"{i}.bin").write_bytes(b"x")
        shutil.rmtree(burst)
        time.sleep(2.0)  # let a watcher thread log what it saw

        assert proc.poll() is None, f"the server died:\n{_tail(log_path)}"
        watched = inotify_watches(proc.pid)
        forbidden = unwatched_directories()
        bad = sorted({forbidden[w] for w in watched if w in forbidden})
        messages = [line for line in log_path.read_text(errors="replace").splitlines() if WATCHER_MESSAGE.search(line)]
        print(f"server pid {proc.pid}: {len(watched)} inotify watches, {len(bad)} on folders it must not watch; "
              f"{len(messages)} watcher lines in its log")
        problems = []
        if bad:
            per_folder = Counter(path.split("/")[0] if "__pycache__" not in path else "__pycache__" for path in bad)
            problems.append(f"the server holds {len(watched)} inotify watches, {len(bad)} of them on folders it "
                            f"must not watch: {dict(per_folder.most_common())}")
        if messages:
            problems.append(f"{len(messages)} file-watcher lines in the server log, e.g.:\n" + "\n".join(messages[:8]))
        assert not problems, "\n".join(problems) + "\n(.streamlit/config.toml: server.fileWatcherType)"
    finally:
        next(pages, None)
