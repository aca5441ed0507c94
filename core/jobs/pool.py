"""Heavy work as jobs: off the request thread, keyed by content, shared, cancellable, found again.

One API for work that takes longer than a page should block (training an ensemble, ...)::

    job_id = runner().submit("uncertainty_source", {"scenario": "digits", ...}, owner=session_id)
    runner().status(job_id)    # JobStatus: queued / running (fraction, message, estimate) / done / failed / ...
    runner().result(job_id)    # the value, once done
    runner().cancel(job_id)    # stops at the work's next progress report

- **Keyed by content.** A job's id is the hash of its kind and parameters, like the artifact store's
  keys, so a second session (or a reload of the first) asking for the same work attaches to the
  running job instead of starting another, and sees the same progress.
- **A bounded pool.** Jobs run on ``TRUSTLENS_JOB_WORKERS`` threads (default 1: the machine's cores
  are the limit, and a second training in parallel would only slow both); the others wait, queued.
  One session may have at most ``TRUSTLENS_JOBS_PER_SESSION`` (default 2) jobs queued or running.
- **Cancelling** is cooperative: the job's progress callback raises :class:`JobCancelled` at the
  next report, so the work stops between two steps; what it stored so far are whole entries
  (the store writes atomically), never half a result.
- **A record per job** (JSON, beside the artifact store: ``<cache>/jobs/<id>.json``) says who ran it
  and how it ended. A server that starts finds the records of jobs that were queued or running in a
  process that no longer exists and marks them ``interrupted``: the page says so and offers to
  start them again.
- **Results** are the work's own return value, held while the process runs; the work itself
  caches what it computes in the artifact store, so a page reads a finished job's result from the
  store the usual way.

Work is registered by kind with :func:`register`; its function takes the parameters as keyword
arguments plus ``progress``. No UI import here: components/jobs_view.py draws a job on a page.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import traceback
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.errors import ParameterError, TrustLensError, unknown_name
from core.fingerprint import hash_json

WORKERS_ENV_VAR = "TRUSTLENS_JOB_WORKERS"
PER_SESSION_ENV_VAR = "TRUSTLENS_JOBS_PER_SESSION"
ACTIVE = ("queued", "running")
FINAL = ("done", "failed", "cancelled", "interrupted")


class JobCancelled(Exception):
    """Raised inside a job's work by its progress callback once the job was cancelled."""


class JobLimitError(ParameterError):
    """A session asked for more concurrent jobs than it may run."""


Work = Callable[..., Any]
KINDS: dict[str, tuple[str, Work]] = {}  # kind -> (title, function(**params, progress=...))


def register(kind: str, title: str) -> Callable[[Work], Work]:
    """Decorator: make ``fn(**params, progress=callback)`` runnable as jobs of ``kind``."""

    def add(fn: Work) -> Work:
        KINDS[kind] = (title, fn)
        return fn

    return add


def job_id(kind: str, params: dict[str, Any]) -> str:
    """The id of the job that runs ``kind`` on ``params``: the same work always has the same id."""
    return hash_json({"job": kind, "params": params})


@dataclass(frozen=True)
class JobStatus:
    """A snapshot of one job, safe to read from any thread."""

    id: str
    kind: str
    title: str
    status: str  # queued, running, done, failed, cancelled, interrupted
    fraction: float
    message: str
    submitted: float
    started: float | None
    finished: float | None
    error: str | None
    owners: int  # sessions that asked for this work

    @property
    def active(self) -> bool:
        return self.status in ACTIVE

    @property
    def elapsed(self) -> float:
        if self.started is None:
            return 0.0
        return (self.finished or time.time()) - self.started

    @property
    def eta_seconds(self) -> float | None:
        """Seconds left at the pace so far (None until 5 % is done or when the job is not running)."""
        if self.status != "running" or self.fraction < 0.05:
            return None
        return self.elapsed * (1.0 - self.fraction) / self.fraction


@dataclass
class _Job:
    id: str
    kind: str
    title: str
    params: dict[str, Any]
    status: str = "queued"
    fraction: float = 0.0
    message: str = "waiting for a free worker"
    submitted: float = field(default_factory=time.time)
    started: float | None = None
    finished: float | None = None
    error: str | None = None
    owners: set[str] = field(default_factory=set)
    result: Any = None
    cancel: threading.Event = field(default_factory=threading.Event)
    done: threading.Event = field(default_factory=threading.Event)

    @property
    def active(self) -> bool:
        return self.status in ACTIVE

    def snapshot(self) -> JobStatus:
        return JobStatus(self.id, self.kind, self.title, self.status, self.fraction, self.message, self.submitted,
                         self.started, self.finished, self.error, len(self.owners))


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


