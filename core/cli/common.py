"""What every verb shares: the parent parsers (each flag declared once), where a verb's model and
data come from (a built-in scenario or a user's upload), index parsing and the output helper.

A verb module adds its subparsers with ``parents=[...]`` from :func:`parents` and writes its
result with :func:`emit`, which prints JSON (``--json``) or the verb's human table and writes
``--out``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from core.errors import InputShapeError, ParameterError, TrustLensError

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_BELOW_TARGET = 0, 1, 2, 3
KINDS = ("image", "text", "tabular")


# -- parent parsers ------------------------------------------------------------------------------
def _output_parent() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(add_help=False)
    g = p.add_argument_group("output")
    g.add_argument("--json", action="store_true", help="print the result as JSON instead of a table")
    g.add_argument(
        "--out",
        default=None,
        metavar="FILE",
        help="also write the result to FILE: the maps (.npz) for image explanations, the map (.csv or "
        ".parquet) for 'embed', otherwise the JSON that --json prints",
    )
    g.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    return p


def _upload_parent() -> argparse.ArgumentParser:
    """The data of a user's model: --data, --spec and the columns of a CSV (also for inspect-model and serve)."""
    p = argparse.ArgumentParser(add_help=False)
    g = p.add_argument_group("your model's data (with --upload, inspect-model or serve)")
    g.add_argument(
        "--data",
        default=None,
        metavar="DATA",
        help="ZIP of class folders, an image, a CSV or Parquet table (a CSV of texts with --text-column)",
    )
    g.add_argument(
        "--spec",
        default=None,
        metavar="FILE",
        help="JSON spec: input_kind, channels, height, width, mean, std, outputs, class_names (and "
        "text_column, label_column, target for the data); what it omits is inferred",
    )
    g.add_argument("--text-column", default=None, metavar="COL", help="text column of a CSV of texts")
    g.add_argument("--label-column", default=None, metavar="COL", help="label column of a CSV of texts")
    g.add_argument(
        "--target-column",
        default=None,
        metavar="COL",
        help="label column of a table (default 'target'; '' for unlabelled rows)",
    )
    return p


def _trust_parent() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(add_help=False)
    g = p.add_argument_group("what your model file may run (the upload page's confirmations)")
    g.add_argument(
        "--trust-types",
        action="store_true",
        help="accept the skops types outside skops' trusted set (the page's 'I trust these types')",
    )
    g.add_argument(
        "--allow-pickle",
        action="store_true",
        help="load a pickle-based model file (runs code from the file: only for files you made)",
    )
    return p


def _source_parent() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(add_help=False)
    g = p.add_argument_group("what to work on: a built-in scenario or your model")
    which = g.add_mutually_exclusive_group()
    which.add_argument(
        "scenario",
        nargs="?",
        default=None,
        metavar="SCENARIO",
        help="a built-in scenario (see 'python -m core scenarios')",
    )
    which.add_argument(
        "--upload",
        default=None,
        metavar="MODEL",
        help="your model file instead of a scenario (.pt/.pth TorchScript, .pt2, .onnx, .skops, a booster, a .zip "
        "of a Hugging Face classifier's save_pretrained folder or the folder; a pickle "
        "with --allow-pickle), with --data: the upload page's dry run and refusals; samples are "
        "numbered in its test split (60 %% of the data, as on the pages)",
    )
    g.add_argument(
        "--model",
        action="append",
        default=None,
        metavar="M",
        help="the scenario's model (default: its first; repeatable where a verb reports several)",
    )
    g.add_argument("--variant", default=None, help="dataset variant (newsgroups: headers, no-headers)")
    return p


def _run_parent() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(add_help=False)
    g = p.add_argument_group("running the model")
    g.add_argument(
        "--batch-size",
        type=int,
        default=None,
        metavar="B",
        help="rows per forward / backward pass (default: the verb's own, as the pages use)",
    )
    g.add_argument(
        "--device",
        default=None,
        metavar="D",
        help="cpu, cuda, cuda:N or mps (default: TRUSTLENS_DEVICE, else the fastest available)",
    )
    return p


