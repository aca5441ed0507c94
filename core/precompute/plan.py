"""What a precompute run works on, described so that any process can open it again.

- :class:`SourceSpec`: a built-in scenario (name, model, variant) or an upload's files (model, data, spec,
  columns, the confirmations), plain data that travels to Ray actors, which open the model themselves
  (``core.cli.common.resolve_source``: the same resolution as every verb) instead of receiving it
  through Ray's object store.
- :class:`Context`: the opened source in one process: the adapter, the rows to precompute (a split, or
  its first ``limit`` rows) and each op's prepared state, once per process (:func:`open_context`).
- :class:`Task`: one op with its resolved params and its key; :func:`plan_tasks` makes them, refusing
  an op a model cannot do before anything runs.
- :class:`Plan`: what an actor needs to rebuild the context and check it sees the same model and rows.
"""

from __future__ import annotations

import argparse
import threading
from collections import OrderedDict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from core.bundle import DataBundle
from core.errors import ParameterError, TrustLensError, check_int
from core.precompute.ops import MODALITY, Op, Rows, expand, get_op, key_params
from core.store import cache_key

SPLITS = ("test", "train", "val", "all")


class OpUnsupportedError(TrustLensError):
    """An op cannot run on this model or data (the message says why)."""


@dataclass(frozen=True)
class SourceSpec:
    """A built-in scenario (``scenario``, ``model``, ``variant``) or an upload's files (``upload`` = the model
    file, ``data``, ``spec``, the CSV columns and the confirmations ``trust_types`` / ``allow_pickle``)."""

    scenario: str | None = None
    model: str | None = None
    variant: str | None = None
    upload: str | None = None
    data: str | None = None
    spec: str | None = None
    text_column: str | None = None
    label_column: str | None = None
    target_column: str | None = None
    trust_types: bool = False
    allow_pickle: bool = False

    def __post_init__(self) -> None:
        if (self.scenario is None) == (self.upload is None):
            raise ParameterError("A precompute source is a built-in scenario or an upload, not both or neither; "
                                 f"got scenario={self.scenario!r}, upload={self.upload!r}.")
        if self.upload is not None:  # actors may run in another folder: absolute paths
            for name in ("upload", "data", "spec"):
                value = getattr(self, name)
                if value is not None:
                    object.__setattr__(self, name, str(Path(value).expanduser().resolve()))

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> "SourceSpec":
        """From a verb's source flags (``SCENARIO`` or ``--upload MODEL --data DATA ...``)."""
        models = getattr(args, "model", None) or []
        if len(models) > 1:
            raise ParameterError(f"precompute runs one model; got --model {' --model '.join(models)}.",
                                 hint="give --model once (run precompute again for another model).")
        return cls(scenario=args.scenario, model=models[0] if models else None, variant=args.variant,
                   upload=args.upload, data=args.data, spec=args.spec, text_column=args.text_column,
                   label_column=args.label_column, target_column=args.target_column,
                   trust_types=bool(args.trust_types), allow_pickle=bool(args.allow_pickle))

    @classmethod
    def from_dict(cls, document: dict[str, Any]) -> "SourceSpec":
        return cls(**document)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def namespace(self) -> argparse.Namespace:
        """The flags ``core.cli.common.resolve_source`` reads (quiet: no progress lines from an actor)."""
        return argparse.Namespace(scenario=self.scenario, model=[self.model] if self.model else None,
                                  variant=self.variant, upload=self.upload, data=self.data, spec=self.spec,
                                  text_column=self.text_column, label_column=self.label_column,
                                  target_column=self.target_column, trust_types=self.trust_types,
                                  allow_pickle=self.allow_pickle, quiet=True)


@dataclass(frozen=True)
class Task:
    """One op to run: its record, its resolved params (what it runs with) and its key (of the params
    without batch sizes, the model's and the rows' fingerprints and the library versions)."""

    op: Op
    params: dict[str, Any]
    key: str

    @property
    def name(self) -> str:
        return self.op.name

    @property
    def method(self) -> str | None:
        return self.params.get("method")

    @property
    def label(self) -> str:
        return self.name + (f" ({self.method})" if self.method else "")


def precompute_key(op: Op, model_fingerprint: str, data_fingerprint: str, params: dict[str, Any]) -> str:
    """The content key of an op's result (:func:`core.store.cache_key`): the batch size is never part of it."""
    return cache_key(op=f"precompute/{op.name}", model_fingerprint=model_fingerprint,
                     data_fingerprint=data_fingerprint, params=key_params(params), libraries=op.libraries)


@dataclass(frozen=True)
class Plan:
    """What a Ray actor needs to open the same context: the source, the rows, and the fingerprints it must see."""

    source: SourceSpec
    split: str
    limit: int | None
    model_fingerprint: str
    data_fingerprint: str
    forward_batch_size: int


