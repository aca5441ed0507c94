"""The documentation stays true to the tree: docs/architecture.md maps every module, the README stays a
front page with the two commands, and every relative link in README.md and docs/*.md resolves.

Fast (reads files only): part of the edit-test loop.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ARCHITECTURE = ROOT / "docs" / "architecture.md"
README = ROOT / "README.md"
MODULE_ROOTS = ("core", "components", "pages")
README_MAX_BYTES = 12 * 1024

# README command (1) and (2), byte for byte; .ci/run runs command (2) verbatim.
COMMAND_APP = "python3 -m venv .venv && . .venv/bin/activate && pip install -r requirements.txt && streamlit run app.py"
COMMAND_TESTS = (
    "python3 -m venv .venv && . .venv/bin/activate && pip install -r requirements-dev.txt && python -m pytest"
)

_FENCE = re.compile(r"^(```|~~~).*?^\1[ \t]*$", re.M | re.S)
_INLINE_CODE = re.compile(r"`[^`\n]*`")
_LINK = re.compile(r"!?\[[^\]\n]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_HEADING = re.compile(r"^#{1,6}[ \t]+(.+?)[ \t]*#*[ \t]*$", re.M)


def _modules() -> list[str]:
    """Every module a newcomer should find in docs/architecture.md (packages' __init__ excluded)."""
    found = []
    for top in MODULE_ROOTS:
        for path in sorted((ROOT / top).rglob("*.py")):
            if "__pycache__" in path.parts or path.name == "__init__.py":
                continue
            found.append(path.relative_to(ROOT).as_posix())
    return found


def _code_spans(text: str) -> set[str]:
    """The contents of every `inline code` span outside fenced blocks."""
    return {m.group(0)[1:-1].strip() for m in _INLINE_CODE.finditer(_FENCE.sub("", text))}


def test_every_module_is_in_the_architecture_doc():
    named = _code_spans(ARCHITECTURE.read_text(encoding="utf-8"))
    missing = [m for m in _modules() if m not in named]
    assert not missing, (
        f"docs/architecture.md does not name {len(missing)} module(s): {', '.join(missing)}. "
        "Add one line each, as `path/to/module.py`: what it is for, under its wing's heading."
    )


def test_the_architecture_doc_names_no_missing_file():
    named = [s for s in _code_spans(ARCHITECTURE.read_text(encoding="utf-8")) if re.fullmatch(r"[\w./-]+\.py", s)]
    assert named, "docs/architecture.md names no .py path: the module map is gone"
    gone = sorted(p for p in named if not (ROOT / p).is_file())
    assert not gone, (
        f"docs/architecture.md names .py path(s) that do not exist: {', '.join(gone)}. "
        "Remove the line, or write the module's new path."
    )


def test_readme_is_a_front_page_with_both_commands():
    raw = README.read_bytes()
    assert len(raw) < README_MAX_BYTES, (
        f"README.md is {len(raw):,} bytes, over the front page's {README_MAX_BYTES:,}: move detail into docs/"
    )
    text = raw.decode("utf-8")
    fenced = "\n".join(m.group(0) for m in _FENCE.finditer(text))
    for command in (COMMAND_APP, COMMAND_TESTS):
        assert command in fenced.splitlines(), f"README.md lost a command from its code blocks: {command}"
    assert "pip install -r requirements-dev.txt && python -m pytest" in text


def test_ci_runs_the_readme_test_command_verbatim():
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert COMMAND_TESTS in ci.splitlines(), ".ci/run no longer runs README command (2) verbatim"


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces -> hyphens."""
    text = re.sub(r"`([^`]*)`", r"\1", heading)
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", text)  # a link in a heading keeps its text
    text = re.sub(r"[^\w\- ]", "", text.strip().lower())
    return text.replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    text = _FENCE.sub("", path.read_text(encoding="utf-8"))
    seen: dict[str, int] = {}
    anchors = set()
    for m in _HEADING.finditer(text):
        slug = _slug(m.group(1))
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        anchors.add(slug if n == 0 else f"{slug}-{n}")
    return anchors


def _doc_files() -> list[Path]:
    return [README, *sorted((ROOT / "docs").glob("*.md"))]


@pytest.mark.parametrize("doc", _doc_files(), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_relative_links_resolve(doc: Path):
    text = _INLINE_CODE.sub("", _FENCE.sub("", doc.read_text(encoding="utf-8")))
    broken = []
    for m in _LINK.finditer(text):
        target = m.group(1)
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I):  # http:, https:, mailto:
            continue
        path_part, _, anchor = target.partition("#")
        dest = doc if not path_part else (doc.parent / path_part).resolve()
        if not dest.exists():
            broken.append(f"{target} (no file {dest.relative_to(ROOT) if dest.is_relative_to(ROOT) else dest})")
        elif anchor and dest.suffix == ".md" and anchor not in _anchors(dest):
            broken.append(f"{target} (no heading #{anchor} in {dest.relative_to(ROOT).as_posix()})")
    assert not broken, f"{doc.relative_to(ROOT).as_posix()} has broken relative links: {broken}"


def test_core_keeps_at_most_twenty_top_level_modules():
    """Issue 20: core/ was 37 flat modules; new work goes into a wing (text/, tabular/, upload/, trust/, ...)."""
    flat = sorted(p.name for p in (ROOT / "core").glob("*.py"))
    assert len(flat) <= 20, f"core/ has {len(flat)} top-level modules: {', '.join(flat)}; put new ones in a wing"
