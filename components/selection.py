"""Map Plotly selection events (from ``st.plotly_chart(on_select="rerun")``) to our indices."""

from __future__ import annotations

from typing import Any


def clicked_index(event: Any) -> int | None:
    """The integer in ``customdata[0]`` (or ``customdata``) of the first selected point, if any.

    Figures put the index they care about (a bin, a sample) first in ``customdata``; traces
    without customdata (the diagonal) are ignored. Works with Streamlit's event object and with
    a plain dict (item access only), as tests pass.
    """
    if event is None:
        return None
    try:
        points = event["selection"]["points"]
    except (KeyError, TypeError):
        return None
    if not isinstance(points, (list, tuple)):
        return None
    for point in points:
        custom = point.get("customdata") if hasattr(point, "get") else None
        if isinstance(custom, (list, tuple)):
            custom = custom[0] if custom else None
        if custom is None:
            continue
        try:
            return int(custom)
        except (TypeError, ValueError):
            continue
    return None