@dataclass(frozen=True)
class Parents:
    """The parent parsers: ``output`` (--json, --out, --quiet), ``source`` (SCENARIO | --upload MODEL,
    --model, --variant), ``upload`` (--data, --spec, columns), ``trust`` (--trust-types,
    --allow-pickle), ``run`` (--batch-size, --device)."""

    output: argparse.ArgumentParser
    source: argparse.ArgumentParser
    upload: argparse.ArgumentParser
    trust: argparse.ArgumentParser
    run: argparse.ArgumentParser

    @property
    def scenario_verb(self) -> list[argparse.ArgumentParser]:
        """What every verb that works on a scenario (or an upload) takes."""
        return [self.source, self.upload, self.trust, self.run, self.output]


def parents() -> Parents:
    return Parents(_output_parent(), _source_parent(), _upload_parent(), _trust_parent(), _run_parent())


def batch_size(args: argparse.Namespace, default: int) -> int:
    from core.errors import check_int

    return (
        default
        if getattr(args, "batch_size", None) is None
        else check_int("batch_size", args.batch_size, "--batch-size")
    )


def check_source_arguments(args: argparse.Namespace) -> None:
    """Usage errors (exit 2) of the source flags, before anything loads."""
    parser: argparse.ArgumentParser = args.parser
    if not hasattr(args, "upload"):
        return
    if args.upload is None:
        if args.scenario is None and not getattr(args, "all", False):
            parser.error(
                "give a SCENARIO (see 'python -m core scenarios') or --upload MODEL --data DATA"
                + (", or --all" if hasattr(args, "all") else "")
            )
        if args.data is not None or args.spec is not None:
            parser.error("--data and --spec go with --upload MODEL (a built-in scenario brings its own data)")
        return
    if args.data is None:
        parser.error("--upload MODEL needs --data DATA (the samples to run it on)")
    if args.model or args.variant:
        parser.error("--model and --variant choose among a built-in scenario's models; --upload brings its own")
    if getattr(args, "all", False):
        parser.error("--all warms the built-in scenarios; it does not take --upload")


# -- where the model and data come from -----------------------------------------------------------
def progress_printer(quiet: bool) -> Callable[[float, str], None]:
    last = [0.0]

    def callback(fraction: float, message: str) -> None:
        now = time.monotonic()
        if quiet or (now - last[0] < 1.0 and fraction < 1.0):
            return
        last[0] = now
        print(f"[{fraction * 100:5.1f}%] {message}", file=sys.stderr, flush=True)

    return callback


def progress(args: argparse.Namespace) -> Callable[[float, str], None]:
    return progress_printer(getattr(args, "quiet", False))


def article(kind: str) -> str:
    return "an" if kind[:1] in "aeiou" else "a"


@dataclass
class Source:
    """What a verb works on: a built-in scenario or a user's upload, with the same accessors.

    ``name`` is the scenario's name (an upload's is ``upload-<hash>``, as on the pages); the
    upload's one model is called ``uploaded``.
    """

    name: str
    spec: Any  # core.scenarios.ScenarioSpec
    variant: str | None = None
    upload: Any = None  # core.upload.byom.UploadedScenario
    _splits: dict[str, Any] | None = field(default=None, repr=False)

    @property
    def kind(self) -> str:
        return self.spec.kind

    @property
    def label(self) -> str:
        """How messages name it."""
        return "your upload" if self.upload is not None else repr(self.name)

    @property
    def labelled(self) -> bool:
        return True if self.upload is None else bool(self.upload.labelled)

    def require(self, kinds: str | tuple[str, ...], what: str) -> None:
        """An error naming the built-in scenarios of the ``kinds`` that ``what`` needs, unless this is one."""
        from core import scenarios

        kinds = (kinds,) if isinstance(kinds, str) else kinds
        if self.kind in kinds:
            return
        fitting = [n for n, s in scenarios.SCENARIOS.items() if s.kind in kinds]
        need = " or ".join(kinds)
        raise InputShapeError(
            f"{what} {article(kinds[0])} {need} scenario; {self.label} is {self.kind}.",
            hint=f"use one of: {', '.join(fitting)} (or --upload {article(kinds[0])} {need} model).",
        )

    def splits(self) -> dict[str, Any]:
        if self.upload is not None:
            return self.upload.splits
        if self._splits is None:
            from core import scenarios

            self._splits = scenarios.load_data(self.name, self.variant)
        return self._splits

    def model_names(self, requested: list[str] | None) -> list[str]:
        if self.upload is not None:
            return [self.spec.models[0].name]
        return [self.spec.model(m).name for m in requested] if requested else list(self.spec.model_names)

    def model_name(self, requested: list[str] | None) -> str:
        """The one model a verb runs: the one ``--model`` names, else the scenario's default."""
        if self.upload is not None:
            return self.spec.models[0].name
        if requested and len(requested) > 1:
            raise ParameterError(
                f"This verb runs one model; got --model {' --model '.join(requested)}.", hint="give --model once."
            )
        return self.spec.model(requested[0] if requested else self.spec.default_model).name

    def trained(self, model: str, args: argparse.Namespace) -> Any:
        """The model's TrainedModel (a built-in one is trained on first use, then loaded from the cache)."""
        if self.upload is not None:
            return self.upload.trained
        from core import scenarios

        return scenarios.load_model(self.name, model, self.variant, progress=progress(args))


