"""The engines of precompute: ``local`` (this process) and ``ray`` (Ray Data over actors), one per-batch code.

Both get the same work, the batches of every task (``(task, start, stop)``: ``[start, stop)`` ranges of
each op's batch size), and call :func:`run_batch` on each: the op's function on those rows, its columns
checked and encoded as a shard (:func:`core.precompute.output.encode_shard`). The driver
(:mod:`core.precompute.run`) writes what comes back, so the same inputs give the same shards, byte for
byte, on any engine and worker count.

- :class:`LocalEngine`: batches in order, on ``workers`` threads of this process (1: sequential). Model
  adapters are thread-safe, and MC dropout's keyed draws are per thread.
- :class:`RayEngine`: ``ray.data.from_items`` of the batches, one block each, then ``map_batches`` with
  :class:`ShardActor`, a callable class whose constructor opens the source itself (the built-in scenario
  by name, an upload by its file paths: :func:`core.precompute.plan.open_plan`) and prepares every
  task, so the model is loaded once per actor for all the ops of a run and never shipped through the
  object store; ``ActorPoolStrategy(size=N)`` (what ``concurrency=N`` meant before Ray deprecated it),
  ``num_gpus=G`` per actor when asked. An actor that dies is restarted and its batch retried
  (``max_restarts`` / ``max_task_retries``); past that the run fails with a message and nothing is
  published. Without an address the engine starts a local cluster (``num_cpus = workers``) and stops
  it afterwards; with one (``--address``, ``TRUSTLENS_RAY_ADDRESS``) it connects; a process already
  connected (the app, a test) keeps its cluster. Ray's usage telemetry is off
  (``RAY_USAGE_STATS_ENABLED=0`` before ray is imported).
"""

from __future__ import annotations

import json
import logging
import os
import resource
import sys
import warnings
from collections import deque
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np

from core.errors import ConfigurationError, ParameterError, TrustLensError, check_int
from core.precompute.output import INDEX, describe_columns, encode_shard
from core.precompute.plan import Context, Plan, Task, open_plan

