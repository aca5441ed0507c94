"""Error hierarchy for TrustLens.

Every error a user can trigger is a :class:`TrustLensError`. Messages follow one shape:
what was received, what was expected, and what to try instead, so a page can show the
message as it is (``components.feedback`` turns these into ``st.error``) and the CLI can
print it and exit with a non-zero status.
"""

from __future__ import annotations


class TrustLensError(Exception):
    """Base class for errors that are the user's to fix (bad input, missing data...).

    Parameters
    ----------
    message : str
        What happened, naming the value received and what was expected.
    hint : str, optional
        What to try instead. Shown on its own line.
    """

    def __init__(self, message: str, hint: str | None = None) -> None:
        self.message = message
        self.hint = hint
        super().__init__(message if not hint else f"{message}\nTry: {hint}")


class ConfigurationError(TrustLensError):
    """An environment variable or setting has a value TrustLens cannot use."""


class DataUnavailableError(TrustLensError):
    """A dataset is neither in TRUSTLENS_DATA_DIR nor downloadable."""


class UnknownNameError(TrustLensError, KeyError):
    """A scenario, model, layer or method name that does not exist."""

    def __str__(self) -> str:  # KeyError would otherwise repr() the message
        return Exception.__str__(self)


class InputShapeError(TrustLensError, ValueError):
    """Input whose shape or type does not match what the model expects."""


class ParameterError(TrustLensError, ValueError):
    """A parameter outside its valid range."""


def check_int(name: str, value: object, owner: str, minimum: int = 1) -> int:
    """Validate an integer parameter and return it.

    Raises a :class:`ParameterError` shaped like scikit-learn's messages:
    "The 'batch_size' parameter of predict_proba must be an int >= 1. Got 0 instead."
    """
    import numbers

    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ParameterError(
            f"The {name!r} parameter of {owner} must be an int >= {minimum}. "
            f"Got {value!r} of type {type(value).__name__} instead."
        )
    value = int(value)  # type: ignore[arg-type]
    if value < minimum:
        raise ParameterError(
            f"The {name!r} parameter of {owner} must be an int >= {minimum}. Got {value} instead."
        )
    return value


def unknown_name(kind: str, received: str, known: list[str] | tuple[str, ...]) -> UnknownNameError:
    """Build the error for a name that is not among ``known``, listing the choices."""
    choices = ", ".join(repr(k) for k in known) or "(none)"
    return UnknownNameError(
        f"Unknown {kind} {received!r}.", hint=f"use one of: {choices}."
    )
