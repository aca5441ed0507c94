"""A tiny progress-callback protocol shared by every slow core function.

Core functions accept ``progress: ProgressCallback | None`` and call it with a fraction in
[0, 1] and a short message. Pages map it to ``st.progress`` (see components/feedback.py), the
CLI to a line on stderr, tests to a list. The protocol is deliberately a plain callable, like
openTSNE's callbacks, so a lambda works.
"""

from __future__ import annotations

from typing import Protocol


class ProgressCallback(Protocol):
    def __call__(self, fraction: float, message: str) -> None:  # pragma: no cover - protocol
        ...


def report(progress: ProgressCallback | None, fraction: float, message: str) -> None:
    """Call ``progress`` if given, clamping ``fraction`` to [0, 1]."""
    if progress is not None:
        progress(min(1.0, max(0.0, float(fraction))), message)


def subrange(progress: ProgressCallback | None, start: float, stop: float) -> ProgressCallback | None:
    """Map a child's [0, 1] progress into [start, stop] of the parent's.

    Used when one step (e.g. training one model of a scenario) is part of a longer job.
    """
    if progress is None:
        return None

    def child(fraction: float, message: str) -> None:
        report(progress, start + (stop - start) * fraction, message)

    return child


class Recorder:
    """A callback that keeps every call; handy in tests and in the CLI's --verbose mode."""

    def __init__(self) -> None:
        self.calls: list[tuple[float, str]] = []

    def __call__(self, fraction: float, message: str) -> None:
        self.calls.append((fraction, message))
