"""Server-wide set-up (components/runtime.py) and the bounds of the shared caches (components/cached.py)."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT

PROBE = """
import json, os, sys
from components.runtime import configure_server
applied = configure_server()
heavy = "torch" in sys.modules
import torch
print(json.dumps({"applied": applied, "torch_before": heavy, "threads": torch.get_num_threads(),
                  "again": configure_server()}))
"""


def _probe(**env: str) -> dict:
    clean = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "TRUSTLENS_TORCH_THREADS")}
    out = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, env={**clean, **env}, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.slow  # 2.6 s: a fresh process imports torch
def test_server_torch_uses_one_thread_by_default_without_importing_torch_early():
    seen = _probe()
    assert seen["torch_before"] is False  # the first paint does not wait for torch
    assert seen["applied"] == {"torch_threads": 1} and seen["again"] == seen["applied"]
    assert seen["threads"] == 1


@pytest.mark.slow  # 7 s: three fresh processes import torch
def test_the_thread_count_can_be_overridden_or_left_to_torch():
    assert _probe(TRUSTLENS_TORCH_THREADS="2")["threads"] == 2
    default = _probe(TRUSTLENS_TORCH_THREADS="0")
    assert default["applied"] == {"torch_threads": None}
    assert default["threads"] == (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else default["threads"])
    assert _probe(OMP_NUM_THREADS="2")["threads"] == 2  # the user's own OpenMP setting wins


@pytest.mark.parametrize("raw", ["two", "-1"])
def test_a_bad_thread_count_names_the_variable_and_the_value(raw, monkeypatch):
    from components import runtime

    monkeypatch.setenv(runtime.ENV_VAR, raw)
    with pytest.raises(ValueError, match=rf"TRUSTLENS_TORCH_THREADS.*{raw}"):
        runtime.torch_threads()


def test_every_shared_cache_with_arguments_has_an_entry_limit():
    """Memory stays bounded with many users: every st.cache_resource / st.cache_data keyed by
    arguments sets max_entries (a function without arguments holds one entry)."""
    tree = ast.parse((ROOT / "components" / "cached.py").read_text(encoding="utf-8"))
    unbounded, cached = [], 0
    for fn in (n for n in tree.body if isinstance(n, ast.FunctionDef)):
        for deco in fn.decorator_list:
            call = deco if isinstance(deco, ast.Call) else None
            target = call.func if call else deco
            if not (isinstance(target, ast.Attribute) and target.attr in ("cache_resource", "cache_data")):
                continue
            cached += 1
            has_args = bool(fn.args.args or fn.args.kwonlyargs or fn.args.vararg)
            limited = call is not None and any(k.arg == "max_entries" for k in call.keywords)
            if has_args and not limited:
                unbounded.append(fn.name)
    assert cached >= 10  # the file was parsed as expected
    assert not unbounded, f"shared caches without max_entries: {unbounded}"
