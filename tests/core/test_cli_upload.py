"""Every verb that takes a scenario takes ``--upload MODEL --data DATA`` instead: the upload page's dry
run and refusals (a refused upload prints the reason and exits 1), then the verb on the upload."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from core.cli import main
from core.upload import byom
from tests.conftest import ROOT
from tests.hostile import FILES


@pytest.fixture(autouse=True)
def _fresh_registry():
    byom.forget()
    yield
    byom.forget()


@pytest.fixture(scope="module")
def cancer(tmp_path_factory):
    """A skops gradient boosting model fitted on breast-cancer rows 100.. (its tree type is outside skops'
    trusted set: --trust-types, the page's "I trust these types"), and a CSV of rows 0..59 with 'target'."""
    import pandas as pd
    import skops.io as sio
    from sklearn.datasets import load_breast_cancer
    from sklearn.ensemble import GradientBoostingClassifier

    folder = tmp_path_factory.mktemp("cancer")
    data = load_breast_cancer()
    model = GradientBoostingClassifier(n_estimators=20, max_depth=2, random_state=0)
    (folder / "cancer.skops").write_bytes(sio.dumps(model.fit(data.data[100:], data.target[100:])))
    table = pd.DataFrame(data.data[:60], columns=data.feature_names).assign(target=data.target[:60])
    table.to_csv(folder / "cancer.csv", index=False)
    return ["--upload", str(folder / "cancer.skops"), "--data", str(folder / "cancer.csv"), "--trust-types"]


@pytest.fixture(scope="module")
def texts(tmp_path_factory):
    """A skops tf-idf + logistic regression pipeline and a CSV of 30 labelled texts."""
    import pandas as pd
    import skops.io as sio
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline

    folder = tmp_path_factory.mktemp("texts")
    docs = [
        "good great fine day",
        "bad awful poor day",
        "great good movie",
        "poor bad movie",
        "fine good film",
        "awful bad film",
    ] * 5
    labels = ["pos", "neg"] * 15
    (folder / "texts.skops").write_bytes(
        sio.dumps(Pipeline([("tfidf", TfidfVectorizer()), ("clf", LogisticRegression())]).fit(docs, labels))
    )
    pd.DataFrame({"text": docs, "label": labels}).to_csv(folder / "texts.csv", index=False)
    return [
        "--upload",
        str(folder / "texts.skops"),
        "--data",
        str(folder / "texts.csv"),
        "--text-column",
        "text",
        "--label-column",
        "label",
    ]


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    """A TorchScript CNN of 10 outputs and a ZIP of 30 8x8 "digits" in class folders."""
    pytest.importorskip("torch")
    from tests.core.test_upload_class_folders import digit_zip, template_cnn, torchscript

    folder = tmp_path_factory.mktemp("images")
    (folder / "cnn.pt").write_bytes(torchscript(template_cnn()))
    (folder / "digits.zip").write_bytes(digit_zip(missing=None, flip=4)[0])
    return ["--upload", str(folder / "cnn.pt"), "--data", str(folder / "digits.zip")]


def run(argv: list[str], capsys) -> tuple[int, str, str]:
    code = main([*argv, "--quiet"])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.parametrize(
    "verb",
    [
        ["warm"],
        ["calibration"],
        ["explain", "--method", "shap", "--index", "0-1"],
        ["shap", "--index", "2"],
        ["embed", "--method", "pca"],
        ["uncertainty"],
    ],
)
def test_every_scenario_verb_runs_on_an_uploaded_table(verb, cancer, tmp_path, capsys):
    extra = ["--out", str(tmp_path / "map.csv")] if verb[0] == "embed" else []
    code, out, err = run([*verb, *cancer, *extra, "--json"], capsys)
    assert code == 0, err
    printed = [json.loads(line) for line in out.splitlines()] if verb[0] in ("explain", "shap") else json.loads(out)
    first = printed[0] if isinstance(printed, list) else printed
    assert first["scenario"].startswith("upload-") and first["model"] == "uploaded"
    if verb[0] == "warm":
        assert first["test_accuracy"] > 0.8 and first["trained_now"] is False
    if verb[0] == "uncertainty":
        assert [r["source"] for r in first["reports"]] == ["single"]


def test_an_uploaded_tables_explanation_is_the_engines(cancer, capsys):
    from core.cli.common import open_upload
    from core.cli import build_parser
    from core.tabular.shap_tabular import ShapParams, background_data, explain_tabular

    code, out, err = run(["explain", "--method", "shap", "--index", "3", "--target", "1", *cancer, "--json"], capsys)
    assert code == 0, err
    record = json.loads(out)
    uploaded = open_upload(cancer[1], build_parser().parse_args(["warm", *cancer]))  # the same dry run: same upload
    assert record["scenario"] == uploaded.name and record["target"] == "1"
    test, adapter = uploaded.splits["test"], uploaded.trained.adapter
    direct = explain_tabular(
        adapter, test, [3], background_data(uploaded.splits["train"], ShapParams()), ShapParams(), target=1
    )
    values = {a["feature"]: a["value"] for a in record["attributions"]}
    np.testing.assert_allclose([values[f] for f in direct.feature_names], direct.values[0], rtol=1e-9, atol=1e-12)
    assert record["predicted"] == adapter.class_names[int(adapter.predict_proba(test.x[3:4])[0].argmax())]


def test_text_uploads_take_lime_explain_and_sanity(texts, capsys):
    code, out, err = run(["lime", "--index", "0", "--num-samples", "300", *texts, "--json"], capsys)
    assert code == 0, err
    lime = json.loads(out)
    assert lime["method"] == "lime" and lime["predicted"] in ("neg", "pos") and lime["attributions"]
    code, out, err = run(
        ["explain", "--method", "lime", "--index", "0", "--num-samples", "300", *texts, "--json"], capsys
    )
    assert code == 0 and json.loads(out) == lime
    code, out, err = run(["sanity", "--method", "occlusion", "--index", "0", *texts, "--json"], capsys)
    assert code == 0, err
    report = json.loads(out)
    assert report["randomization"] is None and "needs a torch model" in report["randomization_verdict"]
    assert "try --model" not in report["randomization_verdict"]  # an upload has no other model
    assert set(report["faithfulness"]["areas"]) >= {"deletion", "insertion"}


def test_image_uploads_take_explain_and_sanity(images, tmp_path, capsys):
    out_file = tmp_path / "maps.npz"
    code, out, err = run(
        ["explain", "--method", "gradient_x_input", "--index", "0,2", *images, "--out", str(out_file), "--json"], capsys
    )
    assert code == 0, err
    report = json.loads(out)
    assert report["indices"] == [0, 2] and np.load(out_file)["maps"].shape == (2, 1, 8, 8)
    code, out, err = run(["sanity", "--method", "gradient_x_input", "--index", "1", *images, "--json"], capsys)
    assert code == 0, err
    assert json.loads(out)["randomization"][0]["stage"] == "original"


def test_a_verb_that_cannot_use_an_upload_says_why(cancer, images, capsys):
    code, _, err = run(["sanity", "--method", "lime", "--index", "0", *cancer], capsys)
    assert code == 1 and "Sanity checks need an image or text scenario; your upload is tabular" in err
    code, _, err = run(["uncertainty", "--source", "deep", *cancer], capsys)
    assert code == 1 and "--source deep is not a source of an uploaded model" in err
    code, _, err = run(["uncertainty", "--source", "mc_dropout", *images], capsys)
    assert code == 1 and "no dropout modules" in err


def test_refused_uploads_exit_1_with_the_pages_reason(cancer, texts, tmp_path, capsys):
    table = tmp_path / "rows.csv"
    rng = np.random.RandomState(0)
    table.write_text(
        "a,b,c,target\n" + "".join(f"{r[0]:.3f},{r[1]:.3f},{r[2]:.3f},{i % 2}\n" for i, r in enumerate(rng.rand(20, 3)))
    )
    explain = ["explain", "--method", "shap", "--index", "0"]
    for argv, reason in [
        (["--upload", str(FILES / "creates_file.pkl"), "--data", str(table)], "refuses pickle-based files"),
        (["--upload", str(FILES / "untrusted_types.skops"), "--data", str(table)], "_operator.neg"),
        (["--upload", str(FILES / "random_bytes.pt"), "--data", str(table)], "not a model TrustLens recognises"),
        (["--upload", texts[1], "--data", str(table)], "The model takes text input but the data is tabular"),
        (["--upload", cancer[1], "--data", cancer[3]], "--trust-types"),  # a tree: outside skops' trusted set
        (["--upload", cancer[1], "--data", str(table), "--trust-types"], "features"),
        (["--upload", str(tmp_path / "none.skops"), "--data", str(table)], "does not exist"),
    ]:
        code, out, err = run([*explain, *argv], capsys)
        assert code == 1 and reason in err and out == "", (argv, err)
    # The page's "I trust these types": the same file then opens (warm reports its dry run).
    code, out, err = run(
        ["warm", "--upload", str(FILES / "untrusted_types.skops"), "--data", str(table), "--trust-types", "--json"],
        capsys,
    )
    assert code == 0, err
    (report,) = json.loads(out)
    assert report["model"] == "uploaded" and report["framework"] == "sklearn" and 0 <= report["test_accuracy"] <= 1


def test_a_refused_upload_in_a_fresh_process_prints_the_reason_without_a_traceback(tmp_path):
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "core",
            "calibration",
            "--upload",
            str(FILES / "truncated.skops"),
            "--data",
            str(FILES / "one_class.csv"),
        ],
        cwd=ROOT,
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 1 and done.stderr.startswith("error: ") and "Traceback" not in done.stderr


