"""``python -m core explain`` on text and tables: the common JSON, its aliases ``lime`` and ``shap``, the
parser's shape (one parent parser per group of shared flags, ``--json`` declared once)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from core.cli import build_parser, main
from tests.conftest import ROOT, require_dataset

FIELDS = {"scenario", "model", "method", "index", "target", "predicted", "attributions"}


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "core", *args],
        cwd=ROOT,
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=300,
    )


def records(text: str) -> list[dict]:
    """JSON Lines: one record per line."""
    return [json.loads(line) for line in text.strip().splitlines()]


def check_common_shape(record: dict) -> dict[str, float]:
    """The record's fields and sort order; its attributions as feature -> value."""
    assert FIELDS <= set(record) and set(record) - FIELDS <= {"details"}
    values = [a["value"] for a in record["attributions"]]
    assert [abs(v) for v in values] == sorted((abs(v) for v in values), reverse=True)
    assert all(set(a) == {"feature", "value"} and isinstance(a["feature"], str) for a in record["attributions"])
    features = [a["feature"] for a in record["attributions"]]
    assert len(set(features)) == len(features)
    return dict(zip(features, values))


@pytest.mark.slow  # 4 s: the CLI in a fresh process
def test_done_when_breast_cancer_shap_prints_the_common_json():
    from core import scenarios
    from core.tabular.shap_tabular import ShapParams, background_data, explain_tabular

    done = run_cli("explain", "breast-cancer", "--method", "shap", "--index", "0", "--json")
    assert done.returncode == 0, done.stderr
    record = json.loads(done.stdout)  # one index: one JSON object
    values = check_common_shape(record)
    assert (record["scenario"], record["model"], record["method"], record["index"]) == (
        "breast-cancer",
        "gboost",
        "shap",
        0,
    )
    splits = scenarios.load_data("breast-cancer")
    adapter = scenarios.load_model("breast-cancer", "gboost").adapter
    test = splits["test"]
    proba = adapter.predict_proba(test.x[:1])[0]
    assert record["predicted"] == adapter.class_names[int(proba.argmax())] == record["target"]  # default: predicted
    direct = explain_tabular(adapter, test, [0], background_data(splits["train"], ShapParams()), ShapParams())
    assert set(values) == set(test.feature_names)
    np.testing.assert_allclose([values[f] for f in direct.feature_names], direct.values[0], rtol=1e-9, atol=1e-12)
    details = record["details"]
    assert details["base_value"] + sum(values.values()) == pytest.approx(details["output"], abs=1e-6)
    assert details["output"] == pytest.approx(proba.max())


@pytest.mark.slow  # 3 s: the CLI in a fresh process
def test_done_when_newsgroups_lime_prints_the_common_json():
    require_dataset("newsgroups")
    from core import scenarios
    from core.text.lime_text import LimeParams
    from core.text.text_methods import explain_text

    done = run_cli("explain", "newsgroups", "--model", "logreg", "--method", "lime", "--index", "1", "--json")
    assert done.returncode == 0, done.stderr
    record = json.loads(done.stdout)
    values = check_common_shape(record)
    assert (record["scenario"], record["model"], record["method"], record["index"]) == (
        "newsgroups",
        "logreg",
        "lime",
        1,
    )
    adapter = scenarios.load_model("newsgroups", "logreg").adapter
    text = str(scenarios.load_data("newsgroups")["test"].x[1])
    proba = adapter.predict_proba([text])[0]
    assert record["predicted"] == adapter.class_names[int(proba.argmax())] == record["target"]
    direct = explain_text(adapter, text, "lime", LimeParams(), "predicted")
    assert len(values) == 10 and values == pytest.approx(dict(direct.top()), rel=1e-9)
    assert record["details"]["local_r2"] == pytest.approx(direct.score)


