"""Precompute benchmark: the local engine against Ray at 1 and 2 workers on this machine (a benchmark, not a test).

Workloads (``core.precompute``, the ``precompute`` verb's code), each on the same rows:

- ``attributions``: Integrated Gradients (50 steps, the method's defaults) of the digits CNN on every
  digit (train + val + test, 1,797 images): compute-bound, the kind of work Ray is for;
- ``predictions``: the same CNN's probabilities on the same rows: a few milliseconds of work in all,
  so its times are almost only each engine's fixed costs (Ray: starting the actors, which import torch
  and load the model).

Every run writes to a fresh store (nothing is skipped) and is timed from the call to the published
manifest. ``startup_s`` is the time to the first shard written (Ray: the actors' start-up, once per
run); ``steady_rows_per_s`` is the throughput after it. One torch intra-op thread per worker in both
engines (Ray gives each 1-CPU actor one thread; this process sets one for the local engine's threads).
The local cluster (``num_cpus`` = the largest worker count) is started once, outside the timings.

Rows: engine, workers, seconds, rows/s, start-up, steady rows/s, peak RSS per worker (Ray: each actor;
local: this whole process). Then the plan for 1 M samples from the measured per-sample cost: hours on N
workers (start-up + 1e6 x per-sample / (N x the 1 -> 2 worker efficiency measured here, assumed to hold
beyond 2)), memory per worker (measured, independent of N: a worker holds the model and one batch), the
store's size (bytes per row of the shards x 1e6). A GPU is measured with ``--device cuda`` (local) or
``--gpus-per-worker 1`` (Ray) on a machine that has one; without, its line says so.

Prints a table, then one JSON line of ratios (``ray_overhead_w1``, ``ray_overhead_w2``: Ray's time /
the local engine's at equal workers, goal <= 1.25, for the compute-bound workload; ``ray_steady_overhead_*``:
the same after start-up, from the steady throughputs; ``rows_within_goal_*``: from how many rows Ray's
whole time is within the goal, start-up included (None: never, at these throughputs); ``scaling_*``:
1-worker time / 2-worker time).
Run: ``TRUSTLENS_DATA_DIR=../shared/data python bench/precompute.py`` (``--rows N`` for fewer rows).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from core.precompute.plan import SourceSpec  # noqa: E402
from core.precompute.run import precompute  # noqa: E402

OVERHEAD_GOAL = 1.25
SAMPLES = 1_000_000


def timed_run(source: SourceSpec, op: str, methods: list[str], engine: str, workers: int, rows: int | None,
              split: str, gpus: float) -> dict:
    """One precompute into a fresh store: seconds, start-up (first shard), steady throughput, memory."""
    marks: list[tuple[float, float]] = []

    def progress(fraction: float, message: str) -> None:
        marks.append((time.perf_counter(), fraction))

    with tempfile.TemporaryDirectory(prefix="bench-precompute-") as store:
        started = time.perf_counter()
        report = precompute(source, [op], store=store, split=split, limit=rows, methods=methods, engine=engine,
                            workers=workers, gpus_per_worker=gpus, progress=progress)
        seconds = time.perf_counter() - started
        from core.precompute.output import Prefix

        result = report.ops[0]
        found = Prefix(store, result.key).open()
        stored = sum(s["bytes"] for s in found.manifest["shards"])
    first = next((t for t, f in marks if f > 0), started + seconds)
    first_rows = next((s["stop"] - s["start"] for s in found.manifest["shards"]), 0)
    steady = (report.rows - first_rows) / max(started + seconds - first, 1e-9)
    import resource

    own_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    rss = [w["peak_rss_mb"] for w in result.workers_seen if w["pid"] != os.getpid()] or [round(own_rss, 1)]
    return {"op": op, "engine": engine, "workers": workers, "rows": report.rows, "seconds": round(seconds, 3),
            "rows_per_s": round(report.rows / seconds, 1), "startup_s": round(first - started, 3),
            "steady_rows_per_s": round(steady, 1), "peak_rss_mb_per_worker": max(rss),
            "actors": len([w for w in result.workers_seen if w["pid"] != os.getpid()]),
            "bytes_per_row": round(stored / report.rows, 1), "sum": result.sum}


def plan_lines(rows: list[dict], gpus: float, device: str) -> list[str]:
    """The plan for 1 M samples from the measured per-sample cost of the compute-bound workload."""
    ray1 = next(r for r in rows if r["engine"] == "ray" and r["workers"] == 1)
    ray2 = next((r for r in rows if r["engine"] == "ray" and r["workers"] == 2), None)
    per_sample = 1.0 / ray1["steady_rows_per_s"]
    efficiency = min(1.0, (ray2["steady_rows_per_s"] / ray1["steady_rows_per_s"]) / 2) if ray2 else 1.0
    lines = [f"plan for {SAMPLES:,} samples ({ray1['op']}): {per_sample * 1000:.2f} ms per sample per worker, "
             f"2-worker efficiency {efficiency:.2f}, start-up {ray1['startup_s']:.1f} s, "
             f"{ray1['peak_rss_mb_per_worker']:.0f} MB per worker, store {ray1['bytes_per_row'] * SAMPLES / 1e9:.2f} GB"]
    for n in (1, 2, 8, 32):
        hours = (ray1["startup_s"] + SAMPLES * per_sample / (n * (efficiency if n > 1 else 1.0))) / 3600
        lines.append(f"  {n:>3} CPU workers: {hours:7.2f} h, {n * ray1['peak_rss_mb_per_worker'] / 1024:5.1f} GB "
                     f"of worker memory")
    if device.startswith("cuda") or gpus > 0:
        lines.append(f"  GPU: the rows above ran on {device if device.startswith('cuda') else 'GPU actors'}")
    else:
        lines.append("  GPU: not measured (no GPU on this machine); run this script with --device cuda or "
                     "--gpus-per-worker 1 on one, and the same formula gives its hours")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenario", default="digits")
    parser.add_argument("--split", default="all")
    parser.add_argument("--rows", type=int, default=None, help="only the first N rows (default: all)")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--device", default="cpu", help="TRUSTLENS_DEVICE of this process and the actors")
    parser.add_argument("--gpus-per-worker", type=float, default=0.0)
    args = parser.parse_args(argv)

    os.environ["TRUSTLENS_DEVICE"] = args.device
    import torch

    torch.set_num_threads(1)  # one intra-op thread per worker, as Ray's 1-CPU actors have
    from core.precompute.engines import connect

    source = SourceSpec(scenario=args.scenario)
    # warm-up in this process: the model, the data, torch's first passes (not what we time)
    with tempfile.TemporaryDirectory(prefix="bench-warm-") as warm:
        precompute(source, ["predictions"], store=warm, split=args.split, limit=64)
    started = time.perf_counter()
    connect(num_cpus=max(args.workers))
    cluster_s = time.perf_counter() - started
    print(f"local Ray cluster of {max(args.workers)} CPUs started in {cluster_s:.1f} s (not in the timings)")
    print(f"{'op':<13} {'engine':<6} {'workers':>7} {'rows':>6} {'seconds':>8} {'rows/s':>8} {'startup_s':>9} "
          f"{'steady/s':>9} {'MB/worker':>9}")
    results = []
    for op, methods in (("attributions", ["integrated_gradients"]), ("predictions", [])):
        for workers in args.workers:
            for engine in ("local", "ray"):
                row = timed_run(source, op, methods, engine, workers, args.rows, args.split, args.gpus_per_worker
                                if engine == "ray" else 0.0)
                results.append(row)
                print(f"{op:<13} {engine:<6} {workers:>7} {row['rows']:>6} {row['seconds']:8.2f} "
                      f"{row['rows_per_s']:8.1f} {row['startup_s']:9.2f} {row['steady_rows_per_s']:9.1f} "
                      f"{row['peak_rss_mb_per_worker']:9.0f}", flush=True)

    def ratio(op: str, a: tuple[str, int], b: tuple[str, int]) -> float | None:
        x = next((r for r in results if r["op"] == op and (r["engine"], r["workers"]) == a), None)
        y = next((r for r in results if r["op"] == op and (r["engine"], r["workers"]) == b), None)
        return round(x["seconds"] / y["seconds"], 3) if x and y else None

    def steady(op: str, engine: str, workers: int) -> dict | None:
        return next((r for r in results if r["op"] == op and (r["engine"], r["workers"]) == (engine, workers)), None)

    def goal_rows(workers: int) -> int | None:
        """Rows from which Ray's time is within the goal of the local engine's at ``workers`` (None: never, at
        the measured throughputs): start-up + rows / steady throughput for each."""
        ray, local = steady("attributions", "ray", workers), steady("attributions", "local", workers)
        if not (ray and local):
            return None
        per_row = OVERHEAD_GOAL / local["steady_rows_per_s"] - 1.0 / ray["steady_rows_per_s"]
        if per_row <= 0:
            return None
        return max(0, int((ray["startup_s"] - OVERHEAD_GOAL * local["startup_s"]) / per_row) + 1)

    def steady_ratio(workers: int) -> float | None:
        ray, local = steady("attributions", "ray", workers), steady("attributions", "local", workers)
        return round(local["steady_rows_per_s"] / ray["steady_rows_per_s"], 3) if ray and local else None

    sums_agree = all(len({r["sum"] for r in results if r["op"] == op}) == 1 for op in ("attributions", "predictions"))
    for line in plan_lines([r for r in results if r["op"] == "attributions"], args.gpus_per_worker, args.device):
        print(line)
    import ray

    ray.shutdown()
    summary = {
        "bench": "precompute", "scenario": args.scenario, "split": args.split, "rows": results[0]["rows"],
        "ray_overhead_w1": ratio("attributions", ("ray", 1), ("local", 1)),
        "ray_overhead_w2": ratio("attributions", ("ray", 2), ("local", 2)),
        "ray_overhead_goal": OVERHEAD_GOAL,
        "ray_steady_overhead_w1": steady_ratio(1), "ray_steady_overhead_w2": steady_ratio(2),
        "rows_within_goal_w1": goal_rows(1), "rows_within_goal_w2": goal_rows(2),
        "predictions_ray_overhead_w1": ratio("predictions", ("ray", 1), ("local", 1)),
        "scaling_local": ratio("attributions", ("local", 1), ("local", 2)),
        "scaling_ray": ratio("attributions", ("ray", 1), ("ray", 2)),
        "sums_agree": sums_agree, "cluster_start_s": round(cluster_s, 2), "results": results,
    }
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
