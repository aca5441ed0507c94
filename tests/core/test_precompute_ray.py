"""The Ray engine of precompute on one local Ray cluster (2 CPUs) for the whole module.

Ray gives the local engine's rows and values at 1 and 2 workers (predictions, activations, Integrated
Gradients on digits; SHAP on breast-cancer; the CLI too), also when a worker is killed mid-job (it is
replaced and its batch retried); a worker that always dies fails the job with a message and publishes
nothing; a job cancelled while an actor computes stops and leaves nothing; a job runs on the cluster
``TRUSTLENS_RAY_ADDRESS`` names. Slow: every actor starts a Python that imports the model's libraries.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import numpy as np
import pytest

from core.cli import main
from core.precompute import Op, register_op
from core.precompute.ops import _predictions
from core.precompute.output import Prefix
from core.precompute.plan import SourceSpec
from core.precompute.run import precompute

pytestmark = pytest.mark.slow  # a Ray cluster, and actors that import torch: ~1 min in all

DIGITS = SourceSpec(scenario="digits")


@pytest.fixture(scope="module")
def cluster():
    import ray

    from core.precompute.engines import connect

    assert not ray.is_initialized()
    assert connect(num_cpus=2)  # ray.init(num_cpus=2, include_dashboard=False), telemetry off
    from ray._common.usage import usage_lib  # (Ray 2.60)

    assert os.environ["RAY_USAGE_STATS_ENABLED"] == "0" and not usage_lib.usage_stats_enabled()
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()


def files_under(store: Path) -> list[Path]:
    root = store / "precomputed"
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def assert_same_results(store_a: Path, store_b: Path, ops_a, ops_b) -> None:
    assert [(o.op, o.method, o.key, o.rows, o.columns) for o in ops_a] == [
        (o.op, o.method, o.key, o.rows, o.columns) for o in ops_b]
    for a, b in zip(ops_a, ops_b):
        left, right = Prefix(str(store_a), a.key).open().read(), Prefix(str(store_b), b.key).open().read()
        for column in left:
            np.testing.assert_allclose(right[column], left[column], rtol=1e-6, atol=1e-6, err_msg=f"{a.op} {column}")
        assert b.sum == pytest.approx(a.sum, rel=1e-6, abs=1e-6)


OPTIONS = {"limit": 48, "batch_size": 12, "methods": ["integrated_gradients"],
           "method_params": {"integrated_gradients": {"steps": 8}}}
OPS = ["predictions", "activations", "attributions"]


@pytest.fixture(scope="module")
def local_digits(tmp_path_factory):
    store = tmp_path_factory.mktemp("local")
    return store, precompute(DIGITS, OPS, store=str(store), **OPTIONS)


def test_ray_at_one_worker_gives_the_local_values_even_when_the_worker_is_killed_mid_job(cluster, tmp_path,
                                                                                          local_digits):
    local_store, local = local_digits
    marker = tmp_path / "died"
    store = tmp_path / "ray1"
    run = precompute(DIGITS, [*OPS, "test_dies_once"], store=str(store), engine="ray", workers=1,
                     op_params={"test_dies_once": {"marker": str(marker), "at": 24}}, **OPTIONS)
    assert marker.exists()  # the actor did die (the marker is written just before it exits), mid-job
    assert_same_results(local_store, store, local.ops, run.ops[:3])
    for result in run.ops:  # computed in actors (the first one, then its replacement), not here
        assert result.workers_seen and os.getpid() not in {w["pid"] for w in result.workers_seen}
        assert all(w["peak_rss_mb"] > 50 for w in result.workers_seen)
    retried = run.ops[3]
    assert (retried.rows, retried.shards) == (48, 4)
    got = Prefix(str(store), retried.key).open().read()
    expected = Prefix(str(local_store), local.ops[0].key).open().read()  # the same numbers as predictions
    np.testing.assert_allclose(got["proba"], expected["proba"], rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(got["predicted"], expected["predicted"])


def test_ray_at_two_workers_through_the_cli_gives_the_local_values(cluster, tmp_path, capsys, local_digits):
    local_store, local = local_digits
    store = tmp_path / "ray2"  # the CLI joins this process's cluster rather than starting one
    assert main(["precompute", "digits", "--ops", ",".join(OPS), "--method", "integrated_gradients",
                 "--ig-steps", "8", "--limit", "48", "--batch-size", "12", "--engine", "ray", "--workers", "2",
                 "--store", str(store), "--json", "--quiet"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert (report["engine"], report["workers"]) == ("ray", 2)
    assert [(o["key"], o["rows"], o["shards"], o["skipped"]) for o in report["ops"]] == [
        (o.key, 48, 4, False) for o in local.ops]
    for entry, mine in zip(report["ops"], local.ops):
        assert entry["sum"] == pytest.approx(mine.sum, rel=1e-6, abs=1e-6)
        assert entry["abs_sum"] == pytest.approx(mine.abs_sum, rel=1e-6, abs=1e-6)
        assert entry["workers_seen"] and os.getpid() not in {w["pid"] for w in entry["workers_seen"]}
    again = precompute(DIGITS, OPS, store=str(store), engine="ray", workers=2, **OPTIONS)  # found: no actor starts
    assert all(o.skipped for o in again.ops)
    assert_same_results(local_store, store, local.ops, again.ops)


def _dies_once(adapter, rows, params):
    """Mid-job (from the batch at ``at`` on), the first call in a process dies when the marker does not exist
    yet, creating it first; the retried batch then finds the marker and computes."""
    marker = Path(params["marker"])
    if rows.start >= params["at"] and not marker.exists():
        marker.touch()
        os._exit(1)
    return _predictions(adapter, rows, params)


def _always_dies(adapter, rows, params):
    os._exit(1)


def _waits_for_the_test(adapter, rows, params):
    """At the batch ``at``: tell the test (a FIFO it reads), then wait until it says go (a FIFO it writes)."""
    if rows.start == params["at"]:
        with open(params["entered"], "w") as fifo:
            fifo.write("entered")
        with open(params["release"]) as fifo:
            fifo.read()
    return _predictions(adapter, rows, params)


register_op(Op("test_dies_once", _dies_once, "proba", batch_rows=8))
register_op(Op("test_always_dies", _always_dies, "proba", batch_rows=8))
register_op(Op("test_waits_for_the_test", _waits_for_the_test, "proba", batch_rows=8))


def _runner():
    import core.jobs.kinds  # noqa: F401 - registers the precompute job
    from core.jobs.pool import JobRunner

    return JobRunner(workers=1)


def test_a_worker_that_always_dies_fails_the_job_with_a_message_and_publishes_nothing(cluster, tmp_path,
                                                                                        monkeypatch):
    monkeypatch.setenv("TRUSTLENS_RAY_ADDRESS", cluster)
    store = tmp_path / "s"
    runner = _runner()
    try:
        jid = runner.submit("precompute", {"scenario": "breast-cancer", "ops": ["test_always_dies"], "limit": 16,
                                           "store": str(store), "retries": 1})  # dies twice, then fails
        status = runner.wait(jid, 240)
    finally:
        runner.shutdown()
    assert status.status == "failed", status
    assert "a Ray worker died while computing a batch, and died again on each of its 1 retries" in status.error
    assert "Nothing was published" in status.error, status.error
    assert files_under(store) == []


def _rendezvous(path: Path, mode: str, timeout: float = 120) -> None:
    """Open a FIFO (blocks until the worker opens the other end), within ``timeout`` seconds."""
    done = threading.Event()

    def go() -> None:
        with open(path, mode) as fifo:
            fifo.read() if mode == "r" else fifo.write("go")
        done.set()

    threading.Thread(target=go, daemon=True).start()
    assert done.wait(timeout), f"the worker never opened {path.name}"


def test_a_job_cancelled_while_an_actor_computes_stops_and_leaves_nothing(cluster, tmp_path, monkeypatch):
    monkeypatch.setenv("TRUSTLENS_RAY_ADDRESS", cluster)
    entered, release = tmp_path / "entered", tmp_path / "release"
    os.mkfifo(entered)
    os.mkfifo(release)
    store = tmp_path / "s"
    runner = _runner()
    try:
        jid = runner.submit("precompute", {
            "scenario": "breast-cancer", "ops": ["test_waits_for_the_test"], "limit": 32, "store": str(store),
            "op_params": {"test_waits_for_the_test": {"entered": str(entered), "release": str(release), "at": 16}}})
        _rendezvous(entered, "r")  # an actor is inside the batch at row 16
        assert runner.cancel(jid)
        _rendezvous(release, "w")  # let it finish that batch: the driver then sees the cancel
        status = runner.wait(jid, 120)
    finally:
        runner.shutdown()
    assert status.status == "cancelled", status
    assert files_under(store) == []


def test_a_job_uses_the_cluster_trustlens_ray_address_names_and_shap_agrees_at_one_and_two_workers(
        cluster, tmp_path, monkeypatch):
    from core.precompute.run import job_engine

    source = SourceSpec(scenario="breast-cancer")
    local = precompute(source, ["shap"], store=str(tmp_path / "local"), limit=20)
    expected = Prefix(str(tmp_path / "local"), local.ops[0].key).open().read()
    assert job_engine() == ("local", None)
    monkeypatch.setenv("TRUSTLENS_RAY_ADDRESS", cluster)
    assert job_engine() == ("ray", cluster)
    runner = _runner()
    try:
        jid = runner.submit("precompute", {"scenario": "breast-cancer", "ops": ["shap"], "limit": 20,
                                           "store": str(tmp_path / "ray2"), "workers": 2, "batch_size": 5})
        status = runner.wait(jid, 240)
        assert status.status == "done", status
        report = runner.result(jid)
    finally:
        runner.shutdown()
    assert (report["engine"], report["workers"]) == ("ray", 2)
    assert report["ops"][0]["key"] == local.ops[0].key and report["ops"][0]["shards"] == 4
    assert os.getpid() not in {w["pid"] for w in report["ops"][0]["workers_seen"]}
    one = precompute(source, ["shap"], store=str(tmp_path / "ray1"), limit=20, engine="ray", workers=1, batch_size=7)
    assert one.ops[0].key == local.ops[0].key and one.ops[0].shards == 3
    for store in ("ray2", "ray1"):
        got = Prefix(str(tmp_path / store), local.ops[0].key).open().read()
        for column in expected:
            np.testing.assert_allclose(got[column], expected[column], rtol=0, atol=1e-9, err_msg=f"{store} {column}")


def test_more_workers_than_the_cluster_holds_is_refused_before_any_actor_starts(cluster, tmp_path):
    from core.errors import ConfigurationError

    with pytest.raises(ConfigurationError, match="3 Ray workers do not fit the cluster .3 CPU asked, the cluster has 2"):
        precompute(SourceSpec(scenario="breast-cancer"), ["predictions"], store=str(tmp_path / "s"), limit=8,
                   engine="ray", workers=3)
    assert files_under(tmp_path / "s") == []
