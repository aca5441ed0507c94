"""A slice is a named filter: conditions on the columns of a slice frame, joined by ``and``.

Grammar (one line, the same in the CLI, the pages and a deep link)::

    sex == Female and age < 30
    `age band` in [under 25, 25-44] and correct == false
    occupation != "Exec-managerial"

A column is a bare name, or back-quoted when it holds spaces; operators are ``== != < <= > >= in``
and ``not in``; a value is a number, ``true`` / ``false``, a quoted or bare string, or a ``[...]``
list for ``in``. :func:`parse_slice` checks the syntax, :meth:`Slice.mask` the columns and types
against a frame, and every refusal is a :class:`SliceError` that says what to write instead.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from core.errors import ParameterError

OPERATORS = ("==", "!=", "<=", ">=", "<", ">", "not in", "in")
ORDERED = ("<", "<=", ">", ">=")
MAX_CONDITIONS = 8
MAX_TEXT = 2_000


class SliceError(ParameterError):
    """A slice that cannot be applied: bad syntax, a missing column, a type mismatch or no matching sample."""


@dataclass(frozen=True)
class Condition:
    column: str
    op: str
    value: Any  # float, bool, str, or a tuple of those for in / not in

    @property
    def text(self) -> str:
        column = f"`{self.column}`" if not re.fullmatch(r"[A-Za-z_][\w.-]*", self.column) else self.column
        return f"{column} {self.op} {_format_value(self.value)}"

    def mask(self, frame: pd.DataFrame) -> np.ndarray:
        check_column(frame, self.column)
        series = frame[self.column]
        values = self.value if isinstance(self.value, tuple) else (self.value,)
        numeric = pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series)
        boolean = pd.api.types.is_bool_dtype(series)
        for v in values:
            if numeric and not isinstance(v, (int, float)) or isinstance(v, bool) and not boolean:
                raise SliceError(
                    f"{self.text}: column {self.column!r} holds {'numbers' if numeric else 'text'}, "
                    f"and {_format_value(v)} is {'text' if isinstance(v, str) else 'a truth value'}.",
                    hint=f"compare {self.column!r} with " + ("a number." if numeric else "one of its values."),
                )
            if boolean and not isinstance(v, bool):
                raise SliceError(f"{self.text}: column {self.column!r} holds true / false.",
                                 hint=f"write {self.column} == true or {self.column} == false.")
            if not numeric and not boolean and isinstance(v, (int, float)):
                raise SliceError(
                    f"{self.text}: column {self.column!r} holds text, and {_format_value(v)} is a number.",
                    hint=f"quote the value ({self.column} == \"{_format_value(v)}\") or pick a numeric column.",
                )
        if self.op in ORDERED and not numeric:
            raise SliceError(f"{self.text}: {self.op} needs a numeric column; {self.column!r} holds "
                             f"{'true / false' if boolean else 'text'}.", hint="use == or != (or in [...]).")
        if self.op in ("==", "!="):
            hit = _equal(series, values[0], numeric)
        elif self.op in ("in", "not in"):
            hit = np.zeros(len(series), dtype=bool)
            for v in values:
                hit |= _equal(series, v, numeric)
        else:
            column = pd.to_numeric(series, errors="coerce").to_numpy(np.float64)
            with np.errstate(invalid="ignore"):
                hit = {"<": column < values[0], "<=": column <= values[0], ">": column > values[0],
                       ">=": column >= values[0]}[self.op]
        return ~hit if self.op in ("!=", "not in") else hit


def check_column(frame: pd.DataFrame, column: str, what: str = "The slice") -> None:
    """A :class:`SliceError` naming the close matches when ``frame`` has no ``column``."""
    if column in frame.columns:
        return
    names = [str(c) for c in frame.columns]
    lowered = {n.lower(): n for n in names}
    close = [lowered[c] for c in difflib.get_close_matches(column.lower(), list(lowered), n=3)]
    raise SliceError(
        f"{what} names a column the data does not have: {column!r}.",
        hint=(f"did you mean {', '.join(repr(c) for c in close)}? " if close else "")
        + f"columns: {', '.join(str(c) for c in frame.columns)}.",
    )


def _equal(series: pd.Series, value: Any, numeric: bool) -> np.ndarray:
    if numeric:
        return pd.to_numeric(series, errors="coerce").to_numpy(np.float64) == float(value)
    if pd.api.types.is_bool_dtype(series):
        return series.to_numpy(bool) == bool(value)
    return series.astype("string").fillna("(missing)").to_numpy(object) == str(value)


@dataclass(frozen=True)
class Slice:
    """Conditions joined by ``and``; no condition = every sample."""

    conditions: tuple[Condition, ...] = ()
    name: str = ""

    @property
    def text(self) -> str:
        return " and ".join(c.text for c in self.conditions)

    @property
    def label(self) -> str:
        return self.name or self.text or "all samples"

    def mask(self, frame: pd.DataFrame, allow_empty: bool = False) -> np.ndarray:
        """Rows of ``frame`` in the slice; a :class:`SliceError` when it matches none (unless ``allow_empty``)."""
        hit = np.ones(len(frame), dtype=bool)
        for condition in self.conditions:
            hit &= condition.mask(frame)
        if not allow_empty and len(frame) and not hit.any():
            raise SliceError(f"The slice {self.text!r} matches no sample of the {len(frame):,}.",
                             hint="loosen a condition; the values a column holds are listed on the Data page "
                                  "and by `python -m core slices --json` under groups.")
        return hit


_TOKEN = re.compile(
    r"\s*(?:(?P<quoted_col>`[^`]*`)|(?P<op>==|!=|<=|>=|<|>|\bnot\s+in\b|\bin\b)|(?P<string>\"[^\"]*\"|'[^']*')"
    r"|(?P<list>\[[^\]]*\])|(?P<and>\band\b)|(?P<word>[^\s=!<>\[\]\"'`]+))",
    re.IGNORECASE,
)


def parse_slice(text: str, name: str = "") -> Slice:
    """Parse the slice grammar of the module docstring; an empty text is every sample."""
    if text is None:
        return Slice(name=name)
    text = str(text).strip()
    if len(text) > MAX_TEXT:
        raise SliceError(f"A slice of {len(text):,} characters is longer than the {MAX_TEXT:,} allowed.")
    if not text:
        return Slice(name=name)
    clauses: list[list[tuple[str, str]]] = [[]]
    pos = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None or m.end() == pos:
            if not text[pos:].strip():
                break
            raise SliceError(f"Cannot read the slice at {text[pos:pos + 20]!r}.", hint=_GRAMMAR)
        pos = m.end()
        kind = m.lastgroup
        if kind == "and":
            clauses.append([])
        else:
            clauses[-1].append((kind, m.group(kind)))
    conditions = tuple(_condition(clause, text) for clause in clauses)
    if len(conditions) > MAX_CONDITIONS:
        raise SliceError(f"A slice holds at most {MAX_CONDITIONS} conditions; this one has {len(conditions)}.")
    return Slice(conditions, name)


_GRAMMAR = ("write conditions as COLUMN OP VALUE joined by 'and', e.g. sex == Female and age < 30; back-quote "
            "a column with spaces (`age band` == 25-44); OP is one of == != < <= > >= in, not in.")


def _condition(tokens: list[tuple[str, str]], text: str) -> Condition:
    ops = [i for i, (kind, _) in enumerate(tokens) if kind == "op"]
    if len(ops) != 1 or ops[0] == 0 or ops[0] == len(tokens) - 1:
        shown = " ".join(t for _, t in tokens) or "(nothing)"
        raise SliceError(f"Cannot read the condition {shown!r} of the slice {text!r}.", hint=_GRAMMAR)
    i = ops[0]
    left, right = tokens[:i], tokens[i + 1 :]
    if len(left) == 1 and left[0][0] == "quoted_col":
        column = left[0][1][1:-1].strip()
    elif all(kind == "word" for kind, _ in left):
        column = " ".join(t for _, t in left)
    else:
        raise SliceError(f"Cannot read the column of {' '.join(t for _, t in tokens)!r}.", hint=_GRAMMAR)
    op = re.sub(r"\s+", " ", tokens[i][1].lower())
    if op in ("in", "not in"):
        if len(right) != 1 or right[0][0] != "list":
            raise SliceError(f"{column} {op} needs a list: {column} {op} [a, b].", hint=_GRAMMAR)
        items = [s.strip() for s in right[0][1][1:-1].split(",") if s.strip()]
        if not items:
            raise SliceError(f"{column} {op} [] lists no value.", hint=_GRAMMAR)
        value: Any = tuple(_value(s) for s in items)
    else:
        if any(kind == "list" for kind, _ in right):
            raise SliceError(f"{column} {op} takes one value; use in [...] for a list.", hint=_GRAMMAR)
        if len(right) == 1 and right[0][0] == "string":
            value = right[0][1][1:-1]
        else:
            value = _value(" ".join(t for _, t in right))
    return Condition(column, op, value)


def _value(token: str) -> Any:
    token = token.strip()
    if len(token) >= 2 and token[0] == token[-1] and token[0] in "\"'":
        return token[1:-1]
    low = token.lower()
    if low in ("true", "false"):
        return low == "true"
    try:
        number = float(token)
    except ValueError:
        return token
    return int(number) if number.is_integer() and "." not in token and "e" not in low else number


def _format_value(value: Any) -> str:
    if isinstance(value, tuple):
        return "[" + ", ".join(_format_value(v) for v in value) + "]"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return format(value, "g") if isinstance(value, float) else str(value)
    text = str(value)
    if re.fullmatch(r"[^\s,\[\]\"'`=!<>]+", text) and not _looks_special(text):
        return text
    return '"' + text + '"' if '"' not in text else "'" + text + "'"


def _looks_special(text: str) -> bool:
    """A bare word that would read back as something else: a number, a truth value, an operator or 'and'."""
    low = text.lower()
    if low in ("true", "false", "and", "in", "not"):
        return True
    try:
        float(text)
    except ValueError:
        return False
    return True