@pytest.mark.parametrize(
    "argv, message",
    [
        (["explain", "--method", "shap", "--index", "0", "--upload", "m.skops"], "--upload MODEL needs --data DATA"),
        (
            ["explain", "breast-cancer", "--method", "shap", "--index", "0", "--upload", "m.skops", "--data", "d.csv"],
            "not allowed with argument SCENARIO",
        ),
        (["calibration", "--upload", "m.skops", "--data", "d.csv", "--model", "logreg"], "--upload brings its own"),
        (["calibration", "breast-cancer", "--data", "d.csv"], "--data and --spec go with --upload"),
        (["explain", "--method", "shap", "--index", "0"], "give a SCENARIO"),
        (["warm", "--all", "--upload", "m.skops", "--data", "d.csv"], "--all warms the built-in scenarios"),
    ],
)
def test_source_usage_errors_exit_2(argv, message, capsys):
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2 and message in capsys.readouterr().err


def test_out_writes_the_json_a_verb_prints(cancer, tmp_path, capsys):
    out = tmp_path / "calibration.json"
    code, printed, err = run(["calibration", *cancer, "--json", "--out", str(out)], capsys)
    assert code == 0, err
    assert json.loads(out.read_text()) == json.loads(printed)
    (row,) = json.loads(printed)
    assert row["model"] == "uploaded" and 0 <= row["ece"] <= 1
    code, table, err = run(["calibration", *cancer, "--out", str(out)], capsys)
    assert code == 0 and table.splitlines()[1].startswith("uploaded") and f"wrote {out}" in table