def resolve_source(args: argparse.Namespace) -> Source:
    """The built-in scenario ``args.scenario`` or the upload ``--upload MODEL --data DATA`` (its dry run)."""
    if getattr(args, "upload", None) is None:
        from core import scenarios

        return Source(args.scenario, scenarios.get_spec(args.scenario), args.variant)
    uploaded = open_upload(args.upload, args)
    return Source(uploaded.name, uploaded.spec, None, uploaded)


def inspect_file(model_path: str, args: argparse.Namespace) -> tuple[Path, Any]:
    """(path, Inspection) of a model file: format, inferred spec, refusal; runs nothing in it.

    ``--trust-types`` re-inspects with the file's untrusted types accepted (the page's "I trust these types").
    """
    from core.upload.model_upload import inspect_model, read_model

    path = Path(model_path)
    if not (path.is_file() or path.is_dir()):
        raise TrustLensError(
            f"Model file {model_path!r} does not exist.",
            hint="give the path to a .pt, .pt2, .onnx, .skops, booster or Hugging Face .zip file, or a Hugging Face "
            "save_pretrained folder.",
        )
    allow = getattr(args, "allow_pickle", False) or None
    data, name = read_model(path)
    inspection = inspect_model(data, name, allow_pickle=allow)
    if getattr(args, "trust_types", False) and inspection.untrusted_types and not inspection.refused:
        inspection = inspect_model(data, name, allow_pickle=allow, trusted_types=inspection.untrusted_types)
    return path, inspection


def upload_refusal(path: Path, inspection: Any, args: argparse.Namespace) -> str | None:
    """Why the upload page would not load this file without a confirmation the flags did not give, or None."""
    refused = inspection.refused
    if not refused and inspection.needs_pickle_confirmation and not getattr(args, "allow_pickle", False):
        refused = (
            f"{path.name!r} is a {inspection.format_title}: loading it runs code from the file.\n"
            "Try: pass --allow-pickle if you made this file yourself."
        )
    if not refused and inspection.untrusted_types and not getattr(args, "trust_types", False):
        refused = (
            f"{path.name!r} needs {len(inspection.untrusted_types)} type(s) outside skops' trusted set: "
            f"{', '.join(inspection.untrusted_types)}. They could run code when loaded.\n"
            "Try: pass --trust-types if you know where the file comes from."
        )
    return refused


