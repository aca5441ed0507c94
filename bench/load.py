"""Load benchmark: N concurrent browser sessions against ONE server (a benchmark, not a test).
Issue 11, item 6: all sessions succeed, no state leaks between them, server memory under 4 GB
with the built-in scenarios warm.

One ``streamlit run app.py`` server, one headless Chromium (/usr/bin/chromium), one browser
context (= one Streamlit session) per user, all driven at once by tests/e2e/session_driver.py
(the same driver the 10-session browser test uses). Every session: opens the app, picks its own
scenario and model in the sidebar, switches to the Calibration page, changes the recalibration
method and picks a bin; its scenario cycles over the built-in scenarios with data, its model,
method and bin follow its index. When all have finished, each is checked to show only its own
scenario, model, method, bin and no uploaded scenario (a leaked-state check).

Before measuring, every scenario's models are trained or loaded (``python -m core warm``) and a
warm-up round opens every (scenario, model) once, so the timed rounds read from warm caches.
Then, for each N in ``--sessions``: a round of N sessions, and (unless ``--no-slow-job``) a round
of N sessions while one more session runs a cold t-SNE of all 70,000 MNIST points on the
Embeddings page (a new seed each time, so it is never cached): the others' latency with and
without a slow job.

Latency of an interaction: from the click to the new content being visible, the script run
settled and the page painted (Plotly axes drawn, images loaded), measured in the browser client.
CPU: per round, the server process's CPU seconds against the whole machine's busy core-seconds
(/proc), so a reader can tell the server's share from the N browsers' on the same cores.
Memory: the server process's peak resident set (VmHWM from /proc/<pid>/status, and the peak of
RSS polled every 0.25 s summed over the server and any child processes).

Prints a table, then one JSON line. Exit status 1 with ``--check`` when a session failed, state
leaked or the memory target was missed, else 0. Timings on a shared 2-core machine are noisy:
Chromium's N renderers compete with the server for the same cores. Run from anywhere:
``TRUSTLENS_DATA_DIR=../shared/data python bench/load.py [--sessions 10,30] [--quick]``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from core import datasets  # noqa: E402
from core.scenarios import SCENARIOS  # noqa: E402
from tests.e2e import session_driver as driver  # noqa: E402
from tests.e2e.conftest import streamlit_process  # noqa: E402

MEMORY_TARGET_MB = 4096
VIEWPORT = {"width": 1280, "height": 1100}


# -- memory ----------------------------------------------------------------------------------------
def _status_kb(pid: int, field: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def process_cpu_s(pid: int) -> float:
    """CPU seconds (user + system, all threads) a live process has used so far."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / _TICK
    except (OSError, ValueError, IndexError):
        return 0.0


def machine_busy_s() -> float:
    """CPU seconds every core of the machine has spent busy so far (/proc/stat; idle and iowait excluded)."""
    try:
        values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    except (OSError, ValueError, IndexError):
        return 0.0
    return (sum(values[:8]) - values[3] - values[4]) / _TICK


class MemoryPoller:
    """Peak RSS of the server and its child processes, polled in a thread."""

    def __init__(self, pid: int, interval: float = 0.25) -> None:
        self.pid, self.interval = pid, interval
        self.peak_kb = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            total = sum(_status_kb(p, "VmRSS") for p in [self.pid, *_descendants(self.pid)])
            self.peak_kb = max(self.peak_kb, total)
            self._stop.wait(self.interval)

    def __enter__(self) -> "MemoryPoller":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)


