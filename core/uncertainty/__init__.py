"""Uncertainty: ensembles, MC dropout, Bayes by backprop, stress sets and how well each score
separates mistakes and out-of-distribution inputs. See the submodules' docstrings."""

from core.uncertainty.metrics import (
    AGGREGATIONS,
    SCORES,
    agreement_matrix,
    aggregate,
    auroc,
    entropy,
    max_confidence_prediction,
    mean_prediction,
    uncertainty_scores,
)
from core.uncertainty.sources import SOURCES, Source, load_source

__all__ = ["AGGREGATIONS", "SCORES", "SOURCES", "Source", "agreement_matrix", "aggregate", "auroc", "entropy",
           "load_source", "max_confidence_prediction", "mean_prediction", "uncertainty_scores"]
