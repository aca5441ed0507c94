"""The form of any method, drawn from its params dataclass (:mod:`core.params`): widget values -> Params.

Each spec'd field becomes one widget with the key ``<prefix>_<key>`` (stable: saved links use it),
the spec's label, help, range or choices; fields sit side by side in columns, and a field shown only
for one value of another (LRP's ε under the epsilon rule) shares its column with the alternatives.
Every widget's range is the one the dataclass accepts, so a value from the form is always valid.
"""

from __future__ import annotations

from typing import Any

from core import params as P


def _slots(fields: list[P.Field]) -> list[list[P.Field]]:
    """Fields grouped by column: a conditional field joins the other fields conditional on the same field."""
    slots: list[list[P.Field]] = []
    by_condition: dict[str, list[P.Field]] = {}
    for f in fields:
        if f.spec.when is not None and f.spec.when[0] in by_condition:
            by_condition[f.spec.when[0]].append(f)
            continue
        slots.append([f])
        if f.spec.when is not None:
            by_condition[f.spec.when[0]] = slots[-1]
    return slots


def _format(spec: P.Spec, context: dict[str, Any]) -> Any:
    names = context.get(spec.names) if isinstance(spec.names, str) else spec.names
    if callable(names):
        return names
    if names:
        return lambda value: names.get(value, str(value))
    return str


def _number(value: Any, kind: str) -> Any:
    return int(value) if kind == "int" else float(value)


def draw_field(f: P.Field, prefix: str, default: Any, context: dict[str, Any], chosen: dict[str, Any], container: Any) -> Any:
    """One widget for field ``f``; returns its value (typed as the dataclass field)."""
    s, key = f.spec, f.key(prefix)
    widget = s.widget
    if widget == "auto":
        widget = ("toggle" if f.kind == "bool" else "select_slider" if s.options else "select" if s.choices is not None
                  else "slider")
    if widget == "toggle":
        return bool(container.toggle(s.label, bool(default), key=key, help=s.help or None))
    if widget in ("select", "radio"):
        options = P.choices(s, context)
        index = options.index(default) if default in options else 0
        if widget == "radio":
            return container.radio(s.label, options, index=index, key=key, format_func=_format(s, context),
                                   horizontal=True, help=s.help or None)
        return container.selectbox(s.label, options, index=index, key=key, format_func=_format(s, context),
                                   help=s.help or None)
    if widget == "select_slider":
        options = list(s.options or ())
        return _number(container.select_slider(s.label, options, default if default in options else options[0],
                                               key=key, help=s.help or None), f.kind)
    low, high = P.bound(s.low, context, chosen), P.bound(s.high, context, chosen)
    low, high = _number(low, f.kind), _number(high, f.kind)
    value = min(max(_number(default, f.kind), low), high)
    step = None if s.step is None else _number(s.step, f.kind)
    if widget == "number":
        return _number(container.number_input(s.label, low, high, value, step=step, key=key, help=s.help or None),
                       f.kind)
    return _number(container.slider(s.label, low, high, value, step, key=key, help=s.help or None), f.kind)


def params_form(params_type: type, prefix: str, context: dict[str, Any], container: Any,
                columns: list[Any] | None = None) -> Any:
    """Draw the form of ``params_type`` in ``container`` and return the Params it describes.

    ``context``: what the bounds and choices refer to (``image_shape``, ``image_side``, ``layers``,
    ``default_layer``, ``layer_label``...). ``columns``: containers to draw the fields in (default: new
    columns of ``container``, one per field).
    """
    fields = P.fields(params_type)
    if not fields:
        container.caption("No settings.")
        return params_type()
    defaults = P.defaults(params_type, context)
    chosen: dict[str, Any] = {}
    slots = _slots(fields)
    if columns is None:
        columns = container.columns(len(slots)) if len(slots) > 1 else [container]
    if len(columns) < len(slots):
        raise ValueError(f"{params_type.__name__} needs {len(slots)} columns; got {len(columns)}.")
    for column, slot in zip(columns, slots):
        for f in slot:
            if P.shown(f, chosen):
                chosen[f.name] = draw_field(f, prefix, defaults[f.name], context, chosen, column)
    values = {**{f.name: f.default for f in fields}, **chosen}
    return P.build(params_type, values)