# -- statistics --------------------------------------------------------------------------------------
def percentile(values: list[float], q: float) -> float:
    """Linear-interpolated percentile (numpy's default method) of a non-empty list."""
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def summarise(result: driver.RunResult) -> dict:
    kinds = {}
    for kind in driver.KINDS:
        values = [o.latencies[kind] for o in result.outcomes if kind in o.latencies]
        if values:
            kinds[kind] = {"n": len(values), "median_s": round(statistics.median(values), 3),
                           "p95_s": round(percentile(values, 95), 3), "max_s": round(max(values), 3)}
    slow = result.slow_job
    return {
        "sessions": len(result.outcomes),
        "succeeded": sum(o.error is None for o in result.outcomes),
        "leaked": sum(bool(o.leaks) for o in result.outcomes),
        "wall_s": round(result.wall_s, 1),
        "latency": kinds,
        "errors": sorted({o.error for o in result.outcomes if o.error}),
        "leaks": [leak for o in result.outcomes for leak in o.leaks],
        "slow_job": None if slow is None else {
            "seed": slow.seed, "error": slow.error,
            "still_running_when_others_done": slow.still_running_when_others_done,
            "seconds": None if slow.finished_s is None or slow.started_s is None
            else round(slow.finished_s - slow.started_s, 1)},
    }


def print_table(rounds: list[dict]) -> None:
    print(f"{'N':>3} {'slow job':>8} {'interaction':<10} {'n':>4} {'median s':>9} {'p95 s':>7} {'max s':>7}")
    for r in rounds:
        slow = "yes" if r["slow_job"] else "no"
        for kind, s in r["latency"].items():
            print(f"{r['sessions']:>3} {slow:>8} {kind:<10} {s['n']:>4} {s['median_s']:>9.2f} {s['p95_s']:>7.2f} "
                  f"{s['max_s']:>7.2f}")
        job = ""
        if r["slow_job"]:
            j = r["slow_job"]
            job = (f"; slow job: {j['seconds']} s, still running when the others were done: "
                   f"{j['still_running_when_others_done']}" + (f", error: {j['error']}" if j["error"] else ""))
        print(f"    -> {r['succeeded']}/{r['sessions']} succeeded, {r['leaked']} with leaked state, "
              f"round {r['wall_s']} s{job}")
        cpu = r.get("cpu")
        if cpu and cpu["machine_busy_s"]:
            print(f"       CPU: the server {cpu['server_s']} s of {cpu['machine_busy_s']} busy core-seconds "
                  f"({cpu['server_s'] / cpu['machine_busy_s']:.0%}; {cpu['cores']} cores, "
                  f"{cpu['cores'] * r['wall_s']:.0f} core-seconds in the round); the rest is the browsers and the driver")
        for error in r["errors"]:
            print(f"       error: {error}")
        for leak in r["leaks"]:
            print(f"       leak: {leak}")


# -- main ----------------------------------------------------------------------------------------------
def available_scenarios() -> list[str]:
    return [name for name, spec in SCENARIOS.items() if datasets.availability(spec.dataset).available]


