"""Startup benchmark: how fast does TrustLens come up? (a benchmark, not a test)

Measures, as the median of ``--repeats`` runs after one unrecorded warm-up run:

1. ``app_import_s``: a fresh interpreter doing app.py's module-level imports (read from app.py
   with ``ast``, plus ``components.state``), against ``python_floor_s``, a fresh ``python -c pass``.
   The child also reports which heavy libraries (torch, umap, shap, openTSNE, captum) ended up in
   ``sys.modules``: there must be none (the app promises a fast first paint).
2. ``server_ready_s``: launching ``streamlit run app.py`` until ``/_stcore/health`` answers ``ok``.
3. ``first_paint_s``: headless Chromium from ``page.goto`` until the app is connected and the page
   title (h1) is visible, on the fresh server of step 2. ``full_render_s`` (the model card's
   "Test accuracy" metric visible and the script finished) is reported beside it. The digits
   models are trained beforehand (``python -m core warm digits --quiet``) so this measures
   painting, not training; TRUSTLENS_CACHE_DIR is a temporary folder unless already set. Each
   repeat starts a new server, so this is the first visitor's wait; a second visitor on the same
   server (warm process) is measured too (``second_visit_*``).

Prints a table, then one JSON line. Exit status: 1 when a heavy module was imported, 1 with
``--check`` when a target is missed, else 0. Run from anywhere: ``python bench/startup.py``.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HEAVY = ("torch", "umap", "shap", "openTSNE", "captum", "transformers")
TARGETS = {"app_import_s": 1.5, "first_paint_s": 5.0}
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
HEALTH_TIMEOUT_S = 60.0
PAINT_TIMEOUT_MS = 120_000


# -- 1. imports ------------------------------------------------------------------------------
def app_import_lines() -> list[str]:
    """app.py's module-level import statements, verbatim, plus ``import components.state``."""
    tree = ast.parse((ROOT / "app.py").read_text(encoding="utf-8"))
    lines = [ast.unparse(node) for node in tree.body if isinstance(node, (ast.Import, ast.ImportFrom))]
    return lines + ["import components.state"]


def import_probe_source(lines: list[str]) -> str:
    return "\n".join([
        "import json, sys, time",
        "_t = time.perf_counter()",
        *lines,
        "_dt = time.perf_counter() - _t",
        f"_heavy = sorted(m for m in {list(HEAVY)!r} if m in sys.modules)",
        "print(json.dumps({'in_process_s': _dt, 'heavy': _heavy, 'n_modules': len(sys.modules)}))",
    ])


def timed_python(code: str, env: dict[str, str]) -> tuple[float, str]:
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"python -c failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return seconds, done.stdout


def measure_imports(repeats: int, env: dict[str, str]) -> dict:
    probe = import_probe_source(app_import_lines())
    timed_python("pass", env)  # warm-up: OS file cache, .pyc files
    timed_python(probe, env)
    floor, wall, inproc, heavy, n_modules = [], [], [], set(), 0
    for _ in range(repeats):
        floor.append(timed_python("pass", env)[0])
        seconds, out = timed_python(probe, env)
        report = json.loads(out.strip().splitlines()[-1])
        wall.append(seconds)
        inproc.append(report["in_process_s"])
        heavy.update(report["heavy"])
        n_modules = report["n_modules"]
    return {
        "imports": app_import_lines(),
        "python_floor_s": statistics.median(floor),
        "app_import_s": statistics.median(wall),
        "app_import_in_process_s": statistics.median(inproc),
        "heavy_modules_imported": sorted(heavy),
        "modules_loaded": n_modules,
    }


# -- 2. server -------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
            return response.status == 200 and response.read().decode().strip() == "ok"
    except OSError:
        return False


