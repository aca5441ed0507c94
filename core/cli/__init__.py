"""``python -m core``: the command-line face of the engine (no browser needed).

One verb per kind of work, each in the module of its group:

- :mod:`core.cli.models`: ``scenarios``, ``warm``, ``inspect-model``, ``serve``;
- :mod:`core.cli.explain`: ``explain`` (images, text, tables), its aliases ``lime`` and ``shap``,
  ``shapley-game``;
- :mod:`core.cli.checks`: ``sanity``, ``calibration``, ``uncertainty``;
- :mod:`core.cli.maps`: ``embed``;
- :mod:`core.cli.slices`: ``slices``;
- :mod:`core.cli.precompute`: ``precompute`` (dataset-scale work into a store, local engine or Ray).

Every verb that works on a scenario takes a user's model instead (``--upload MODEL --data DATA
[--spec FILE] [--trust-types]``: the upload page's dry run and refusals). Shared flags come from
the parent parsers in :mod:`core.cli.common`, and every verb prints through its one output helper
(``--json``, ``--out``).

Exit codes: 0 success, 1 a TrustLens error (bad data dir, unknown name, a refused upload...; the
message says what to try), 2 a usage error (argparse), 3 a model below its accuracy target
(``warm --check``).
"""

from __future__ import annotations

import argparse
import os
import sys

from core.cli import checks, explain, maps, models, precompute, slices
from core.cli.common import (
    EXIT_BELOW_TARGET,
    EXIT_ERROR,
    EXIT_OK,
    EXIT_USAGE,
    check_source_arguments,
    parents,
    parse_indices,
)
from core.errors import TrustLensError

__all__ = ["EXIT_BELOW_TARGET", "EXIT_ERROR", "EXIT_OK", "EXIT_USAGE", "build_parser", "main", "parse_indices"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m core",
        description="TrustLens engine: list scenarios, train/load their models, explain and check them, from a "
        "terminal. Every verb that takes a SCENARIO takes --upload MODEL --data DATA instead.",
        epilog="Environment: TRUSTLENS_DATA_DIR (offline datasets), TRUSTLENS_CACHE_DIR (artifact cache), "
        "TRUSTLENS_DEVICE (cpu, cuda, mps; --device overrides it).",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    shared = parents()
    for group in (models, explain, checks, maps, slices, precompute):
        group.add_parsers(sub, shared)
    return parser


def use_device(device: str) -> None:
    """``--device``: what ``TRUSTLENS_DEVICE`` says, for this process; checked before anything loads."""
    from core.device import ENV_VAR, resolve_device
    from core.errors import ConfigurationError

    os.environ[ENV_VAR] = device
    try:
        resolve_device()
    except ConfigurationError as exc:
        raise ConfigurationError(
            f"--device {device!r}: {exc.message.replace(f'{ENV_VAR}={device!r}', 'it')}",
            hint="use cpu, cuda, cuda:N or mps, or leave --device out to pick automatically.",
        ) from None


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    check_source_arguments(args)
    try:
        if getattr(args, "device", None):
            use_device(args.device)
        return args.func(args)
    except TrustLensError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except BrokenPipeError:  # e.g. `python -m core explain ... | head`: the reader left, not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        return EXIT_OK
    except Exception as exc:  # noqa: BLE001 - a user's model raising inside a verb is the user's to fix
        if getattr(args, "upload", None) is None:
            raise
        print(f"error: your model raised {type(exc).__name__}: {str(exc)[:500]}", file=sys.stderr)
        return EXIT_ERROR