def warm(scenarios: list[str]) -> None:
    for name in scenarios:
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "core", "warm", name, "--quiet"], cwd=ROOT, check=True,
                       stdout=subprocess.DEVNULL)
        print(f"warm {name}: {time.perf_counter() - started:.1f} s", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", default="10,30", help="comma-separated session counts (default 10,30)")
    parser.add_argument("--quick", action="store_true", help="one round of 5 sessions, no slow job")
    parser.add_argument("--no-slow-job", action="store_true", help="skip the rounds with a concurrent t-SNE")
    parser.add_argument("--scenarios", default=None, help="comma-separated scenarios (default: every one with data)")
    parser.add_argument("--torch-threads", default=None,
                        help="TRUSTLENS_TORCH_THREADS for the server (default: components/runtime.py's; 0 = torch's)")
    parser.add_argument("--port", type=int, default=8651)
    parser.add_argument("--skip-warm", action="store_true", help="do not run `python -m core warm` first")
    parser.add_argument("--screenshots", type=Path, default=None, help="save every session's final page here")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds one interaction may take")
    parser.add_argument("--check", action="store_true", help="exit 1 on a failed session, a leak or > 4 GB")
    args = parser.parse_args(argv)

    counts = [5] if args.quick else [int(n) for n in args.sessions.split(",") if n.strip()]
    scenarios = args.scenarios.split(",") if args.scenarios else available_scenarios()
    unknown = [s for s in scenarios if s not in SCENARIOS]
    if unknown:
        parser.error(f"unknown scenario(s) {unknown}; choose from {list(SCENARIOS)}")
    slow_job = not (args.no_slow_job or args.quick) and "mnist" in available_scenarios()
    env = {} if args.torch_threads is None else {"TRUSTLENS_TORCH_THREADS": str(args.torch_threads)}
    timeout_ms = int(args.timeout * 1000)
    if not args.skip_warm:
        warm(sorted(set(scenarios) | ({"mnist"} if slow_job else set())))

    rounds: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="trustlens-load-") as tmp, \
            streamlit_process(Path(tmp), port=args.port, env=env) as (url, proc), MemoryPoller(proc.pid) as memory:
        combos = {(p.scenario, p.model) for p in driver.make_plans(max(counts), scenarios)}
        warm_plans = [driver.Plan(i, s, m, driver.METHODS[i % 3], i) for i, (s, m) in enumerate(sorted(combos))]
        started = time.perf_counter()
        warm_result = driver.run_sessions(url, warm_plans, timeout_ms=timeout_ms, viewport=VIEWPORT)
        print(f"warm-up round: {len(warm_plans)} sessions, {sum(o.ok for o in warm_result.outcomes)} ok, "
              f"{time.perf_counter() - started:.1f} s", flush=True)
        for n in counts:
            variants = [None] + ([driver.SlowJob(seed=int(time.time()) % 9000 + 1000)] if slow_job else [])
            for job in variants:
                shots = None if args.screenshots is None else args.screenshots / f"n{n}{'-slow' if job else ''}"
                server_before, busy_before = process_cpu_s(proc.pid), machine_busy_s()
                result = driver.run_sessions(url, driver.make_plans(n, scenarios), timeout_ms=timeout_ms,
                                             slow_job=job, viewport=VIEWPORT, screenshot_dir=shots,
                                             log=lambda m: print("  " + m, flush=True))
                rounds.append(summarise(result))
                # Where the machine's CPU went: the server, or the N browsers sharing its cores.
                rounds[-1]["cpu"] = {"server_s": round(process_cpu_s(proc.pid) - server_before, 1),
                                     "machine_busy_s": round(machine_busy_s() - busy_before, 1),
                                     "cores": os.cpu_count()}
                print(f"round N={n} slow job={'yes' if job else 'no'}: {rounds[-1]['succeeded']}/{n} succeeded, "
                      f"{rounds[-1]['wall_s']} s", flush=True)
        vmhwm_kb = _status_kb(proc.pid, "VmHWM")
        peak_kb = memory.peak_kb

    print()
    print_table(rounds)
    peak_mb = max(vmhwm_kb, peak_kb) / 1024
    print(f"server peak memory: VmHWM {vmhwm_kb / 1024:.0f} MB, polled RSS peak (with children) "
          f"{peak_kb / 1024:.0f} MB (target < {MEMORY_TARGET_MB} MB)")
    ok = all(r["succeeded"] == r["sessions"] and r["leaked"] == 0 for r in rounds)

    def median_of(r: dict) -> float:
        values = [s["median_s"] for s in r["latency"].values()]
        return statistics.median(values) if values else float("nan")

    ratios = {}
    for n in counts:
        plain = [r for r in rounds if r["sessions"] == n and not r["slow_job"]]
        slow = [r for r in rounds if r["sessions"] == n and r["slow_job"]]
        if plain and slow:
            ratios[str(n)] = round(median_of(slow[0]) / median_of(plain[0]), 2)
    print(json.dumps({
        "bench": "load", "sessions": counts, "scenarios": scenarios, "torch_threads": env.get("TRUSTLENS_TORCH_THREADS"),
        "all_succeeded_no_leaks": ok, "server_vmhwm_mb": round(vmhwm_kb / 1024), "server_peak_rss_mb": round(peak_kb / 1024),
        "memory_target_met": peak_mb < MEMORY_TARGET_MB,
        "median_latency_ratio_with_vs_without_slow_job": ratios,
        "rounds": [{k: v for k, v in r.items() if k not in ("errors", "leaks")} for r in rounds],
    }))
    if args.check and not (ok and peak_mb < MEMORY_TARGET_MB):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