def start_server(env: dict[str, str], log_path: Path) -> tuple[subprocess.Popen, str, float]:
    """Launch ``streamlit run app.py``; returns (process, url, seconds until healthy)."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    cmd = [
        sys.executable, "-m", "streamlit", "run", "app.py",
        "--server.headless", "true", "--server.port", str(port), "--server.address", "127.0.0.1",
        "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none",
    ]
    with open(log_path, "wb") as log:
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    deadline = started + HEALTH_TIMEOUT_S
    while not healthy(url):
        if proc.poll() is not None or time.perf_counter() > deadline:
            stop_server(proc)
            raise SystemExit(f"streamlit did not become healthy:\n{log_path.read_text(errors='replace')[-3000:]}")
        time.sleep(0.02)
    return proc, url, time.perf_counter() - started


def stop_server(proc: subprocess.Popen) -> None:
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


# -- 3. first paint --------------------------------------------------------------------------
def browser_unavailable() -> str | None:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed"
    if not CHROMIUM.is_file():
        return f"{CHROMIUM} is missing (apt-get install -y --no-install-recommends chromium)"
    return None


def paint(browser, url: str) -> dict[str, float]:
    """Seconds from page.goto to: connected, h1 visible (first paint), full render."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    try:
        page = context.new_page()
        started = time.perf_counter()
        page.goto(url, wait_until="commit")
        page.locator('[data-testid="stApp"][data-test-connection-state="CONNECTED"]').wait_for(state="attached", timeout=PAINT_TIMEOUT_MS)
        connected = time.perf_counter() - started
        page.get_by_test_id("stMain").get_by_role("heading", level=1).first.wait_for(state="visible", timeout=PAINT_TIMEOUT_MS)
        first_paint = time.perf_counter() - started
        page.get_by_test_id("stMetricLabel").filter(has_text="Test accuracy").first.wait_for(state="visible", timeout=PAINT_TIMEOUT_MS)
        page.locator('[data-test-script-state="notRunning"]').wait_for(state="attached", timeout=PAINT_TIMEOUT_MS)
        full = time.perf_counter() - started
        return {"connected_s": connected, "first_paint_s": first_paint, "full_render_s": full}
    finally:
        context.close()


def measure_server_and_paint(repeats: int, env: dict[str, str], workdir: Path, with_browser: bool) -> dict:
    ready, runs = [], []
    manager = browser = None
    if with_browser:
        from playwright.sync_api import sync_playwright

        manager = sync_playwright().start()
        browser = manager.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
    try:
        for i in range(repeats + 1):  # run 0 is the warm-up
            proc, url, seconds = start_server(env, workdir / f"streamlit-{i}.log")
            try:
                result = {}
                if browser:
                    result = paint(browser, url)
                    again = paint(browser, url)  # a second visitor: the server process is warm
                    result["second_visit_paint_s"] = again["first_paint_s"]
                    result["second_visit_full_render_s"] = again["full_render_s"]
            finally:
                stop_server(proc)
            if i > 0:
                ready.append(seconds)
                if result:
                    runs.append(result)
    finally:
        if browser:
            browser.close()
        if manager:
            manager.stop()
    out = {"server_ready_s": statistics.median(ready)}
    for key in ("connected_s", "first_paint_s", "full_render_s", "second_visit_paint_s", "second_visit_full_render_s"):
        out[key] = statistics.median(r[key] for r in runs) if runs else None
    return out


