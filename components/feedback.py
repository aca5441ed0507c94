"""Turn core's errors and progress callbacks into Streamlit elements."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

import streamlit as st

from core.errors import TrustLensError
from core.progress import ProgressCallback


def show_error(exc: TrustLensError) -> None:
    """An ``st.error`` with the message, and the hint (what to try) beneath it."""
    st.error(exc.message, icon=":material/error:")
    if exc.hint:
        st.info(f"Try: {exc.hint}", icon=":material/lightbulb:")


@contextmanager
def guarded(stop: bool = True) -> Iterator[None]:
    """Show a TrustLensError raised inside the block instead of a traceback.

    With ``stop`` the script stops after the message (the rest of the page depends on the
    failed step); otherwise the page goes on.
    """
    try:
        yield
    except TrustLensError as exc:
        show_error(exc)
        if stop:
            st.stop()


@contextmanager
def progress_status(label: str) -> Iterator[ProgressCallback]:
    """A status box with a progress bar; yields a core ``ProgressCallback`` that drives it.

    Updates are throttled to ~10 per second so a fast loop does not flood the websocket.
    """
    with st.status(label, expanded=True) as status:
        bar = st.progress(0.0, text="starting")
        last = [0.0]
        started = time.perf_counter()

        def callback(fraction: float, message: str) -> None:
            now = time.perf_counter()
            if fraction < 1.0 and now - last[0] < 0.1:
                return
            last[0] = now
            bar.progress(min(1.0, max(0.0, fraction)), text=message)

        try:
            yield callback
        except Exception:
            status.update(label=f"{label}: failed", state="error")
            raise
        bar.progress(1.0, text="done")
        status.update(label=f"{label}: done in {time.perf_counter() - started:.1f} s", state="complete", expanded=False)


@contextmanager
def transient_progress(label: str) -> Iterator[ProgressCallback]:
    """A progress bar that shows only while work is under way and disappears afterwards.

    For results that are usually cached: a cache hit reports nothing below 100 %, so nothing is
    drawn; a miss shows ``label`` and the core's progress messages until it is done.
    """
    slot = st.empty()
    last = [0.0]

    def callback(fraction: float, message: str) -> None:
        now = time.perf_counter()
        if fraction >= 1.0 or now - last[0] < 0.1:
            return
        last[0] = now
        slot.progress(min(1.0, max(0.0, fraction)), text=f"{label}: {message}")

    try:
        yield callback
    finally:
        slot.empty()


def degenerate_note(reason: str | None) -> None:
    """A visible warning beside a blank / constant / non-finite explanation (nothing when ``reason`` is None)."""
    if reason:
        st.warning(reason, icon=":material/visibility_off:")


def degenerate_summary(title: str, flags, reason: str | None, labels: list[str], noun: str = "map",
                       verdicts: bool = True) -> None:
    """One warning for a method whose explanations are degenerate for some inputs.

    ``flags``: bool per input; ``reason``: the sentence for the first degenerate one; ``labels``: the inputs' names;
    ``verdicts``: the page draws verdicts, which leave these inputs out (say so).
    """
    flags = list(flags)
    if not any(flags):
        return
    which = ", ".join(label for label, flag in zip(labels, flags) if flag)
    left_out = " they are left out of every verdict on this page." if verdicts else ""
    st.warning(f"**{title}**: {sum(flags)} of {len(flags)} {noun}s are blank or constant ({which});{left_out} "
               f"{reason or ''}", icon=":material/visibility_off:")