ENGINES = ("local", "ray")
ADDRESS_ENV_VAR = "TRUSTLENS_RAY_ADDRESS"
RETRIES = 2  # restarts of a dead actor, and retries of its batch, before the run fails
ROOT = Path(__file__).resolve().parent.parent.parent
_WORKER_ENV = ("TRUSTLENS_DATA_DIR", "TRUSTLENS_CACHE_DIR", "TRUSTLENS_MODEL_CACHE_DIR", "TRUSTLENS_DEVICE",
               "TRUSTLENS_TORCH_THREADS", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3")


def batches(n: int, size: int) -> list[tuple[int, int]]:
    """``[start, stop)`` ranges covering ``range(n)``, ``size`` rows each (the last may be shorter)."""
    size = check_int("batch_size", size, "precompute")
    return [(start, min(n, start + size)) for start in range(0, n, size)]


def peak_rss_mb() -> float:
    """This process's peak resident memory so far, in MB (Linux reports kilobytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(peak / (1024 * 1024 if sys.platform == "darwin" else 1024), 1)


def _columns(task: Task, out: Any, n: int) -> dict[str, np.ndarray]:
    """The op's output as arrays with ``n`` rows each: numeric, boolean or string (no objects)."""
    if not isinstance(out, dict) or not out:
        raise TypeError(f"precompute op {task.name!r} must return a non-empty dict of arrays; got {type(out).__name__}.")
    arrays = {}
    for name, value in out.items():
        array = np.asarray(value)
        if array.dtype.hasobject:
            if not all(isinstance(v, str) for v in array.reshape(-1)):
                raise TypeError(f"precompute op {task.name!r} returned column {name!r} as an object array; "
                                "return numbers, booleans or strings (shards are read without pickle).")
            array = array.astype(str)
        if array.ndim == 0 or len(array) != n:
            raise ValueError(f"precompute op {task.name!r} returned column {name!r} with shape {array.shape}; "
                             f"expected one row per input ({n}).")
        if name == INDEX:
            raise ValueError(f"precompute op {task.name!r} may not return a column named {INDEX!r}.")
        arrays[str(name)] = array
    if task.op.main not in arrays:
        raise ValueError(f"precompute op {task.name!r} did not return its main column {task.op.main!r}.")
    return arrays


def run_batch(context: Context, task: Task, start: int, stop: int) -> dict[str, Any]:
    """The per-batch code of every engine: rows ``start .. stop - 1`` through the op, encoded as a shard.

    Returns ``{"start", "stop", "payload" (the shard's bytes), "sum", "abs_sum" (of the main column),
    "columns" (JSON of dtypes and per-row shapes), "pid", "rss_mb"}``.
    """
    rows = context.rows(task, start, stop)
    arrays = _columns(task, task.op.run(context.adapter, rows, task.params), stop - start)
    main = np.asarray(arrays[task.op.main], dtype=np.float64)
    payload = encode_shard({INDEX: rows.index, **arrays})
    return {"start": int(start), "stop": int(stop), "payload": payload, "sum": float(main.sum()),
            "abs_sum": float(np.abs(main).sum()), "columns": json.dumps(describe_columns(arrays)),
            "pid": os.getpid(), "rss_mb": peak_rss_mb()}


Work = list[tuple[int, int, int]]  # (task number, start, stop) of each batch, in order


class LocalEngine:
    """Batches in order on ``workers`` threads of this process (one: no thread at all)."""

    name = "local"

    def __init__(self, workers: int = 1) -> None:
        self.workers = check_int("workers", workers, "the local engine")

    def shards(self, context: Context, tasks: list[Task], work: Work) -> Iterator[dict[str, Any]]:
        """Each batch of ``work`` as :func:`run_batch`'s dict plus ``"task"`` (its number), in order."""
        for task in tasks:
            context.state(task)  # prepared once, before the threads share it

        def one(item: tuple[int, int, int]) -> dict[str, Any]:
            return {"task": item[0], **run_batch(context, tasks[item[0]], item[1], item[2])}

        if self.workers == 1:
            for item in work:
                yield one(item)
            return
        pool = ThreadPoolExecutor(self.workers, thread_name_prefix="trustlens-precompute")
        todo = iter(work)
        pending = deque(pool.submit(one, item) for item in islice(todo, 2 * self.workers))
        try:
            while pending:
                done = pending.popleft().result()
                for item in islice(todo, 1):
                    pending.append(pool.submit(one, item))
                yield done
        finally:  # cancelled or failed: queued batches never start; running ones finish, unread
            for future in pending:
                future.cancel()
            pool.shutdown(wait=True, cancel_futures=True)

    def close(self) -> None:
        pass


# -- Ray ---------------------------------------------------------------------------------------------
def import_ray() -> Any:
    """``ray`` with ``ray.data``, telemetry off; a ConfigurationError saying what to install when missing."""
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"  # before the first import: no usage reports
    try:
        import ray
        import ray.data  # noqa: F401 - the engine needs Ray Data, not only ray core
    except ImportError:
        raise ConfigurationError("--engine ray needs Ray (with Ray Data), which is not installed.",
                                 hint="pip install -r requirements-scale.txt") from None
    _quiet_ray_data()
    return ray


def worker_env() -> dict[str, str]:
    """What every worker of a cluster this process starts or joins sees: the checkout on PYTHONPATH, the
    TrustLens folders and device of this process, telemetry off."""
    env = {name: os.environ[name] for name in _WORKER_ENV if os.environ.get(name)}
    path = [str(ROOT)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    env.update(PYTHONPATH=os.pathsep.join(dict.fromkeys(path)), RAY_USAGE_STATS_ENABLED="0")
    return env


def connect(address: str | None = None, num_cpus: int | None = None) -> bool:
    """Join the Ray cluster at ``address``, or start a local one with ``num_cpus``; False when this process
    was already connected (then nothing is changed). Quiet: no dashboard, no worker logs on this terminal."""
    ray = import_ray()
    if ray.is_initialized():
        return False
    options: dict[str, Any] = {"runtime_env": {"env_vars": worker_env()}, "logging_level": logging.ERROR,
                               "log_to_driver": False}
    try:
        if address:
            ray.init(address=address, **options)
        else:
            ray.init(num_cpus=num_cpus, include_dashboard=False, **options)
    except ConnectionError as exc:
        raise ConfigurationError(f"Cannot reach the Ray cluster at {address!r}: {exc}",
                                 hint="start one with 'ray start --head' and pass its address (host:6379), or "
                                      f"leave --address and {ADDRESS_ENV_VAR} out to start a local one.") from None
    return True


class _RayDataNotices(logging.Filter):
    """Drops Ray Data's notice that its progress bars are off (the CLI prints its own progress)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "Progress bars disabled" not in record.getMessage()


def _quiet_ray_data() -> None:
    """Ray Data's chatter off in this process, once: its INFO lines ("execution finished"), its notice about
    progress bars, the deprecation warnings of settings we do not use. Its warnings and errors stay."""
    logger = logging.getLogger("ray.data")
    if not any(isinstance(f, _RayDataNotices) for f in logger.filters):
        logger.addFilter(_RayDataNotices())
        logger.setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"ray\.data(\.|$)")
    warnings.filterwarnings("ignore", message=r"`ray_remote_args` is deprecated")  # no named parameter in 2.60


class ShardActor:
    """A Ray Data worker: opens the plan's source once (the model loaded in this actor) and prepares each
    task's state, then turns each batch of (task, start, stop) rows into shards with :func:`run_batch`."""

    def __init__(self, plan: Plan, tasks: list[Task]) -> None:
        self.context = open_plan(plan)
        self.tasks = tasks
        for task in tasks:
            self.context.state(task)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        done = [{"task": int(t), **run_batch(self.context, self.tasks[int(t)], int(a), int(b))}
                for t, a, b in zip(batch["task"], batch["start"], batch["stop"])]
        out: dict[str, np.ndarray] = {}
        for name in ("task", "start", "stop", "sum", "abs_sum", "pid", "rss_mb"):
            out[name] = np.array([d[name] for d in done])
        for name in ("payload", "columns"):
            column = np.empty(len(done), dtype=object)
            column[:] = [d[name] for d in done]
            out[name] = column
        return out


def _cause(exc: BaseException, kind: type) -> BaseException | None:
    """The first exception of ``kind`` in ``exc``'s chain (Ray wraps a worker's exception as the cause)."""
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        current = todo.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, kind):
            return current
        todo += [current.__cause__, current.__context__, getattr(current, "cause", None)]
    return None


def _failure(exc: BaseException, what: str, retries: int = RETRIES) -> TrustLensError:
    """A Ray failure as the message the CLI and the job page show."""
    mine = _cause(exc, TrustLensError)
    if mine is not None:
        return mine  # type: ignore[return-value]
    import ray.exceptions as rex

    text = str(exc).strip().splitlines()
    first = next((line for line in text if line.strip()), type(exc).__name__)[:300]
    if _cause(exc, rex.ActorDiedError) or _cause(exc, rex.RayActorError) or "actor died" in str(exc).lower():
        return TrustLensError(
            f"{what}: a Ray worker died while computing a batch"
            + (f", and died again on each of its {retries} retries" if retries else "")
            + f" ({first}). Nothing was published.",
            hint="a worker killed for memory dies the same way: give the workers more memory or a smaller "
                 "--batch-size; the workers' logs are under /tmp/ray/session_latest/logs.")
    return TrustLensError(f"{what} failed on a Ray worker: {first}. Nothing was published.")


class RayEngine:
    """Ray Data ``map_batches`` over an actor pool of ``workers`` actors (each ``gpus_per_worker`` GPUs)."""

    name = "ray"

    def __init__(self, workers: int = 1, *, address: str | None = None, gpus_per_worker: float = 0.0,
                 retries: int = RETRIES) -> None:
        self.workers = check_int("workers", workers, "the ray engine")
        if gpus_per_worker < 0:
            raise ParameterError(f"--gpus-per-worker must be >= 0; got {gpus_per_worker}.")
        self.gpus = float(gpus_per_worker)
        self.retries = int(retries)
        self.address = address or None
        self.ray = import_ray()
        self.started = connect(self.address, num_cpus=self.workers)

    def shards(self, context: Context, tasks: list[Task], work: Work) -> Iterator[dict[str, Any]]:
        """Each batch of ``work`` as :func:`run_batch`'s dict plus ``"task"``, in the order they finish."""
        ray = self.ray
        items = [{"task": t, "start": a, "stop": b} for t, a, b in work]
        options: dict[str, Any] = {"num_cpus": 1}
        if self.gpus > 0:
            options["num_gpus"] = self.gpus
        self._check_resources()
        dataset = ray.data.from_items(items, override_num_blocks=len(items))  # one batch per block
        # max_restarts / max_task_retries have no named parameter in Ray 2.60 (ray_remote_args is deprecated)
        dataset = dataset.map_batches(
            ShardActor, fn_constructor_args=(context.plan(), tasks), batch_size=1, batch_format="numpy",
            compute=ray.data.ActorPoolStrategy(size=self.workers), max_restarts=self.retries,
            max_task_retries=self.retries, **options)
        settings = dataset.context
        settings.enable_progress_bars = False
        settings.print_on_execution_start = False
        settings.max_consecutive_actor_init_deaths = self.retries  # an actor that cannot open the source
        what = ", ".join(task.label for task in tasks)
        stream = iter(dataset.iter_rows())
        try:
            for row in stream:
                yield {"task": int(row["task"]), "start": int(row["start"]), "stop": int(row["stop"]),
                       "payload": bytes(row["payload"]), "sum": float(row["sum"]), "abs_sum": float(row["abs_sum"]),
                       "columns": str(row["columns"]), "pid": int(row["pid"]), "rss_mb": float(row["rss_mb"])}
        except TrustLensError:
            raise
        except Exception as exc:  # noqa: BLE001 - Ray's errors become one message naming the ops
            raise _failure(exc, what, self.retries) from exc
        finally:  # cancelled, failed or done: stop the execution (its actors) before the driver cleans up
            close = getattr(stream, "close", None)
            if close is not None:
                close()

    def _check_resources(self) -> None:
        """A pool of ``workers`` actors must fit the cluster (else Ray Data would wait for it forever)."""
        total = self.ray.cluster_resources()
        needs = {"CPU": float(self.workers), "GPU": self.workers * self.gpus}
        short = {k: (v, float(total.get(k, 0.0))) for k, v in needs.items() if v > float(total.get(k, 0.0)) + 1e-9}
        if short:
            what = "; ".join(f"{need:g} {k} asked, the cluster has {have:g}" for k, (need, have) in short.items())
            raise ConfigurationError(f"{self.workers} Ray workers do not fit the cluster ({what}).",
                                     hint="use fewer --workers (each takes 1 CPU, and --gpus-per-worker GPUs), or a "
                                          "larger cluster.")

    def close(self) -> None:
        if self.started:
            self.ray.shutdown()
            self.started = False


def make_engine(engine: str, workers: int = 1, *, address: str | None = None, gpus_per_worker: float = 0.0,
                retries: int = RETRIES) -> LocalEngine | RayEngine:
    """The engine called ``engine`` (``local`` or ``ray``)."""
    if engine == "local":
        if address:
            raise ParameterError("--address names a Ray cluster; it goes with --engine ray.")
        if gpus_per_worker:
            raise ParameterError("--gpus-per-worker is for --engine ray; with --engine local use --device cuda.")
        return LocalEngine(workers)
    if engine == "ray":
        return RayEngine(workers, address=address, gpus_per_worker=gpus_per_worker, retries=retries)
    raise ParameterError(f"Unknown engine {engine!r}.", hint=f"use one of: {', '.join(ENGINES)}.")
