"""Model adapters: one uniform interface over torch modules and scikit-learn estimators."""

from core.adapters.base import ModelAdapter, ModelInfo

__all__ = ["ModelAdapter", "ModelInfo"]
