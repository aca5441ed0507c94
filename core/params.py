"""Params are the spec: a method's parameters dataclass says how each field is asked for.

Every method has a frozen dataclass of parameters (its defaults are the defaults everywhere). A
field declared with :func:`param` carries a :class:`Spec` in its metadata: the label, the widget
key (also its deep-link name and its CLI flag), the range or the choices, the help text, and when
it is shown. From that one declaration

- the page's form draws the widgets (``components/params_form.py``),
- deep links know which URL names exist and how to parse them (``components/links.py``),
- the command line gets one flag per field (:func:`add_flags` / :func:`from_flags`).

So a new method declares its fields once, in its own file, and appears in all three.

A bound may be a number, the name of a value the form knows about the data (``"image_side"``,
the shorter side of the images), or ``"@field"``: the value just chosen for another field (the
occlusion stride is at most the window). Choices may likewise name a context list (``"layers"``).
A field whose default is ``None`` ("automatic") gets the value from the params type's
``form_defaults(context)`` classmethod, e.g. a window of a seventh of the image side.

Nothing here imports streamlit: core/ stays free of the UI.
"""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass, field
from typing import Any

from core.errors import ParameterError

SPEC = "trustlens_spec"
WIDGETS = ("auto", "slider", "number", "select_slider", "select", "radio", "toggle")


@dataclass(frozen=True)
class Spec:
    """How one parameter is asked for.

    Attributes
    ----------
    label : str
        The widget's label.
    key : str
        Short name; with the method's key prefix it is the widget key and the deep-link name
        (``occ`` + ``window`` -> ``occ_window``) and, with dashes, the CLI flag (``--occ-window``).
        These names are contracts (saved links): never rename one.
    help : str
    low, high : float, str or None
        Range of a number: a number, a context name (``"image_side"``) or ``"@field"``.
    step : float, optional
        Slider or number-input step.
    options : tuple, optional
        A ladder of allowed values (a select slider).
    choices : tuple or str, optional
        Allowed strings (a select box), or the name of a context list.
    names : dict, optional
        Display name of each choice.
    when : (str, value), optional
        Only shown (and only read) when field ``when[0]`` has value ``when[1]``.
    widget : {"auto", "slider", "number", "select_slider", "select", "radio", "toggle"}
        ``auto`` picks from the field: bool -> toggle, options -> select slider, choices -> select box,
        a bounded number -> slider.
    """

    label: str
    key: str
    help: str = ""
    low: float | str | None = None
    high: float | str | None = None
    step: float | None = None
    options: tuple | None = None
    choices: tuple | str | None = None
    names: dict | None = None
    when: tuple[str, Any] | None = None
    widget: str = "auto"

    def __post_init__(self) -> None:
        if self.widget not in WIDGETS:
            raise ParameterError(f"Spec.widget must be one of {WIDGETS}; got {self.widget!r}.")


def param(default: Any, label: str, key: str, **spec: Any) -> Any:
    """A dataclass field whose metadata is its :class:`Spec` (use as ``steps: int = param(50, "Steps", "steps", ...)``)."""
    return field(default=default, metadata={SPEC: Spec(label, key, **spec)})


@dataclass(frozen=True)
class Field:
    """One asked-for field of a params type: its dataclass name, type kind and spec."""

    name: str
    kind: str  # "int", "float", "bool" or "str"
    default: Any
    spec: Spec

    def key(self, prefix: str) -> str:
        return f"{prefix}_{self.spec.key}" if prefix else self.spec.key

    def flag(self, prefix: str) -> str:
        return "--" + self.key(prefix).replace("_", "-")


def _kind(f: dataclasses.Field) -> str:
    text = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type))
    for kind in ("bool", "int", "float", "str"):  # bool before int: "bool" is the more specific word
        if kind in text:
            return kind
    raise ParameterError(f"Field {f.name!r} has type {text!r}; a spec'd parameter must be a bool, int, float or str.")


def fields(params_type: type) -> list[Field]:
    """The spec'd fields of ``params_type`` in declaration order (fields without a spec keep their defaults)."""
    out = []
    for f in dataclasses.fields(params_type):
        spec = f.metadata.get(SPEC)
        if spec is not None:
            out.append(Field(f.name, _kind(f), f.default, spec))
    return out


