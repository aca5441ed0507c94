"""The work that runs as jobs (core.jobs.pool), one registered function per kind.

Each function takes its parameters as keyword arguments plus ``progress`` and stores what it computes
in the artifact store, so a page reads a finished job's result from the store the usual way.
"""

from __future__ import annotations

from core.jobs.pool import register
from core.progress import ProgressCallback


@register("uncertainty_source", "Training an uncertainty source")
def train_uncertainty_source(scenario: str, model: str | None, variant: str | None, kind: str, n: int,
                             progress: ProgressCallback | None = None) -> bool:
    """Train (and store) the members of an uncertainty source (ensembles, Bayes by backprop, the model MC
    dropout perturbs); the page then loads the source from the store."""
    from core.uncertainty.sources import load_source

    load_source(scenario, model, variant, kind, int(n), progress=progress)
    return True