class JobRunner:
    """Runs registered work in a bounded thread pool; see the module's docstring.

    Parameters
    ----------
    workers : int
        Threads that run jobs at once.
    per_owner : int
        Jobs one owner (a browser session) may have queued or running.
    records : Path, optional
        Folder for the jobs' JSON records (none: records are kept in memory only).
    """

    def __init__(self, workers: int = 1, per_owner: int = 2, records: Path | None = None,
                 observer: Callable[[str, float, str], None] | None = None) -> None:
        self.observer = observer  # called with (job id, fraction, message) on every progress report
        self.workers = max(1, int(workers))
        self.per_owner = max(1, int(per_owner))
        self.records = Path(records) if records is not None else None
        self._pool = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="trustlens-job")
        self._jobs: dict[str, _Job] = {}
        self._guard = threading.Lock()
        if self.records is not None:
            self.records.mkdir(parents=True, exist_ok=True)
            self._recover()

    # -- records ----------------------------------------------------------------------------
    def _record_path(self, jid: str) -> Path | None:
        return None if self.records is None else self.records / f"{jid}.json"

    def _write_record(self, job: _Job) -> None:
        path = self._record_path(job.id)
        if path is None:
            return
        document = {"id": job.id, "kind": job.kind, "title": job.title, "params": job.params, "status": job.status,
                    "fraction": job.fraction, "message": job.message, "submitted": job.submitted,
                    "started": job.started, "finished": job.finished, "error": job.error,
                    "pid": os.getpid(), "host": socket.gethostname()}
        tmp = path.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")
        try:
            tmp.write_text(json.dumps(document, default=str))
            os.replace(tmp, path)
        except OSError:  # a read-only or full cache folder: the job still runs, unrecorded
            tmp.unlink(missing_ok=True)

    def _recover(self) -> None:
        """Mark the records of jobs whose process is gone as interrupted, and keep them to be shown."""
        host = socket.gethostname()
        for path in sorted(self.records.glob("*.json")):
            try:
                document = json.loads(path.read_text())
            except (OSError, ValueError):
                continue
            if document.get("status") in ACTIVE:
                gone = document.get("host") == host and not _pid_alive(int(document.get("pid", -1)))
                if not gone:
                    continue  # another live process (or host) runs it: not ours to judge
                document.update(status="interrupted", finished=time.time(),
                                error="the server stopped while this job was running; start it again")
                try:
                    path.write_text(json.dumps(document, default=str))
                except OSError:
                    pass
            if document.get("status") == "interrupted":
                job = _Job(document["id"], document.get("kind", "?"), document.get("title", ""),
                           document.get("params", {}), status="interrupted",
                           fraction=float(document.get("fraction", 0.0)), message=document.get("message", ""),
                           submitted=float(document.get("submitted", time.time())), started=document.get("started"),
                           finished=document.get("finished"), error=document.get("error"))
                job.done.set()
                self._jobs[job.id] = job

    # -- the API ----------------------------------------------------------------------------
    def submit(self, kind: str, params: dict[str, Any], *, owner: str = "", title: str | None = None,
               again: bool = False) -> str:
        """Start ``kind`` on ``params`` (or attach ``owner`` to the job already doing it); returns the job id.

        A finished job is started again when it did not succeed (failed, cancelled, interrupted), or with
        ``again`` (its result is gone: the store was emptied since). Raises :class:`JobLimitError` when
        ``owner`` already has :attr:`per_owner` jobs queued or running.
        """
        if kind not in KINDS:
            raise unknown_name("job kind", kind, sorted(KINDS))
        jid = job_id(kind, params)
        with self._guard:
            job = self._jobs.get(jid)
            if job is not None and (job.active or (job.status == "done" and not again)):
                if owner:
                    job.owners.add(owner)
                return jid
            if owner:
                mine = [j for j in self._jobs.values() if j.active and owner in j.owners]
                if len(mine) >= self.per_owner:
                    raise JobLimitError(
                        f"This session already runs {len(mine)} jobs ({', '.join(j.title for j in mine)}); "
                        f"at most {self.per_owner} run per session.",
                        hint="wait for one to finish, or cancel one.")
            job = _Job(jid, kind, title or KINDS[kind][0], dict(params), owners={owner} if owner else set())
            self._jobs[jid] = job
        self._write_record(job)
        self._pool.submit(self._run, job)
        return jid

    def _run(self, job: _Job) -> None:
        if job.cancel.is_set():
            self._finish(job, "cancelled", None)
            return
        job.status, job.started, job.message = "running", time.time(), "starting"
        self._write_record(job)
        last_write = [0.0]

        def progress(fraction: float, message: str) -> None:
            if job.cancel.is_set():
                raise JobCancelled(job.id)
            job.fraction, job.message = min(1.0, max(job.fraction, float(fraction))), str(message)
            if self.observer is not None:
                self.observer(job.id, job.fraction, job.message)
            now = time.monotonic()
            if now - last_write[0] > 2.0:  # the record is for restarts, not for live progress
                last_write[0] = now
                self._write_record(job)

        _, work = KINDS[job.kind]
        try:
            job.result = work(**job.params, progress=progress)
        except JobCancelled:
            self._finish(job, "cancelled", None)
        except TrustLensError as exc:
            self._finish(job, "failed", exc.message + (f" Try: {exc.hint}" if exc.hint else ""))
        except Exception as exc:  # noqa: BLE001 - a job's failure is shown on its page, never lost
            self._finish(job, "failed", f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=4)}")
        else:
            job.fraction, job.message = 1.0, "done"
            self._finish(job, "done", None)

    def _finish(self, job: _Job, status: str, error: str | None) -> None:
        job.status, job.error, job.finished = status, error, time.time()
        self._write_record(job)
        job.done.set()

    def status(self, jid: str) -> JobStatus | None:
        job = self._jobs.get(jid)
        return None if job is None else job.snapshot()

    def result(self, jid: str) -> Any:
        """The work's return value; raises ``KeyError`` for an unknown job, ``RuntimeError`` if not done."""
        job = self._jobs[jid]
        if job.status != "done":
            raise RuntimeError(f"job {jid[:12]} is {job.status}" + (f": {job.error}" if job.error else ""))
        return job.result

    def cancel(self, jid: str) -> bool:
        """Ask the job to stop; True when it was queued or running."""
        job = self._jobs.get(jid)
        if job is None or not job.active:
            return False
        job.cancel.set()
        return True

    def wait(self, jid: str, timeout: float | None = None) -> JobStatus:
        """Block until the job has ended (or ``timeout`` seconds passed); returns its status."""
        self._jobs[jid].done.wait(timeout)
        return self._jobs[jid].snapshot()

    def jobs(self, owner: str | None = None, active_only: bool = False) -> list[JobStatus]:
        with self._guard:
            found = [j for j in self._jobs.values() if (owner is None or owner in j.owners)
                     and (not active_only or j.active)]
        return [j.snapshot() for j in sorted(found, key=lambda j: j.submitted)]

    def shutdown(self, wait: bool = False) -> None:
        for job in list(self._jobs.values()):
            job.cancel.set()
        self._pool.shutdown(wait=wait, cancel_futures=True)