@dataclass(eq=False)
class Context:
    """A source opened in this process: the model, the rows to precompute, and each op's prepared state."""

    source_spec: SourceSpec
    split: str
    limit: int | None
    source: Any  # core.cli.common.Source
    model: str
    adapter: Any
    bundle: DataBundle
    forward_batch_size: int = 256
    _states: dict[str, Any] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def kind(self) -> str:
        return self.bundle.kind

    @property
    def model_fingerprint(self) -> str:
        return self.adapter.fingerprint

    @property
    def data_fingerprint(self) -> str:
        return self.bundle.fingerprint

    @property
    def n_rows(self) -> int:
        return len(self.bundle)

    def plan(self) -> Plan:
        return Plan(self.source_spec, self.split, self.limit, self.model_fingerprint, self.data_fingerprint,
                    self.forward_batch_size)

    def state(self, task: Task) -> Any:
        """The op's prepared state for ``task`` (``prepare`` runs once per process and key)."""
        if task.op.prepare is None:
            return None
        with self._lock:
            if task.key not in self._states:
                self._states[task.key] = task.op.prepare(self.adapter, self.source.splits(), task.params)
            return self._states[task.key]

    def rows(self, task: Task, start: int, stop: int) -> Rows:
        return Rows(self.bundle[start:stop], start, stop, self.state(task), self.forward_batch_size)


def select_rows(splits: dict[str, DataBundle], split: str, limit: int | None) -> DataBundle:
    """The rows to precompute: ``split`` (``all``: train, val and test in that order), its first ``limit``."""
    if split not in SPLITS:
        raise ParameterError(f"The 'split' parameter must be one of {SPLITS}. Got {split!r} instead.")
    if split == "all":
        from core.embeddings.activations import combine_splits

        bundle = combine_splits(splits, "all")[0]
    elif split not in splits:
        raise ParameterError(f"This source has no {split!r} split; it has {sorted(splits)}.")
    else:
        bundle = splits[split]
    if limit is not None:
        limit = check_int("limit", limit, "precompute")
        bundle = bundle[0:min(limit, len(bundle))]
    if len(bundle) == 0:
        raise ParameterError(f"The {split!r} split has no rows to precompute.")
    return bundle


_contexts: OrderedDict[tuple[Any, ...], Context] = OrderedDict()
_contexts_lock = threading.Lock()
MAX_CONTEXTS = 4


def open_context(spec: SourceSpec, split: str = "test", limit: int | None = None,
                 forward_batch_size: int = 256) -> Context:
    """Open ``spec`` in this process (a built-in model is loaded from the cache, trained on first use; an
    upload gets the upload page's dry run), once per process and (source, rows)."""
    memo = (spec, split, limit, forward_batch_size)
    with _contexts_lock:
        if memo in _contexts:
            _contexts.move_to_end(memo)
            return _contexts[memo]
    from core.cli.common import resolve_source

    args = spec.namespace()
    source = resolve_source(args)
    model = source.model_name(args.model)
    adapter = source.trained(model, args).adapter
    bundle = select_rows(source.splits(), split, limit)
    context = Context(spec, split, limit, source, model, adapter, bundle, forward_batch_size)
    with _contexts_lock:
        context = _contexts.setdefault(memo, context)
        while len(_contexts) > MAX_CONTEXTS:
            _contexts.popitem(last=False)
    return context


def open_plan(plan: Plan) -> Context:
    """The context of ``plan`` in this process (a Ray actor), refused when it holds another model or rows
    than the driver's (a worker with another model cache or data folder)."""
    context = open_context(plan.source, plan.split, plan.limit, plan.forward_batch_size)
    for what, mine, theirs in (("model", context.model_fingerprint, plan.model_fingerprint),
                               ("rows", context.data_fingerprint, plan.data_fingerprint)):
        if mine != theirs:
            raise TrustLensError(
                f"This worker opened another {what} than the driver (fingerprint {mine[:12]} vs {theirs[:12]}).",
                hint="give the Ray workers the driver's TRUSTLENS_DATA_DIR, TRUSTLENS_CACHE_DIR and "
                     "TRUSTLENS_MODEL_CACHE_DIR (the same data and trained models).")
    return context


def plan_tasks(context: Context, ops: list[str] | tuple[str, ...], *, methods: list[str] | tuple[str, ...] = (),
               method_params: dict[str, dict[str, Any]] | None = None,
               op_params: dict[str, dict[str, Any]] | None = None) -> list[Task]:
    """One task per op (per method for ``attributions``), params resolved and checked, keys computed.

    Raises :class:`OpUnsupportedError` (the reason, before any work) when an op cannot run on this model.
    ``op_params``: extra raw params per op name (``{"activations": {"layer": "relu3"}}``).
    """
    if not ops:
        raise ParameterError("No operation to precompute.", hint="give --ops, e.g. --ops predictions,activations.")
    if methods and "attributions" not in ops:
        raise ParameterError("--method chooses the methods of 'attributions', which --ops does not list.",
                             hint="add attributions to --ops, or leave --method out.")
    tasks: list[Task] = []
    adapter, bundle = context.adapter, context.bundle
    where = f"{context.source.label}'s model {context.model!r}"
    for name in dict.fromkeys(ops):
        op = get_op(name)
        for raw in expand(name, bundle.kind, methods, method_params):
            raw = {**raw, **((op_params or {}).get(name) or {})}
            label = name + (f" ({raw['method']})" if raw.get("method") else "")
            reason = op.unsupported(adapter, bundle, raw) if op.unsupported else None
            if reason:
                raise OpUnsupportedError(f"{label} cannot run on {where} ({MODALITY[bundle.kind]} data): {reason}",
                                         hint="leave this operation out of --ops, or pick a model that supports it.")
            params = op.resolve(adapter, bundle, raw) if op.resolve else dict(raw)
            tasks.append(Task(op, params, precompute_key(op, context.model_fingerprint, context.data_fingerprint,
                                                         params)))
    return tasks
