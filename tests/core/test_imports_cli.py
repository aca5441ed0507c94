"""core/ stays UI-free and light to import; the ``python -m core`` command line."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT

CORE = ROOT / "core"
FORBIDDEN_UI = ("streamlit", "plotly")
HEAVY = ("torch", "umap", "shap", "openTSNE", "transformers")


def run_python(code: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=dict(os.environ), capture_output=True,
                          text=True, timeout=timeout)


def run_cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "core", *args], cwd=ROOT, env=dict(os.environ),
                          capture_output=True, text=True, timeout=timeout)


def imported_modules(path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names = set()
    for node in ast.walk(tree):  # walks function bodies too: lazy imports count
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", None)) in (
            "import_module", "__import__"
        ):
            for arg in node.args[:1]:
                if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                    names.add(arg.value)
    return names


def test_core_sources_never_import_ui_libraries():
    files = sorted(CORE.rglob("*.py"))
    assert len(files) >= 15  # the walk found the package
    offenders = {}
    for path in files:
        bad = sorted(m for m in imported_modules(path) if m.split(".")[0] in FORBIDDEN_UI)
        if bad:
            offenders[str(path.relative_to(ROOT))] = bad
    assert offenders == {}


def test_static_check_detects_imports(tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text("import os\ndef f():\n    from plotly import graph_objects\n    import streamlit.components.v1 as c\n")
    assert {"plotly", "streamlit.components.v1"} <= imported_modules(probe)


def test_importing_core_loads_no_ui_library():
    out = run_python(
        "import core, core.cli, core.scenarios, core.store, core.datasets, core.bundle, core.adapters, "
        "core.batching, core.device, core.fingerprint, core.errors, core.progress, core.text.vocab\n"
        "import sys\n"
        "assert 'streamlit' not in sys.modules and 'plotly' not in sys.modules, "
        "sorted(m for m in sys.modules if m.split('.')[0] in ('streamlit', 'plotly'))\n"
        "print('ok')\n"
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


def test_heavy_libraries_are_imported_lazily():
    out = run_python(
        "import core.scenarios, core.cli, core.store, core.datasets\n"
        "import sys, json\n"
        f"print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r})))\n"
    )
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == []


def test_listing_scenarios_imports_no_heavy_library():
    out = run_python(
        "import sys, json, contextlib, io\n"
        "from core.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    code = main(['scenarios', '--json'])\n"
        f"print(json.dumps([code, sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r})]))\n"
    )
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == [0, []]


# -- CLI -------------------------------------------------------------------------------------
EXPECTED_SCENARIOS = ["digits", "mnist", "newsgroups", "breast-cancer", "titanic", "adult"]


def test_cli_scenarios_json():
    out = run_cli("scenarios", "--json")
    assert out.returncode == 0, out.stderr
    rows = json.loads(out.stdout)
    assert isinstance(rows, list)
    assert [row["name"] for row in rows] == EXPECTED_SCENARIOS
    for row in rows:
        assert {"name", "kind", "models", "classes", "data_available"} <= set(row)
        assert row["kind"] in ("image", "text", "tabular")
        assert row["models"] and all(isinstance(m, str) for m in row["models"])
        assert isinstance(row["data_available"], bool)
    by_name = {row["name"]: row for row in rows}
    assert by_name["digits"]["classes"] == [str(i) for i in range(10)]
    assert by_name["newsgroups"]["classes"] == ["atheism", "christian"]
    assert by_name["digits"]["data_available"] and by_name["breast-cancer"]["data_available"]
    from core import datasets

    assert by_name["adult"]["sensitive"] == ["sex", "race", "age band"]
    for name in ("mnist", "newsgroups", "titanic", "adult"):  # follows the data folder, not hard-coded
        assert by_name[name]["data_available"] == datasets.availability(name).available


def test_cli_scenarios_plain_text():
    out = run_cli("scenarios")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().splitlines()
    assert [line.split()[0] for line in lines] == EXPECTED_SCENARIOS


@pytest.mark.slow  # 5 s: the CLI in two fresh processes
def test_cli_warm_digits_logreg_json():
    out = run_cli("warm", "digits", "--json", "--model", "logreg", "--quiet")
    assert out.returncode == 0, out.stderr
    reports = json.loads(out.stdout)
    assert len(reports) == 1
    report = reports[0]
    assert report["scenario"] == "digits" and report["model"] == "logreg"
    assert 0.9 < report["test_accuracy"] <= 1.0
    # the subprocess loaded (or trained) the same model as this process: same fingerprint and metric
    from core import scenarios

    here = scenarios.load_model("digits", "logreg")
    assert report["fingerprint"] == here.adapter.fingerprint[:16]
    assert report["test_accuracy"] == pytest.approx(round(here.metrics["test_accuracy"], 4))
    # and a second run loads it from the cache instead of training
    again = json.loads(run_cli("warm", "digits", "--json", "--model", "logreg", "--quiet").stdout)
    assert again[0]["trained_now"] is False


def test_cli_unknown_scenario_exits_1_listing_names():
    out = run_cli("warm", "cifar10")
    assert out.returncode == 1
    assert out.stdout == ""
    assert "cifar10" in out.stderr
    for name in EXPECTED_SCENARIOS:
        assert repr(name) in out.stderr
    assert "Traceback" not in out.stderr


def test_cli_unknown_model_exits_1():
    out = run_cli("warm", "digits", "--model", "resnet")
    assert out.returncode == 1
    assert "'resnet'" in out.stderr and "'cnn'" in out.stderr and "'logreg'" in out.stderr


def test_cli_without_subcommand_exits_2():
    out = run_cli()
    assert out.returncode == 2
    assert "usage" in out.stderr.lower()


def test_cli_main_in_process(capsys):
    from core.cli import EXIT_ERROR, main

    assert main(["warm", "nope"]) == EXIT_ERROR
    assert "'digits'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as info:
        main(["frobnicate"])
    assert info.value.code == 2