_runner: JobRunner | None = None
_runner_guard = threading.Lock()


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ParameterError(f"{name} must be a whole number; got {raw!r}.",
                             hint=f"unset {name} or set it to 1 or 2.") from None
    if value < 1:
        raise ParameterError(f"{name} must be at least 1; got {value}.", hint=f"unset {name} or set it to 1 or 2.")
    return value


def runner() -> JobRunner:
    """The process's job runner (records in ``jobs/`` of the store's local folder: for a remote store,
    ``TRUSTLENS_CACHE_DIR``; job records are this server's, not shared)."""
    global _runner
    with _runner_guard:
        if _runner is None:
            from core.store import default_store

            _runner = JobRunner(_env_int(WORKERS_ENV_VAR, 1), _env_int(PER_SESSION_ENV_VAR, 2),
                                records=default_store().local_dir / "jobs")
        return _runner


def run_in_foreground(kind: str, params: dict[str, Any], *, title: str | None = None,
                      progress: Callable[[float, str], None] | None = None) -> Any:
    """Run one job of ``kind`` to its end through a runner of its own, for a command line: every progress report of
    the job is passed on to ``progress`` (from the job's thread), Ctrl-C cancels the job (it stops at its next step, as from a page)
    and re-raises, and a job that failed raises its message as a :class:`~core.errors.TrustLensError`.
    Returns the work's value."""
    from core.errors import TrustLensError

    forward = None if progress is None else (lambda _jid, fraction, message: progress(fraction, message))
    own = JobRunner(workers=1, per_owner=1, records=None, observer=forward)  # progress from the job's own thread
    jid = own.submit(kind, params, owner="cli", title=title)
    try:
        now = own.wait(jid)
    except KeyboardInterrupt:
        own.cancel(jid)
        own.wait(jid)
        raise
    finally:
        own.shutdown()
    if now.status != "done":
        raise TrustLensError(f"{now.title}: {now.status}" + (f": {now.error}" if now.error else "."))
    return own.result(jid)

