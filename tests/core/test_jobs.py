"""Jobs (core.jobs): off the request thread, one job per content, shared by sessions, cancellable, capped per
session, failures kept, interrupted jobs found after a restart. Synchronised with events, never sleeps."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading

import pytest

from core import jobs
from core.errors import ParameterError
from core.jobs import pool
from core.jobs.pool import JobRunner


class Gate:
    """Work whose steps the test releases one by one; counts how often it ran."""

    def __init__(self) -> None:
        self.calls = 0
        self.started = threading.Event()
        self.step = threading.Semaphore(0)
        self.reached: list[threading.Event] = [threading.Event() for _ in range(4)]

    def __call__(self, steps: int, progress=None, value: int = 7):
        self.calls += 1
        self.started.set()
        for i in range(steps):
            progress(i / steps, f"step {i + 1} of {steps}")
            self.reached[i].set()
            assert self.step.acquire(timeout=30), "the test never released the step"
        progress(1.0, "finishing")
        return value * 6


@pytest.fixture
def gate(monkeypatch):
    work = Gate()
    monkeypatch.setitem(jobs.KINDS, "gated", ("A gated test job", work))
    monkeypatch.setitem(jobs.KINDS, "broken", ("A failing test job", _broken))
    return work


def _broken(progress=None, message="no"):
    progress(0.5, "about to fail")
    raise ValueError(message)


def test_a_job_runs_off_the_calling_thread_and_reports_progress(gate, tmp_path):
    runner = JobRunner(records=tmp_path)
    jid = runner.submit("gated", {"steps": 2}, owner="a")
    assert gate.reached[0].wait(30)
    status = runner.status(jid)
    assert status.status == "running" and status.message == "step 1 of 2" and status.active
    gate.step.release()
    assert gate.reached[1].wait(30)
    assert runner.status(jid).fraction == 0.5
    gate.step.release()
    final = runner.wait(jid, timeout=30)
    assert final.status == "done" and final.fraction == 1.0 and runner.result(jid) == 42
    record = json.loads((tmp_path / f"{jid}.json").read_text())
    assert record["status"] == "done" and record["params"] == {"steps": 2}


def test_the_same_work_asked_twice_is_one_job_with_two_owners(gate, tmp_path):
    runner = JobRunner(records=tmp_path)
    first = runner.submit("gated", {"steps": 1}, owner="session-a")
    assert gate.started.wait(30)
    second = runner.submit("gated", {"steps": 1}, owner="session-b")  # a second session, or a reload
    assert first == second == jobs.job_id("gated", {"steps": 1})
    assert runner.status(first).owners == 2
    gate.step.release()
    runner.wait(first, 30)
    assert gate.calls == 1
    assert runner.submit("gated", {"steps": 1}, owner="session-c") == first and gate.calls == 1  # done: not rerun
    assert runner.submit("gated", {"steps": 1}, again=True) == first  # its result is gone: run it again
    gate.step.release()
    assert runner.wait(first, 30).status == "done" and gate.calls == 2
    other = runner.submit("gated", {"steps": 1, "value": 1}, owner="session-c")  # other parameters: other work
    assert other != first
    gate.step.release()
    assert runner.wait(other, 30).status == "done" and runner.result(other) == 6 and gate.calls == 3


def test_cancel_stops_at_the_next_progress_report(gate, tmp_path):
    runner = JobRunner(records=tmp_path)
    jid = runner.submit("gated", {"steps": 3})
    assert gate.reached[0].wait(30)
    assert runner.cancel(jid)
    gate.step.release()  # the work goes on to its next report, which raises
    final = runner.wait(jid, 30)
    assert final.status == "cancelled" and not gate.reached[2].is_set()
    with pytest.raises(RuntimeError, match="cancelled"):
        runner.result(jid)
    assert not runner.cancel(jid)
    # a cancelled job can be asked for again, and then runs from the start
    again = runner.submit("gated", {"steps": 3})
    assert again == jid and runner.status(jid).status in ("queued", "running")
    for _ in range(3):
        gate.step.release()
    assert runner.wait(jid, 30).status == "done"


def test_a_failing_job_keeps_its_message(gate, tmp_path):
    runner = JobRunner(records=tmp_path)
    jid = runner.submit("broken", {"message": "the data is gone"})
    final = runner.wait(jid, 30)
    assert final.status == "failed" and "ValueError: the data is gone" in final.error and final.fraction == 0.5
    assert json.loads((tmp_path / f"{jid}.json").read_text())["status"] == "failed"


def test_a_session_may_run_only_so_many_jobs(gate, tmp_path):
    runner = JobRunner(workers=1, per_owner=2, records=tmp_path)
    a = runner.submit("gated", {"steps": 1, "value": 1}, owner="s")
    b = runner.submit("gated", {"steps": 1, "value": 2}, owner="s")  # queued behind a: one worker
    assert runner.status(b).status == "queued"
    with pytest.raises(jobs.JobLimitError, match="at most 2 run per session"):
        runner.submit("gated", {"steps": 1, "value": 3}, owner="s")
    runner.submit("gated", {"steps": 1, "value": 3}, owner="another session")  # others are not capped by s
    assert runner.submit("gated", {"steps": 1, "value": 1}, owner="s") == a  # attaching to its own job is fine
    assert [j.id for j in runner.jobs(owner="s", active_only=True)] == [a, b]
    for _ in range(3):
        gate.step.release()
    assert all(runner.wait(j, 30).status == "done" for j in (a, b))


def test_unknown_kinds_and_bad_settings_are_refused(tmp_path, monkeypatch):
    runner = JobRunner(records=tmp_path)
    with pytest.raises(KeyError, match="uncertainty_source"):  # UnknownNameError: lists the kinds
        runner.submit("nope", {})
    monkeypatch.setenv(pool.WORKERS_ENV_VAR, "many")
    with pytest.raises(ParameterError, match="TRUSTLENS_JOB_WORKERS must be a whole number"):
        pool._env_int(pool.WORKERS_ENV_VAR, 1)
    monkeypatch.setenv(pool.WORKERS_ENV_VAR, "0")
    with pytest.raises(ParameterError, match="at least 1"):
        pool._env_int(pool.WORKERS_ENV_VAR, 1)


def test_jobs_of_a_stopped_server_are_marked_interrupted(tmp_path):
    # a record left "running" by a process that no longer exists (a server that was stopped)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    record = {"id": "ab" * 32, "kind": "uncertainty_source", "title": "Training", "params": {"n": 5},
              "status": "running", "fraction": 0.4, "message": "member 2 of 5", "submitted": 1.0, "started": 2.0,
              "finished": None, "error": None, "pid": int(dead.stdout), "host": socket.gethostname()}
    (tmp_path / f"{record['id']}.json").write_text(json.dumps(record))
    alive = dict(record, id="cd" * 32, pid=os.getpid())  # this process: still running
    (tmp_path / f"{alive['id']}.json").write_text(json.dumps(alive))
    runner = JobRunner(records=tmp_path)
    status = runner.status("ab" * 32)
    assert status.status == "interrupted" and "start it again" in status.error and status.fraction == 0.4
    assert json.loads((tmp_path / f"{'ab' * 32}.json").read_text())["status"] == "interrupted"
    assert runner.status("cd" * 32) is None  # a live process's job is not ours to judge


def test_a_command_line_runs_a_job_in_the_foreground_with_its_progress(monkeypatch):
    """`python -m core precompute` runs its job through run_in_foreground: progress passed on, value returned,
    a failure raised with the job's message."""
    from core.errors import TrustLensError

    seen = []

    def counted(n: int, progress=None):
        for i in range(n):
            progress(i / n, f"batch {i + 1} of {n}")
        return {"rows": n}

    monkeypatch.setitem(jobs.KINDS, "counted", ("A counted test job", counted))
    monkeypatch.setitem(jobs.KINDS, "broken", ("A failing test job", _broken))
    assert jobs.run_in_foreground("counted", {"n": 3}, progress=lambda f, m: seen.append(m)) == {"rows": 3}
    assert seen == ["batch 1 of 3", "batch 2 of 3", "batch 3 of 3"]  # every report, in order
    with pytest.raises(TrustLensError, match="A failing test job: failed: .*"):
        jobs.run_in_foreground("broken", {})
