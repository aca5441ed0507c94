"""components/figures/ builds Plotly figures from result arrays and imports no streamlit (issue 20, item 7).

The figure builders are used by the pages, the CLI's exports and the tests; keeping streamlit out of
them keeps them usable (and fast to import) outside a running app.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT

FIGURES = ROOT / "components" / "figures"
MODULES = sorted(
    "components.figures" + ("" if path.stem == "__init__" else f".{path.stem}") for path in FIGURES.glob("*.py")
)

PROBE = """
import importlib, json, sys
loaded = {}
for name in sys.argv[1:]:
    importlib.import_module(name)
    loaded[name] = sorted(m for m in sys.modules if m == "streamlit" or m.startswith("streamlit."))
print(json.dumps(loaded))
"""


def test_there_are_figure_modules_to_check():
    assert len(MODULES) > 3 and "components.figures" in MODULES, MODULES


def test_importing_every_figure_module_in_a_fresh_process_loads_no_streamlit():
    env = {k: v for k, v in os.environ.items() if k != "PYTHONSTARTUP"}
    out = subprocess.run([sys.executable, "-c", PROBE, *MODULES], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr
    loaded = json.loads(out.stdout.strip().splitlines()[-1])
    assert list(loaded) == MODULES
    offenders = {name: mods for name, mods in loaded.items() if mods}
    # the first module listed as loading streamlit is the one (or one of those it imports) to fix
    assert not offenders, f"streamlit imported by: {offenders}"


def test_the_probe_sees_streamlit_when_it_is_imported():
    # the check above is not vacuous: the same probe reports streamlit once something imports it
    out = subprocess.run([sys.executable, "-c", PROBE, "streamlit"], cwd=ROOT, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr
    assert "streamlit" in json.loads(out.stdout.strip().splitlines()[-1])["streamlit"]


def _streamlit_imports(source: str) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [f"import {a.name}" for a in node.names if a.name.split(".")[0] == "streamlit"]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").split(".")[0] == "streamlit":
            found.append(f"from {node.module} import ...")
        elif (isinstance(node, ast.Call) and isinstance(node.func, (ast.Name, ast.Attribute))
              and getattr(node.func, "id", getattr(node.func, "attr", "")) in ("import_module", "__import__")
              and node.args and isinstance(node.args[0], ast.Constant)
              and str(node.args[0].value).split(".")[0] == "streamlit"):
            found.append(f"dynamic import of {node.args[0].value}")
    return found


@pytest.mark.parametrize("path", sorted(FIGURES.glob("*.py")), ids=lambda p: p.name)
def test_no_figure_file_imports_streamlit(path):
    # also inside functions, where the subprocess probe above would not see it until the function runs
    assert _streamlit_imports(path.read_text()) == []


def test_the_static_check_finds_streamlit_imports():
    source = "import streamlit as st\nfrom streamlit.testing.v1 import AppTest\ndef f():\n    import streamlit.components.v1\n"
    assert len(_streamlit_imports(source)) == 3
    assert _streamlit_imports("import plotly.graph_objects as go\nfrom components.figures import text\n") == []
