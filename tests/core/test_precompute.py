"""Dataset-scale precompute on the local engine: core/precompute, the ``precompute`` verb and the ``precompute`` job.

The values are checked against the functions the pages call (predict_proba, activations, explain_images,
explain_tabular, the uncertainty page's MC dropout); the batch size and the thread count change nothing;
an op a model cannot do is refused before anything is written; half-written or changed results are never
read and are replaced; a cancelled job publishes nothing. The Ray engine: test_precompute_ray.py.
"""

from __future__ import annotations

import json
import threading

from pathlib import Path

import numpy as np
import pytest

from core import scenarios
from core.cli import main
from core.precompute import Op, find, register_op
from core.precompute.ops import _predictions
from core.precompute.output import MANIFEST, Prefix, decode_shard
from core.precompute.plan import SourceSpec
from core.precompute.run import precompute

DIGITS = SourceSpec(scenario="digits")  # its default model: the CNN


@pytest.fixture(scope="module")
def digits():
    loaded = scenarios.load_model("digits", "cnn")
    return loaded.adapter, scenarios.load_data("digits")


def files_under(store) -> list:
    root = store / "precomputed"
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def test_cli_json_then_a_second_run_skips(tmp_path, capsys, digits):
    adapter, splits = digits
    store = str(tmp_path / "store")
    argv = ["precompute", "digits", "--ops", "predictions,activations", "--limit", "40", "--batch-size", "16",
            "--store", store, "--json", "--quiet"]
    assert main(argv) == 0
    out = json.loads(capsys.readouterr().out)
    assert {k: out[k] for k in ("scenario", "model", "split", "engine", "workers", "store")} == {
        "scenario": "digits", "model": "cnn", "split": "test", "engine": "local", "workers": 1, "store": store}
    predictions, activations = out["ops"]
    assert predictions["op"] == "predictions" and predictions["columns"] == ["proba", "predicted"]
    assert activations["op"] == "activations" and activations["columns"] == ["activations"]
    assert [o["rows"] for o in out["ops"]] == [40, 40] and [o["shards"] for o in out["ops"]] == [3, 3]
    assert not any(o["skipped"] for o in out["ops"])
    for o in out["ops"]:  # where each op's result lies: its manifest is there
        assert o["store"] == f"{store}/precomputed/{o['key']}" and (Path(o["store"]) / "manifest.json").is_file()

    rows = splits["test"][0:40]
    expected = {"proba": adapter.predict_proba(rows.x), "activations": adapter.activations(rows.x, "relu3")}
    got_p = find(store, adapter.fingerprint, rows.fingerprint, "predictions", {}).read()
    got_a = find(store, adapter.fingerprint, rows.fingerprint, "activations", {"layer": "relu3"}).read()
    np.testing.assert_allclose(got_p["proba"], expected["proba"], rtol=0, atol=1e-6)
    np.testing.assert_array_equal(got_p["predicted"], expected["proba"].argmax(axis=1))
    np.testing.assert_allclose(got_a["activations"], expected["activations"], rtol=0, atol=1e-5)
    assert activations["sum"] == pytest.approx(float(expected["activations"].sum()), rel=1e-6)
    assert activations["abs_sum"] == pytest.approx(float(np.abs(expected["activations"]).sum()), rel=1e-6)
    assert activations["params"] == {"layer": "relu3"}

    assert main(argv) == 0  # the same inputs again: found and skipped, same keys and numbers
    again = json.loads(capsys.readouterr().out)
    assert [o["skipped"] for o in again["ops"]] == [True, True]
    assert [(o["key"], o["sum"], o["abs_sum"], o["rows"]) for o in again["ops"]] == [
        (o["key"], o["sum"], o["abs_sum"], o["rows"]) for o in out["ops"]]


def test_batch_size_and_threads_change_no_value_and_rows_read_back_by_index(tmp_path):
    options = {"limit": 30, "op_params": {"uncertainty": {"passes": 4}}}
    one = precompute(DIGITS, ["predictions", "uncertainty"], store=str(tmp_path / "a"), batch_size=30, **options)
    many = precompute(DIGITS, ["predictions", "uncertainty"], store=str(tmp_path / "b"), batch_size=7, workers=2,
                      **options)
    assert [o.shards for o in one.ops] == [1, 1] and [o.shards for o in many.ops] == [5, 5]
    for a, b in zip(one.ops, many.ops):
        assert a.key == b.key  # the batch size and the threads are not part of the key
        left = Prefix(str(tmp_path / "a"), a.key).open().read()
        right = Prefix(str(tmp_path / "b"), b.key).open().read()
        assert sorted(left) == sorted(right)
        for column in left:
            np.testing.assert_allclose(right[column], left[column], rtol=0, atol=1e-6, err_msg=column)
    found = Prefix(str(tmp_path / "b"), many.ops[0].key).open()
    whole = found.read()["proba"]
    picked = [29, 0, 13, 7, 6, 22, 13]  # across shards, out of order, one twice
    np.testing.assert_array_equal(found.read(picked, columns=["proba"])["proba"], whole[picked])
    np.testing.assert_array_equal(found.read(slice(5, 12))["proba"], whole[5:12])