def test_the_aliases_print_what_explain_prints(capsys):
    args = ["breast-cancer", "--index", "3", "--algorithm", "tree", "--background-size", "20", "--json", "--quiet"]
    assert main(["explain", "--method", "shap", *args]) == 0
    explained = capsys.readouterr().out
    assert main(["shap", *args]) == 0
    assert capsys.readouterr().out == explained
    assert json.loads(explained)["details"]["algorithm"] == "tree"


def test_the_lime_alias_prints_what_explain_prints_and_label_is_target(capsys):
    require_dataset("newsgroups")
    args = [
        "newsgroups",
        "--model",
        "logreg",
        "--index",
        "1",
        "--num-samples",
        "500",
        "--num-features",
        "4",
        "--json",
        "--quiet",
    ]
    assert main(["explain", "--method", "lime", *args, "--target", "1"]) == 0
    explained = capsys.readouterr().out
    assert main(["lime", *args, "--label", "1"]) == 0
    assert capsys.readouterr().out == explained
    record = json.loads(explained)
    assert record["target"] == "christian" and record["predicted"] == "atheism" and len(record["attributions"]) == 4


def test_several_indices_print_json_lines_and_out_writes_them(tmp_path, capsys):
    from core import scenarios

    out = tmp_path / "rows.jsonl"
    assert (
        main(
            [
                "explain",
                "breast-cancer",
                "--method",
                "shap",
                "--index",
                "4-6,1",
                "--target",
                "true",
                "--out",
                str(out),
                "--json",
                "--quiet",
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert out.read_text() == printed
    rows = records(printed)
    assert [r["index"] for r in rows] == [4, 5, 6, 1]
    test = scenarios.load_data("breast-cancer")["test"]
    names = scenarios.get_spec("breast-cancer").class_names
    for r in rows:
        check_common_shape(r)
        assert r["target"] == names[int(test.y[r["index"]])] == r["details"]["true"]
    # The human table says the same, and --out still gets the JSON.
    assert (
        main(
            [
                "explain",
                "breast-cancer",
                "--method",
                "shap",
                "--index",
                "4",
                "--target",
                "benign",
                "--out",
                str(out),
                "--quiet",
            ]
        )
        == 0
    )
    table = capsys.readouterr().out
    (record,) = records(out.read_text())
    first = record["attributions"][0]
    assert record["target"] == "benign" and "SHAP (" in table and "of P(benign)" in table
    assert table.splitlines()[1].split()[-1] == f"{first['value']:+.4f}" and f"wrote {out}" in table


def test_text_methods_other_than_lime_run_through_explain(capsys):
    require_dataset("newsgroups")
    from core import scenarios
    from core.text.text_methods import explain_occlusion

    assert (
        main(
            ["explain", "newsgroups", "--model", "logreg", "--method", "occlusion", "--index", "1", "--json", "--quiet"]
        )
        == 0
    )
    record = json.loads(capsys.readouterr().out)
    values = check_common_shape(record)
    adapter = scenarios.load_model("newsgroups", "logreg").adapter
    direct = explain_occlusion(adapter, str(scenarios.load_data("newsgroups")["test"].x[1]))
    assert values == pytest.approx(dict(zip(direct.words, direct.weights.tolist())), rel=1e-9)
    assert (
        main(
            [
                "explain",
                "newsgroups",
                "--model",
                "logreg",
                "--method",
                "gradient_x_embedding",
                "--index",
                "1",
                "--quiet",
            ]
        )
        == 1
    )
    assert "does not support 'logreg'" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv, message",
    [
        (
            ["explain", "digits", "--method", "shap", "--index", "0"],
            "The tabular method 'shap' needs a tabular scenario",
        ),
        (["explain", "breast-cancer", "--method", "occlusion", "--index", "0"], "shap"),  # occlusion is text and image
        (
            ["explain", "breast-cancer", "--method", "kernel", "--index", "0"],
            "Unknown table explanation method 'kernel'",
        ),
        (["explain", "breast-cancer", "--method", "shap", "--index", "0", "--target", "2"], "must be in 0..1; got [2]"),
        (["explain", "breast-cancer", "--method", "shap", "--index", "0", "--target", "cat"], "Unknown target 'cat'"),
        (["explain", "breast-cancer", "--method", "shap", "--index", "0", "--out", "x.npz"], "JSON Lines"),
        (
            ["explain", "breast-cancer", "--method", "shap", "--index", "0", "--algorithm", "deep"],
            "'algorithm' parameter",
        ),
        (
            ["explain", "breast-cancer", "--method", "shap", "--index", "0", "--model", "mlp", "--model", "logreg"],
            "once",
        ),
        (["lime", "breast-cancer", "--index", "0"], "text scenario"),
        (["shap", "newsgroups", "--index", "0"], "breast-cancer, titanic"),
    ],
)
def test_explain_errors_exit_1_naming_what_to_fix(argv, message, capsys):
    assert main([*argv, "--quiet"]) == 1
    captured = capsys.readouterr()
    assert message in captured.err and captured.out == ""


def test_shared_flags_come_from_parent_parsers_and_json_is_declared_once():
    sources = "".join(path.read_text() for path in (ROOT / "core" / "cli").glob("*.py"))
    assert sources.count('"--json"') == 1 and sources.count('"--upload"') == 1 and sources.count('"--out"') == 1
    verbs = build_parser()._subparsers._group_actions[0].choices
    with_scenario = {name for name, p in verbs.items() if any(a.dest == "scenario" for a in p._actions)}
    assert with_scenario == {"warm", "explain", "lime", "shap", "sanity", "calibration", "uncertainty", "embed",
                            "slices", "data", "precompute"}
    for name, p in verbs.items():
        flags = {s for a in p._actions for s in a.option_strings}
        assert {"--json", "--out", "--quiet"} <= flags or name == "serve", name
        if name in with_scenario:
            assert {
                "--upload",
                "--data",
                "--spec",
                "--trust-types",
                "--model",
                "--variant",
                "--batch-size",
                "--device",
            } <= flags, name


def test_each_methods_parameters_are_flags_from_its_params(tmp_path, capsys):
    from core.explanation import MODALITIES, get_method, method_names
    from core.params import fields

    explain_flags = {
        s for a in build_parser()._subparsers._group_actions[0].choices["explain"]._actions for s in a.option_strings
    }
    for modality in MODALITIES:  # a new method's fields appear without touching the CLI
        for name in method_names(modality):
            method = get_method(name, modality)
            assert {f.flag(method.prefix) for f in fields(method.params_type)} <= explain_flags, name
    out = tmp_path / "ig.npz"
    assert (
        main(
            [
                "explain",
                "digits",
                "--method",
                "integrated_gradients",
                "--index",
                "0",
                "--ig-steps",
                "8",
                "--ig-baseline",
                "noise",
                "--out",
                str(out),
                "--json",
                "--quiet",
            ]
        )
        == 0
    )
    params = json.loads(capsys.readouterr().out)["params"]
    assert params["steps"] == 8 and params["baseline"] == "noise"
    assert json.loads(str(np.load(out)["params"])) == params
    with pytest.raises(SystemExit) as info:  # a value outside the spec's choices: a usage error
        main(["explain", "breast-cancer", "--method", "shap", "--index", "0", "--shap-algorithm", "sideways"])
    assert info.value.code == 2 and "invalid choice: 'sideways'" in capsys.readouterr().err


def test_device_flag_is_checked_before_anything_loads(monkeypatch, capsys):
    monkeypatch.setenv("TRUSTLENS_DEVICE", "cpu")  # restored after the test: --device sets it for the process
    assert main(["warm", "digits", "--model", "cnn", "--device", "tpu", "--quiet"]) == 1
    assert "--device 'tpu': it is not a device TrustLens knows" in capsys.readouterr().err
    assert main(["warm", "digits", "--model", "cnn", "--device", "cpu", "--json", "--quiet"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["device"] == "cpu"
