"""The precompute driver: for each op, find it already published (skip), or run it on an engine and publish it.

:func:`precompute` opens the source once here (the model's and the rows' fingerprints make the keys),
plans one task per op (refusing, before any work, an op the model cannot do), and for each task:

1. a published result with the same key (manifest present, every shard's sha256 matching) is reused:
   ``skipped`` in the report, nothing runs;
2. otherwise whatever lies under the key's prefix (a crashed or cancelled run's shards, a result whose
   shards changed) is removed, the engine computes the batches, and this process writes each shard as
   it arrives and the manifest last. On any failure or cancel (``progress`` raising, as a job's does
   after Cancel) the shards written so far are removed: nothing half-written stays, nothing is published.

The batch size never changes a value or a key; the engine and the worker count change neither either.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass, field
from typing import Any

from core.errors import ParameterError, TrustLensError
from core.precompute.engines import ADDRESS_ENV_VAR, ENGINES, RETRIES, batches, import_ray, make_engine
from core.precompute.output import FOLDER, FORMAT, VERSION, Prefix, filesystem, now_iso, sha256
from core.precompute.plan import Context, SourceSpec, Task, open_context, plan_tasks
from core.progress import ProgressCallback, report
from core.store import library_versions


@dataclass
class OpResult:
    """One op's outcome, as the CLI's JSON prints it (:meth:`as_dict`)."""

    op: str
    method: str | None
    params: dict[str, Any]
    key: str
    rows: int
    columns: list[str]
    sum: float
    abs_sum: float
    seconds: float
    skipped: bool
    shards: int
    cleaned: int = 0
    workers_seen: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"op": self.op, "method": self.method, "key": self.key, "rows": self.rows, "columns": self.columns,
                "sum": self.sum, "abs_sum": self.abs_sum, "seconds": round(self.seconds, 3), "skipped": self.skipped,
                "shards": self.shards, "cleaned": self.cleaned, "params": self.params,
                "workers_seen": self.workers_seen}


@dataclass
class Report:
    """A whole run: what it worked on and each op's outcome."""

    scenario: str
    model: str
    split: str
    limit: int | None
    rows: int
    engine: str
    workers: int
    store: str
    ops: list[OpResult]

    def as_dict(self) -> dict[str, Any]:
        return {"scenario": self.scenario, "model": self.model, "split": self.split, "limit": self.limit,
                "rows": self.rows, "engine": self.engine, "workers": self.workers, "store": self.store,
                "ops": [{**r.as_dict(), "store": f"{self.store.rstrip('/')}/{FOLDER}/{r.key}"} for r in self.ops]}


def _from_manifest(manifest: dict[str, Any], task: Task, seconds: float) -> OpResult:
    return OpResult(task.name, task.method, manifest["params"], manifest["key"], int(manifest["rows"]),
                    list(manifest["columns"]), float(manifest["sum"]), float(manifest["abs_sum"]), seconds, True,
                    len(manifest["shards"]), 0, list(manifest.get("workers_seen", [])))


def _manifest(context: Context, task: Task, written: list[dict[str, Any]], engine: Any, seconds: float) -> dict[str, Any]:
    """The manifest of a complete run: shards in row order, checked to cover every row once."""
    shards = sorted(written, key=lambda s: s["start"])
    expected = 0
    for s in shards:
        if s["start"] != expected:
            raise TrustLensError(f"{task.label}: the engine returned rows {s['start']}..{s['stop'] - 1} after "
                                 f"{expected}; a batch is missing or repeated. Nothing was published.")
        expected = s["stop"]
    if expected != context.n_rows:
        raise TrustLensError(f"{task.label}: the engine returned {expected} of {context.n_rows} rows. "
                             "Nothing was published.")
    for s in shards[1:]:
        if s["columns"] != shards[0]["columns"]:
            raise TrustLensError(f"{task.label}: shard {s['path']} has the columns {s['columns']}, the first "
                                 f"{shards[0]['columns']}. Nothing was published.")
    columns = json.loads(shards[0]["columns"])
    seen: dict[int, dict[str, Any]] = {}
    for s in shards:
        entry = seen.setdefault(s["pid"], {"pid": s["pid"], "batches": 0, "peak_rss_mb": 0.0})
        entry["batches"] += 1
        entry["peak_rss_mb"] = max(entry["peak_rss_mb"], s["rss_mb"])
    return {
        "format": FORMAT, "version": VERSION, "key": task.key, "op": task.name, "method": task.method,
        "params": task.params, "main": task.op.main, "model": context.model_fingerprint,
        "data": context.data_fingerprint, "rows": context.n_rows, "columns": columns,
        "shards": [{k: s[k] for k in ("path", "start", "stop", "sha256", "bytes")} for s in shards],
        "sum": float(sum(s["sum"] for s in shards)), "abs_sum": float(sum(s["abs_sum"] for s in shards)),
        "engine": engine.name, "workers": engine.workers, "seconds": round(seconds, 3), "created": now_iso(),
        "libraries": library_versions(task.op.libraries), "workers_seen": sorted(seen.values(), key=lambda e: e["pid"]),
        "source": {"model": context.model, "split": context.split, "limit": context.limit,
                   "scenario": context.source.name},
    }