def test_uncertainty_is_the_uncertainty_pages_mc_dropout(tmp_path, digits, tmp_store):
    from core.uncertainty.metrics import uncertainty_scores
    from core.uncertainty.sources import load_source

    adapter, splits = digits
    run = precompute(DIGITS, ["uncertainty"], store=str(tmp_path / "s"), limit=25, batch_size=6,
                     op_params={"uncertainty": {"passes": 5, "seed": 3}})
    assert run.ops[0].params == {"source": "mc_dropout", "passes": 5, "seed": 3, "dropout_rate": None}
    rows = splits["test"][0:25]
    proba = load_source("digits", "cnn", kind="mc_dropout", n=5, seed=3).probabilities(rows, store=tmp_store)
    expected = uncertainty_scores(proba)
    got = find(str(tmp_path / "s"), adapter.fingerprint, rows.fingerprint, "uncertainty", run.ops[0].params).read()
    for name, values in expected.items():
        np.testing.assert_allclose(got[name], values, rtol=0, atol=1e-6, err_msg=name)
    np.testing.assert_allclose(got["proba"], proba.mean(axis=0), rtol=0, atol=1e-6)
    assert got["mutual_information"].max() > 1e-4  # the passes differ: dropout really sampled


def test_image_attributions_are_explain_images_one_input_per_call_for_sampled_methods(tmp_path, digits, tmp_store):
    from core.attribution import explain_images, image_context
    from core.explanation import get_method

    adapter, splits = digits
    settings = {"gradient": {}, "integrated_gradients": {"steps": 8, "baseline": "noise"}, "smoothgrad": {"samples": 6}}
    run = precompute(DIGITS, ["attributions"], store=str(tmp_path / "s"), limit=6, batch_size=4,
                     methods=list(settings), method_params=settings)
    x = splits["test"].x[:6]
    target = adapter.predict(x)
    context = image_context(splits["train"])
    for result in run.ops:
        params = get_method(result.method).params_type(**settings[result.method])
        got = Prefix(str(tmp_path / "s"), result.key).open().read()
        np.testing.assert_array_equal(got["target"], target)
        if result.method == "gradient":  # deterministic: one call over the batch
            expected = explain_images(adapter, x, target, result.method, params, context=context, store=tmp_store).maps
        else:  # SmoothGrad's noise, IG's noise baseline depend on an image's place in a call: each image alone
            expected = np.concatenate([explain_images(adapter, x[i:i + 1], target[i:i + 1], result.method, params,
                                                      context=context, store=tmp_store).maps for i in range(6)])
        np.testing.assert_allclose(got["values"], expected, rtol=0, atol=1e-6, err_msg=result.method)
        assert np.abs(got["values"]).sum() > 0


def test_tabular_shap_is_explain_tabular(tmp_path, tmp_store):
    from core.tabular.shap_tabular import ShapParams, background_data, explain_tabular

    run = precompute(SourceSpec(scenario="breast-cancer"), ["shap", "attributions"], store=str(tmp_path / "s"),
                     limit=12, batch_size=5)
    assert [o.op for o in run.ops] == ["shap", "attributions"] and run.ops[1].method == "shap"
    assert run.ops[0].params["params"]["algorithm"] == "tree"  # "auto" resolved before the key is made
    loaded = scenarios.load_model("breast-cancer", "gboost")
    splits = scenarios.load_data("breast-cancer")
    expected = explain_tabular(loaded.adapter, splits["test"], np.arange(12), background_data(splits["train"]),
                               ShapParams(), store=tmp_store)
    for result in run.ops:
        got = Prefix(str(tmp_path / "s"), result.key).open().read()
        np.testing.assert_allclose(got["values"], expected.values, rtol=0, atol=1e-9)
        np.testing.assert_allclose(got["base_values"], expected.base_values, rtol=0, atol=1e-9)
        np.testing.assert_array_equal(got["target"], expected.target)
        assert result.sum == pytest.approx(float(expected.values.sum()), abs=1e-9)