def defaults(params_type: type, context: dict[str, Any] | None = None) -> dict[str, Any]:
    """Field -> value the form opens on: the dataclass default, or ``form_defaults(context)`` for automatic ones."""
    values = {f.name: f.default for f in fields(params_type)}
    hook = getattr(params_type, "form_defaults", None)
    if hook is not None and context is not None:
        values.update(hook(context))
    return values


def bound(value: float | str | None, context: dict[str, Any], chosen: dict[str, Any]) -> Any:
    """A numeric bound resolved: a number, a context value or another field's chosen value."""
    if isinstance(value, str):
        if value.startswith("@"):
            return chosen[value[1:]]
        if value not in context:
            raise ParameterError(f"The form needs {value!r} from the data and was not given it.")
        return context[value]
    return value


def choices(spec: Spec, context: dict[str, Any]) -> list[Any]:
    if isinstance(spec.choices, str):
        return list(context.get(spec.choices) or [])
    return list(spec.choices or ())


def shown(f: Field, chosen: dict[str, Any]) -> bool:
    """Whether ``f`` is asked for, given the values chosen so far."""
    return f.spec.when is None or chosen.get(f.spec.when[0]) == f.spec.when[1]


def build(params_type: type, values: dict[str, Any]) -> Any:
    """``params_type(**values)``, after its optional ``from_form(values)`` hook (e.g. LRP's beta = alpha - 1)."""
    hook = getattr(params_type, "from_form", None)
    values = hook(dict(values)) if hook is not None else dict(values)
    return params_type(**values)


def link_kinds(params_type: type, prefix: str) -> list[tuple[str, str]]:
    """(widget key = URL name, how the URL encodes it) for every spec'd field."""
    return [(f.key(prefix), f.kind) for f in fields(params_type)]


# -- command line ------------------------------------------------------------------------------------------

def add_flags(parser: argparse.ArgumentParser | Any, methods: list[Any]) -> None:
    """One ``--<prefix>-<key>`` flag per spec'd field of each method (``Method`` records), grouped by method.

    Unset flags stay None, so :func:`from_flags` keeps the method's own defaults. Two methods may
    share a flag (``--lime-samples``: LIME on images and on text): it is one flag, read by whichever
    method runs, and left to the params dataclass to validate; its help lists both defaults.
    """
    made: dict[str, tuple[Any, str, str, list[str]]] = {}  # flag -> action, kind, text, defaults
    for method in methods:
        group = None
        for f in fields(method.params_type):
            flag, dest = f.flag(method.prefix), f.key(method.prefix)
            default = "automatic" if f.default is None else str(f.default)
            where = f"{method.title}, {method.modality}: {default}"
            if flag in made:
                action, kind, text, seen = made[flag]
                if kind != f.kind or action.dest != dest:
                    raise ValueError(f"{flag} means two things: {seen[0]} and {where}")
                action.choices = None  # the params dataclasses check their own values
                seen.append(where)
                action.help = f"{text} (default: {'; '.join(seen)})".replace("%", "%%")
                continue
            group = group or parser.add_argument_group(f"{method.title} ({method.modality}) parameters")
            kwargs: dict[str, Any] = {"dest": dest, "default": None}
            if f.kind == "bool":
                kwargs["action"] = argparse.BooleanOptionalAction
            else:
                kwargs["type"] = {"int": int, "float": float, "str": str}[f.kind]
                if isinstance(f.spec.choices, tuple):
                    kwargs["choices"] = list(f.spec.choices)
            text = f.spec.label + (f": {f.spec.help}" if f.spec.help else "")
            action = group.add_argument(flag, help=f"{text} (default: {default})".replace("%", "%%"), **kwargs)
            made[flag] = (action, f.kind, text, [where])


def from_flags(params_type: type, prefix: str, args: argparse.Namespace) -> Any:
    """The params the flags ask for (unset flags keep the method's defaults); a ParameterError for bad values."""
    values = {f.name: f.default for f in fields(params_type)}
    given = {f.name: getattr(args, f.key(prefix), None) for f in fields(params_type)}
    values.update({name: value for name, value in given.items() if value is not None})
    return build(params_type, values)