def run_tasks(context: Context, tasks: list[Task], store: str, engine: Callable[[], Any], *,
              batch_size: int | None = None, progress: ProgressCallback | None = None) -> list[OpResult]:
    """Publish each task's result under ``store``, or find it there: see the module's docstring.

    The tasks still to compute run in one pass of the engine (one pool of Ray actors for all of them),
    batch after batch of the first task, then the next; each task is published as soon as its last shard
    is written. ``engine`` makes the engine on first use: a run that only skips starts no Ray cluster.
    """
    started = time.perf_counter()
    n = context.n_rows
    results: list[OpResult | None] = [None] * len(tasks)
    prefixes = [Prefix(store, task.key) for task in tasks]
    cleaned = [0] * len(tasks)
    todo: list[int] = []
    for i, (task, prefix) in enumerate(zip(tasks, prefixes)):
        found = prefix.open(verify=True)
        if found is not None:
            report(progress, 0.0, f"{task.label}: already precomputed ({found.rows:,} rows, key {task.key[:12]}), "
                                  "skipped")
            results[i] = _from_manifest(found.manifest, task, time.perf_counter() - started)
        else:
            cleaned[i] = prefix.clear()  # a half-written prefix (no manifest) or one whose shards no longer match
            todo.append(i)
    if not todo:
        return [r for r in results if r is not None]
    runner = engine()
    plan = {i: batches(n, batch_size or tasks[i].op.batch_rows) for i in todo}
    work = [(k, a, b) for k, i in enumerate(todo) for a, b in plan[i]]
    run_id = uuid.uuid4().hex[:12]
    written: dict[int, list[dict[str, Any]]] = {i: [] for i in todo}
    left = {i: n for i in todo}
    labels = ", ".join(tasks[i].label for i in todo)
    report(progress, 0.0, f"{labels}: {n:,} rows in {len(work)} batches on the {runner.name} engine "
                          f"({runner.workers} worker{'s' if runner.workers > 1 else ''})")
    since, done = time.perf_counter(), 0
    try:
        with closing(runner.shards(context, [tasks[i] for i in todo], work)) as stream:
            for shard in stream:
                i = todo[shard["task"]]
                name = f"shard-{run_id}-{shard['start']:010d}.npz"
                prefixes[i].write(name, shard["payload"])
                written[i].append({"path": name, "start": shard["start"], "stop": shard["stop"],
                                   "sha256": sha256(shard["payload"]), "bytes": len(shard["payload"]),
                                   "sum": shard["sum"], "abs_sum": shard["abs_sum"], "columns": shard["columns"],
                                   "pid": shard["pid"], "rss_mb": shard["rss_mb"]})
                rows = shard["stop"] - shard["start"]
                left[i] -= rows
                if left[i] == 0:  # every row of this task is written: publish it (manifest last)
                    now = time.perf_counter()
                    manifest = _manifest(context, tasks[i], written[i], runner, now - since)
                    prefixes[i].publish(manifest)
                    results[i] = OpResult(tasks[i].name, tasks[i].method, tasks[i].params, tasks[i].key, n,
                                          list(manifest["columns"]), manifest["sum"], manifest["abs_sum"], now - since,
                                          False, len(written[i]), cleaned[i], manifest["workers_seen"])
                    since = now
                done += rows
                report(progress, done / (n * len(todo)), f"{tasks[i].label}: {n - left[i]:,}/{n:,} rows")
    except BaseException:  # failed or cancelled (a job's progress raises): nothing half-written stays behind
        for i in todo:
            if results[i] is None:
                prefixes[i].clear()
        raise
    missing = [tasks[i].label for i in todo if results[i] is None]
    if missing:  # the engine ended without every batch
        for i in todo:
            if results[i] is None:
                prefixes[i].clear()
        raise TrustLensError(f"{', '.join(missing)}: the engine returned fewer rows than asked. Nothing was published.")
    return [r for r in results if r is not None]


