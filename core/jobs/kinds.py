"""The work that runs as jobs (core.jobs.pool), one registered function per kind.

Each function takes its parameters as keyword arguments plus ``progress`` and stores what it computes
in the artifact store, so a page reads a finished job's result from the store the usual way.
"""

from __future__ import annotations

from core.jobs.pool import register
from core.progress import ProgressCallback


@register("train_model", "Training a built-in model on first use")
def train_model(scenario: str, model: str, variant: str | None, progress: ProgressCallback | None = None) -> bool:
    """Train (and store) a built-in scenario's model; the pages then load it from the store.

    First a few steps are timed, and the estimate is the job's first progress message, so the page following the
    job says how long the training will take before it starts (off the request thread: 18 s for MNIST under load).
    """
    from core import scenarios
    from core.progress import report

    report(progress, 0.0, "timing a few training steps to say how long it will take")
    estimate = scenarios.estimate_training(scenario, model, variant)
    report(progress, 0.0, f"{estimate.about} on this machine ({estimate.basis})")
    scenarios.load_model(scenario, model, variant, progress=progress)
    return True


@register("uncertainty_source", "Training an uncertainty source")
def train_uncertainty_source(scenario: str, model: str | None, variant: str | None, kind: str, n: int,
                             progress: ProgressCallback | None = None) -> bool:
    """Train (and store) the members of an uncertainty source (ensembles, Bayes by backprop, the model MC
    dropout perturbs); the page then loads the source from the store."""
    from core.uncertainty.sources import load_source

    load_source(scenario, model, variant, kind, int(n), progress=progress)
    return True


@register("precompute", "Precomputing a dataset")
def precompute_dataset(ops: list[str], scenario: str | None = None, model: str | None = None,
                       variant: str | None = None, upload: dict | None = None, split: str = "test",
                       limit: int | None = None, methods: list[str] | None = None,
                       method_params: dict | None = None, op_params: dict | None = None, store: str | None = None,
                       engine: str | None = None, address: str | None = None, workers: int = 1,
                       gpus_per_worker: float = 0.0, batch_size: int | None = None, retries: int = 2,
                       progress: ProgressCallback | None = None) -> dict:
    """Precompute ``ops`` over a split of a built-in scenario (or an upload's files, ``upload``: the fields of
    :class:`core.precompute.plan.SourceSpec`) into ``store`` (default: the artifact store's folder). With
    ``TRUSTLENS_RAY_ADDRESS`` set (and no ``engine``), it runs on that Ray cluster; ``address`` names another
    (``python -m core precompute --address``, which runs this job too). Cancelling stops it
    between two batches and removes what it wrote: nothing is published. Returns the run's report."""
    from core.precompute.plan import SourceSpec
    from core.precompute.run import job_engine, precompute
    from core.store import default_store

    chosen, cluster = job_engine(engine)
    address = address or cluster if chosen == "ray" else None
    source = SourceSpec(**upload) if upload else SourceSpec(scenario=scenario, model=model, variant=variant)
    if store is None:
        default = default_store()
        if getattr(default, "readonly", False):
            from core.errors import ConfigurationError

            raise ConfigurationError("The artifact store is read-only here, and a precompute job writes its results.",
                                     hint="give the job a store it may write to (store=...), or run it where the "
                                          "store is writable.")
        store = str(getattr(default, "url", None) or default.root)
    return precompute(source, list(ops), store=store, split=split, limit=limit,
                      methods=list(methods or ()), method_params=method_params, op_params=op_params, engine=chosen,
                      address=address, workers=int(workers), gpus_per_worker=float(gpus_per_worker),
                      batch_size=batch_size, retries=int(retries),
                      progress=progress).as_dict()


@register("uncertainty_report", "Scoring the stress sets")
def score_stress_sets(scenario: str, model: str | None, variant: str | None, kind: str, n: int, epsilon: float,
                      autoencoder: bool, progress: ProgressCallback | None = None):
    """The uncertainty page's report of one (trained) source over the clean test split and every stress set; its
    parts are cached in the artifact store by core, the report itself is the job's value."""
    from core.uncertainty.report import uncertainty_report
    from core.uncertainty.sources import load_source

    source = load_source(scenario, model, variant, kind, int(n))
    return uncertainty_report(source, epsilon=float(epsilon), autoencoder=bool(autoencoder), progress=progress)