def test_text_lime_and_occlusion_are_explain_text_per_document(tmp_path, tmp_store):
    """Every word's weight and LIME's surrogate numbers are stored, and read back as the TextExplanation
    explain_text returns (what the text page shows)."""
    from tests.conftest import require_dataset

    require_dataset("newsgroups")
    from dataclasses import replace

    from core.explanation import get_method
    from core.precompute import lookup
    from core.text.text_methods import explain_text
    from core.text.words import WordDocument

    source = SourceSpec(scenario="newsgroups", model="logreg")
    settings = {"lime": {"num_samples": 300}}
    store = str(tmp_path / "s")
    run = precompute(source, ["lime", "attributions"], methods=["occlusion"], method_params=settings,
                     store=store, limit=4, batch_size=3)
    assert [(o.op, o.method) for o in run.ops] == [("lime", "lime"), ("attributions", "occlusion")]
    adapter = scenarios.load_model("newsgroups", "logreg").adapter
    rows = scenarios.load_data("newsgroups")["test"][0:4]
    width = max(WordDocument.parse(str(t)).n_words for t in rows.x)
    lookup.clear_cache()
    for result in run.ops:
        got = Prefix(store, result.key).open().read()
        assert got["values"].shape == got["selected"].shape == (4, width)
        assert (EXTRA_COLUMNS <= set(got)) == (result.method == "lime")
        params = get_method(result.method, "text").params_type(**settings.get(result.method, {}))
        for i, text in enumerate(rows.x):
            e = explain_text(adapter, str(text), result.method, params, store=tmp_store)
            n = len(e.weights)
            np.testing.assert_array_equal(got["values"][i, :n], e.weights)
            assert not got["values"][i, n:].any()
            assert (got["n_words"][i], got["target"][i]) == (n, e.target)
            read, hit = lookup.text_explanation(store, adapter, rows, i, result.method, params)
            assert hit is not None and hit.key == result.key
            np.testing.assert_array_equal(read.weights, e.weights)
            np.testing.assert_array_equal(read.selected, e.selected)
            np.testing.assert_array_equal(read.proba, e.proba)
            assert (read.method, read.target, read.class_names, read.words, read.path, read.params) == (
                e.method, e.target, e.class_names, e.words, e.path, e.params)
            assert (read.intercept, read.score, read.local_pred) == (e.intercept, e.score, e.local_pred)
            if result.method == "lime":
                assert e.score is not None and 0 < len(e.selected) < n
        assert np.count_nonzero(got["values"]) > 0
    # another class than the predicted one, other settings: not what was precomputed
    lime_params = get_method("lime", "text").params_type(num_samples=300)
    other = (int(got["target"][0]) + 1) % len(adapter.class_names)
    assert lookup.text_explanation(store, adapter, rows, 0, "lime", lime_params, other) == (None, None)
    assert lookup.text_explanation(store, adapter, rows, 0, "lime", replace(lime_params, seed=1)) == (None, None)
    assert lookup.text_explanation(store, adapter, rows, 0, "lime", None)[0] is None  # the default 5000 samples
    lookup.clear_cache()


EXTRA_COLUMNS = {"extra_intercept", "extra_score", "extra_local_pred"}