class UploadRefused(TrustLensError):
    """The upload page would refuse this model + data (the message is the page's reason)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)


def data_options(args: argparse.Namespace) -> dict[str, Any]:
    """The data flags as DataSource options (a spec file's text_column / label_column / target also count)."""
    options: dict[str, Any] = {
        k: v for k, v in (("text_column", args.text_column), ("label_column", args.label_column)) if v
    }
    if args.target_column is not None:
        options["target"] = None if args.target_column == "" else args.target_column
    return options


def open_upload(model_path: str, args: argparse.Namespace, inspected: tuple[Path, Any] | None = None) -> Any:
    """The upload page's dry run on files (core.upload.byom.open_files): an UploadedScenario, or
    :class:`UploadRefused` with the page's reason."""
    from core.upload.byom import open_files

    path, inspection = inspected or inspect_file(model_path, args)
    refused = upload_refusal(path, inspection, args)
    if refused:
        raise UploadRefused(refused)
    try:
        return open_files(
            str(path),
            args.data,
            args.spec,
            allow_pickle=bool(getattr(args, "allow_pickle", False)),
            trusted_types=inspection.untrusted_types if getattr(args, "trust_types", False) else (),
            progress=progress(args),
            **data_options(args),
        )
    except TrustLensError as exc:
        raise UploadRefused(str(exc)) from None


# -- samples ------------------------------------------------------------------------------------------
def parse_indices(spec: str, n: int, flag: str = "--index") -> list[int]:
    """``"3"``, ``"0-49"`` (inclusive), ``"3,7,9"`` or a mix (``"0-4,9"``) -> indices in order, duplicates dropped.

    Every index must lie in 0..n-1 (the test split's size).
    """
    out: list[int] = []
    for part in str(spec).replace(" ", "").split(","):
        low, dash, high = part.partition("-")
        if not low.isdigit() or (dash and not high.isdigit()):
            raise ParameterError(
                f"{flag} {spec!r}: {part!r} is not an index or a range.",
                hint="write one index (3), a range (0-49, both ends included) or a list (3,7,9).",
            )
        first, last = int(low), int(high) if dash else int(low)
        if last < first:
            raise ParameterError(f"{flag} {spec!r}: the range {part!r} runs backwards.", hint=f"write {last}-{first}.")
        if last >= n:
            raise ParameterError(
                f"{flag} {spec!r} is out of range: the test split has {n} samples, so valid indices are 0 to {n - 1}."
            )
        out.extend(i for i in range(first, last + 1) if i not in out)
    return out


def check_index(index: int, n: int, source: Source, noun: str) -> None:
    if not 0 <= index < n:
        raise ParameterError(
            f"--index {index} is out of range: the test split of {source.label} has "
            f"{n} {noun}, so valid indices are 0 to {n - 1}."
        )


def check_out(args: argparse.Namespace, suffixes: tuple[str, ...] | None = None, what: str = "") -> Path | None:
    """``--out`` as a Path (None when absent), refused before any work when its folder is missing or
    its suffix is not one of ``suffixes``."""
    if not getattr(args, "out", None):
        return None
    out = Path(args.out)
    if suffixes is not None and out.suffix.lower() not in suffixes:
        raise ParameterError(
            f"--out must name a {' or '.join(suffixes)} file{what}; got {args.out!r}.",
            hint=f"e.g. --out result{suffixes[0]}",
        )
    if not out.parent.is_dir():
        raise ParameterError(f"--out {args.out!r}: the folder {str(out.parent)!r} does not exist.")
    return out


# -- output ------------------------------------------------------------------------------------------
def jsonable(value: Any) -> Any:
    """``value`` with NaN / infinity as None and numpy scalars as Python numbers (valid, strict JSON)."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if hasattr(value, "item") and callable(value.item) and getattr(value, "ndim", 1) == 0:
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def to_json(result: Any, lines: bool = False) -> str:
    """``result`` as JSON: indented, or (``lines``) one compact object per line (JSON Lines)."""
    if lines:
        return "\n".join(json.dumps(jsonable(r), ensure_ascii=False, default=str) for r in result)
    return json.dumps(jsonable(result), indent=2, ensure_ascii=False, default=str)


def emit(
    args: argparse.Namespace,
    result: Any,
    human: Callable[[], None] | None = None,
    *,
    lines: bool = False,
    out_written: bool = False,
) -> None:
    """Print ``result`` as JSON (``--json``, or when the verb has no table) or call ``human`` to print the
    table; write the JSON to ``--out`` unless the verb wrote its own file there (``out_written``).

    ``lines``: ``result`` is a list printed as JSON Lines, one object per line.
    """
    text = to_json(result, lines)
    out = getattr(args, "out", None)
    if out and not out_written:
        Path(out).write_text(text + "\n", encoding="utf-8")
    if getattr(args, "json", False) or human is None:
        print(text)
    else:
        human()
        if out and not out_written:
            print(f"wrote {out}")
