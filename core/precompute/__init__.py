"""Dataset-scale precompute: every row of a split through one or more operations, on a local engine or Ray.

``python -m core precompute SCENARIO --ops predictions,activations,... --store URL`` (or
:func:`core.precompute.run.precompute`) computes per-sample results (probabilities, activations,
attributions, uncertainty, SHAP, LIME) for a whole split and writes them as shards plus a manifest
under ``<store>/precomputed/<key>/``, keyed by content like the artifact store.

- :mod:`core.precompute.ops`: one registered per-batch function per operation (the registry).
- :mod:`core.precompute.plan`: what to compute: the source (a built-in scenario or an upload's
  files), the rows, one task per operation with its resolved parameters and key; opened the same
  way in the driver and in every Ray actor.
- :mod:`core.precompute.engines`: the local engine (threads in this process) and the Ray engine
  (Ray Data ``map_batches`` over actors that load the model once); both call the same per-batch code.
- :mod:`core.precompute.output`: shards (``.npz`` read without pickle) and the manifest written last;
  :func:`core.precompute.output.find` reads a finished result back by sample index.
- :mod:`core.precompute.run`: the driver: skip what is already published, run the rest, publish.

Importing this package imports neither torch, ray nor fsspec.
"""

from core.precompute.ops import OP_NAMES, Op, Rows, get_op, op_names, register_op
from core.precompute.output import Precomputed, find

__all__ = ["OP_NAMES", "Op", "Precomputed", "Rows", "find", "get_op", "op_names", "register_op"]
