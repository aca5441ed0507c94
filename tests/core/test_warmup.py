"""core.lecture.warmup and ``python -m core warm --all``: steps, skips, failures, computed vs cached, the CLI."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from core import cli, datasets

from core.lecture import warmup
from core.errors import DataUnavailableError


def test_unavailable_data_is_skipped_with_its_reason(monkeypatch):
    real = datasets.availability

    def availability(name):
        if name == "titanic":
            return SimpleNamespace(available=False, source="no titanic.csv in TRUSTLENS_DATA_DIR")
        return real(name)

    monkeypatch.setattr(datasets, "availability", availability)
    result = warmup.warm_all(names=["titanic"], umap=False)
    assert result["items"] == []
    assert result["skipped"] == [{"scenario": "titanic", "reason": "data not available: no titanic.csv in TRUSTLENS_DATA_DIR"}]


def test_unknown_scenario_is_an_error():
    with pytest.raises(Exception, match="'atlantis'"):
        warmup.warm_all(names=["atlantis"], umap=False)


def test_a_failing_step_is_reported_and_the_others_run(monkeypatch, tmp_store):
    calls = []

    def broken(spec, store, progress):
        raise DataUnavailableError("the step's data went missing")

    def fine(spec, store, progress):
        calls.append(spec.name)
        return "ok"

    monkeypatch.setattr(warmup, "STEPS", {"broken": (broken, ("tabular",)), "fine": (fine, ("tabular",)),
                                          "images only": (fine, ("image",))})
    items = warmup.warm_scenario("breast-cancer", store=tmp_store)
    assert [(i.item, i.status) for i in items] == [("broken", "failed"), ("fine", "cached")]
    assert items[0].detail == "the step's data went missing"
    assert calls == ["breast-cancer"]


def test_second_run_finds_everything_cached():
    first = warmup.warm_scenario("breast-cancer")
    assert [i.item for i in first] == ["models", "predictions", "calibration page", "curated examples", "shapley page",
                                     "embeddings page"]
    assert all(i.status in ("computed", "cached") and i.seconds >= 0 for i in first)
    again = warmup.warm_scenario("breast-cancer")
    assert all(i.status == "cached" and i.misses == 0 for i in again), [(i.item, i.misses) for i in again]


def test_cli_needs_a_scenario_or_all(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["warm"])
    assert exc.value.code == 2
    assert "--all" in capsys.readouterr().err


def test_cli_all_json_and_text(capsys):
    assert cli.main(["warm", "--all", "breast-cancer", "--no-umap", "--json", "--quiet"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert {i["scenario"] for i in result["items"]} == {"breast-cancer"}
    assert {"scenario", "item", "seconds", "status", "misses", "detail"} <= set(result["items"][0])
    assert cli.main(["warm", "--all", "breast-cancer", "--no-umap", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "breast-cancer  curated examples" in out and "cached" in out
    assert out.strip().splitlines()[-1].startswith("total: breast-cancer")