def test_text_documents_longer_than_the_stored_width_are_refused(tmp_path, capsys, monkeypatch):
    from tests.conftest import require_dataset

    require_dataset("newsgroups")
    from core.precompute import ops

    monkeypatch.setattr(ops, "TEXT_MAX_WORDS", 5)
    store = tmp_path / "s"
    assert main(["precompute", "newsgroups", "--model", "logreg", "--ops", "lime", "--limit", "2",
                 "--store", str(store), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "distinct words" in err and "up to 5 words" in err, err
    assert files_under(store) == []


@pytest.mark.parametrize("argv, words", [
    (["digits", "--ops", "shap"], ["expected_gradients"]),
    (["breast-cancer", "--ops", "lime"], ["no LIME for tables"]),
    (["digits", "--model", "logreg", "--ops", "uncertainty"], ["MC dropout needs a torch model"]),
    (["digits", "--model", "logreg", "--ops", "attributions", "--method", "gradient"], ["gradient", "logreg"]),
    (["breast-cancer", "--ops", "attributions", "--method", "integrated_gradients"], ["image method", "tabular"]),
])
def test_an_op_the_model_cannot_do_is_refused_before_anything_is_written(argv, words, tmp_path, capsys):
    store = tmp_path / "s"
    assert main(["precompute", *argv, "--store", str(store), "--limit", "5", "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "cannot run" in err or "needs" in err
    for word in words:
        assert word in err, err
    assert files_under(store) == []


def test_changed_shards_and_half_written_prefixes_are_never_read_and_are_replaced(tmp_path, digits):
    adapter, splits = digits
    store = tmp_path / "s"
    rows = splits["test"][0:20]
    first = precompute(DIGITS, ["predictions"], store=str(store), limit=20, batch_size=8).ops[0]
    good = find(str(store), adapter.fingerprint, rows.fingerprint, "predictions", {}).read()["proba"]
    prefix = store / "precomputed" / first.key
    shard = sorted(prefix.glob("shard-*.npz"))[1]
    data = bytearray(shard.read_bytes())
    data[-40] ^= 0xFF  # one byte of the shard changes: its sha256 no longer matches the manifest
    shard.write_bytes(bytes(data))
    assert find(str(store), adapter.fingerprint, rows.fingerprint, "predictions", {}) is None
    second = precompute(DIGITS, ["predictions"], store=str(store), limit=20, batch_size=8).ops[0]
    assert (second.skipped, second.cleaned) == (False, 4)  # three shards and the manifest removed, then rewritten
    np.testing.assert_array_equal(find(str(store), adapter.fingerprint, rows.fingerprint, "predictions", {})
                                  .read()["proba"], good)

    (prefix / MANIFEST).unlink()  # a run that died before publishing: shards without a manifest
    assert find(str(store), adapter.fingerprint, rows.fingerprint, "predictions", {}) is None
    third = precompute(DIGITS, ["predictions"], store=str(store), limit=20, batch_size=8).ops[0]
    assert (third.skipped, third.cleaned) == (False, 3)
    assert len(list(prefix.glob("shard-*.npz"))) == 3  # only this run's shards remain
    shard = decode_shard(sorted(prefix.glob("shard-*.npz"))[0].read_bytes())  # read without pickle
    assert list(shard) == ["__index__", "proba", "predicted"] and shard["__index__"].tolist() == list(range(8))


def _fails_on_third_batch(adapter, rows, params):
    if rows.start >= 16:
        raise RuntimeError("boom in batch 3")
    return _predictions(adapter, rows, params)


register_op(Op("test_fails_late", _fails_on_third_batch, "proba", batch_rows=8))


def test_a_failing_op_publishes_nothing_and_leaves_nothing(tmp_path):
    store = tmp_path / "s"
    with pytest.raises(RuntimeError, match="boom in batch 3"):
        precompute(DIGITS, ["predictions", "test_fails_late"], store=str(store), limit=24)
    kept = files_under(store)  # predictions finished first and was published; the failing op left nothing
    assert [p.name for p in kept if p.name == MANIFEST] == [MANIFEST] and len(kept) == 2


ENTERED, RELEASE = threading.Event(), threading.Event()


def _waits_in_second_batch(adapter, rows, params):
    if rows.start > 0 and not RELEASE.is_set():
        ENTERED.set()
        RELEASE.wait(60)
    return _predictions(adapter, rows, params)


register_op(Op("test_waits", _waits_in_second_batch, "proba", batch_rows=8))


def test_a_cancelled_job_stops_between_batches_and_publishes_nothing(tmp_path):
    import core.jobs.kinds  # noqa: F401 - registers the precompute job
    from core.jobs.pool import JobRunner

    store = tmp_path / "s"
    runner = JobRunner(workers=1)
    try:
        jid = runner.submit("precompute", {"scenario": "digits", "ops": ["test_waits"], "limit": 24,
                                           "store": str(store), "engine": "local"})
        assert ENTERED.wait(60), "the job never reached its second batch"
        written = files_under(store)
        assert [p.name.startswith("shard-") for p in written] == [True]  # the first shard, not published
        runner.cancel(jid)
        RELEASE.set()
        status = runner.wait(jid, 60)
        assert status.status == "cancelled"
        assert files_under(store) == []
    finally:
        RELEASE.set()
        runner.shutdown()


def test_the_ray_engine_without_ray_says_what_to_install(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "ray", None)  # as if Ray were not installed
    store = tmp_path / "s"
    assert main(["precompute", "digits", "--ops", "predictions", "--engine", "ray", "--store", str(store),
                 "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "needs Ray" in err and "pip install -r requirements-scale.txt" in err
    assert files_under(store) == []


def test_a_job_without_a_store_writes_into_the_artifact_stores_folder(digits):
    import core.jobs.kinds  # noqa: F401 - registers the precompute job
    from core.jobs.pool import JobRunner
    from core.store import default_store

    adapter, splits = digits
    runner = JobRunner(workers=1)
    try:
        jid = runner.submit("precompute", {"scenario": "digits", "ops": ["predictions"], "limit": 5, "engine": "local"})
        assert runner.wait(jid, 60).status == "done"
        report = runner.result(jid)
    finally:
        runner.shutdown()
    store = default_store()
    assert report["store"] == str(getattr(store, "url", None) or store.root) and report["engine"] == "local"
    found = find(report["store"], adapter.fingerprint, splits["test"][0:5].fingerprint, "predictions", {})
    assert found is not None and found.rows == 5