def precompute(source: SourceSpec, ops: list[str] | tuple[str, ...], *, store: str, split: str = "test",
               limit: int | None = None, methods: list[str] | tuple[str, ...] = (),
               method_params: dict[str, dict[str, Any]] | None = None,
               op_params: dict[str, dict[str, Any]] | None = None, engine: str = "local", address: str | None = None,
               workers: int = 1, gpus_per_worker: float = 0.0, batch_size: int | None = None,
               forward_batch_size: int = 256, retries: int = RETRIES,
               progress: ProgressCallback | None = None) -> Report:
    """Precompute ``ops`` over the rows of ``split`` (its first ``limit``) of ``source`` into ``store``.

    Parameters
    ----------
    source : SourceSpec
        A built-in scenario or an upload's files.
    ops : sequence of str
        Names of :mod:`core.precompute.ops` (``predictions``, ``activations``, ``attributions``,
        ``uncertainty``, ``shap``, ``lime``, or one registered since).
    store : str
        A local folder or an fsspec URL (``s3://bucket/prefix``).
    methods, method_params
        ``attributions``' methods and their params by method name (``{"integrated_gradients": {"steps": 32}}``).
    op_params : dict
        Raw params per op (``{"activations": {"layer": "relu3"}, "uncertainty": {"passes": 30}}``).
    engine, address, workers, gpus_per_worker
        ``local`` or ``ray`` (:mod:`core.precompute.engines`).
    retries : int
        Ray: restarts of a dead actor and retries of its batch before the run fails (default 2).
    batch_size : int, optional
        Rows per batch and shard (default: the op's own). Never changes a value or the key.
    progress : callable, optional
        ``progress(fraction, message)``; raising in it (a cancelled job) stops the run between two batches,
        with nothing half-written left behind.
    """
    if engine not in ENGINES:
        raise ParameterError(f"Unknown engine {engine!r}.", hint=f"use one of: {', '.join(ENGINES)}.")
    if engine == "local" and (address or gpus_per_worker):
        raise ParameterError("--address and --gpus-per-worker go with --engine ray (with the local engine, "
                             "--device cuda runs on a GPU).")
    if engine == "ray":
        import_ray()  # Ray missing: said before anything loads
    filesystem(store)  # a store that cannot be opened fails before anything loads
    context = open_context(source, split, limit, forward_batch_size)
    tasks = plan_tasks(context, ops, methods=methods, method_params=method_params, op_params=op_params)
    made: list[Any] = []

    def get_engine() -> Any:
        if not made:
            made.append(make_engine(engine, workers, address=address, gpus_per_worker=gpus_per_worker,
                                    retries=retries))
        return made[0]

    try:
        results = run_tasks(context, tasks, store, get_engine, batch_size=batch_size, progress=progress)
    finally:
        for runner in made:
            runner.close()
    return Report(context.source.name, context.model, split, limit, context.n_rows, engine, workers, str(store),
                  results)


def job_engine(engine: str | None = None) -> tuple[str, str | None]:
    """(engine, address) of a precompute job: Ray on the cluster ``TRUSTLENS_RAY_ADDRESS`` names when it is set
    (and the job asked for no engine), else the local engine."""
    address = os.environ.get(ADDRESS_ENV_VAR, "").strip() or None
    chosen = engine or ("ray" if address else "local")
    return chosen, address if chosen == "ray" else None