# -- main ------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3, help="timed repeats per measure (median; default 3)")
    parser.add_argument("--no-browser", action="store_true", help="skip the first-paint measure")
    parser.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    parser.add_argument("--out", type=Path, help="also write the JSON result to this file (e.g. bench/results/startup.json)")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")

    env = dict(os.environ)
    own_cache = None
    if not env.get("TRUSTLENS_CACHE_DIR"):
        own_cache = tempfile.mkdtemp(prefix="trustlens-bench-cache-")
        env["TRUSTLENS_CACHE_DIR"] = own_cache
    workdir = Path(tempfile.mkdtemp(prefix="trustlens-bench-"))
    skipped: list[str] = []
    try:
        imports = measure_imports(args.repeats, env)

        started = time.perf_counter()
        warm = subprocess.run([sys.executable, "-m", "core", "warm", "digits", "--quiet"], cwd=ROOT, env=env,
                              capture_output=True, text=True)
        if warm.returncode != 0:
            raise SystemExit(f"python -m core warm digits failed:\n{warm.stdout}{warm.stderr}")
        warm_s = time.perf_counter() - started

        reason = None if not args.no_browser else "--no-browser"
        reason = reason or browser_unavailable()
        if reason:
            skipped.append(f"first_paint_s: {reason}")
        served = measure_server_and_paint(args.repeats, env, workdir, with_browser=reason is None)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
        if own_cache:
            shutil.rmtree(own_cache, ignore_errors=True)

    result = {
        "app_import_s": round(imports["app_import_s"], 3),
        "python_floor_s": round(imports["python_floor_s"], 3),
        "import_ratio_vs_floor": round(imports["app_import_s"] / imports["python_floor_s"], 2),
        "app_import_in_process_s": round(imports["app_import_in_process_s"], 3),
        "heavy_modules_imported": imports["heavy_modules_imported"],
        "server_ready_s": round(served["server_ready_s"], 3),
        "connected_s": None if served["connected_s"] is None else round(served["connected_s"], 3),
        "first_paint_s": None if served["first_paint_s"] is None else round(served["first_paint_s"], 3),
        "full_render_s": None if served["full_render_s"] is None else round(served["full_render_s"], 3),
        "second_visit_paint_s": None if served["second_visit_paint_s"] is None else round(served["second_visit_paint_s"], 3),
        "second_visit_full_render_s": (None if served["second_visit_full_render_s"] is None
                                       else round(served["second_visit_full_render_s"], 3)),
        "warm_digits_s": round(warm_s, 2),
        "repeats": args.repeats,
        "targets": TARGETS,
        "skipped": skipped,
    }
    meets = {
        "app_import_s": result["app_import_s"] <= TARGETS["app_import_s"],
        "first_paint_s": result["first_paint_s"] is not None and result["first_paint_s"] <= TARGETS["first_paint_s"],
        "no_heavy_modules": not result["heavy_modules_imported"],
    }
    result["meets"] = meets
    result["meets_targets"] = all(meets.values())

    rows = [
        ("python -c pass (floor)", result["python_floor_s"], ""),
        ("app.py imports, fresh python", result["app_import_s"], f"target <= {TARGETS['app_import_s']}"),
        ("  of which the imports themselves", result["app_import_in_process_s"], ""),
        ("  ratio vs floor", result["import_ratio_vs_floor"], "x"),
        ("streamlit run -> /_stcore/health ok", result["server_ready_s"], ""),
        ("goto -> websocket connected", result["connected_s"], ""),
        ("goto -> h1 visible (first paint)", result["first_paint_s"], f"target <= {TARGETS['first_paint_s']}"),
        ("goto -> model card + run finished", result["full_render_s"], ""),
        ("second visitor: goto -> h1 visible", result["second_visit_paint_s"], "same server, warm process"),
        ("second visitor: goto -> model card", result["second_visit_full_render_s"], ""),
    ]
    print(f"TrustLens startup, median of {args.repeats} after a warm-up ({sys.executable})")
    print(f"imports measured: {'; '.join(imports['imports'])}")
    print(f"{'measure':<40} {'seconds':>9}  note")
    for name, value, note in rows:
        shown = "skipped" if value is None else f"{value:9.3f}"
        print(f"{name:<40} {shown:>9}  {note}")
    heavy = result["heavy_modules_imported"]
    print(f"heavy modules after app imports: {', '.join(heavy) if heavy else 'none'} (checked: {', '.join(HEAVY)})")
    for line in skipped:
        print(f"skipped {line}")
    line = json.dumps(result)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(line + "\n", encoding="utf-8")
    print(line)
    if heavy:
        return 1
    if args.check and not result["meets_targets"]:
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
