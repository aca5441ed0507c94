"""Exact Shapley values of a cooperative game: the lecture's bill-splitting example and beyond.

"Features are players in a cooperative game of making a prediction": before SHAP approximates
it, the Shapley value is computed exactly here, from the value of every coalition, so the
teaching widget and the CLI can show each player's share, the marginal contribution of each
player in every join order, and the efficiency check (the shares sum to the grand coalition's
value).

Coalitions are bit masks over the players (bit i = player i), so a game of n players is one
float array of length 2**n, and the values come from one vectorised pass per player.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from core.errors import InputShapeError, ParameterError

MAX_PLAYERS = 20  # 2**20 coalition values (8 MB); exact values beyond that need sampling
MAX_ORDER_PLAYERS = 8  # 8! = 40,320 join orders is the most a table should list

#: The lecture's restaurant bill: what Alice, Bob and Carol would pay alone and together.
RESTAURANT_BILL: dict[str, float] = {
    "Alice": 400, "Bob": 560, "Carol": 720,
    "Alice,Bob": 740, "Alice,Carol": 780, "Bob,Carol": 980,
    "Alice,Bob,Carol": 1000,
}


@dataclass(frozen=True)
class Game:
    """A cooperative game: ``values[mask]`` is the value of the coalition whose bits are set.

    Attributes
    ----------
    players : tuple of str
    values : ndarray of shape (2 ** n_players,)
        ``values[0]`` is the empty coalition's value (0 unless given).
    """

    players: tuple[str, ...]
    values: np.ndarray

    @property
    def n(self) -> int:
        return len(self.players)

    def mask(self, coalition: str | list[str] | tuple[str, ...]) -> int:
        names = _split(coalition) if isinstance(coalition, str) else list(coalition)
        index = {p: i for i, p in enumerate(self.players)}
        unknown = [p for p in names if p not in index]
        if unknown:
            raise ParameterError(f"Unknown player(s) {unknown}; the players are {list(self.players)}.")
        return sum(1 << index[p] for p in set(names))

    def value(self, coalition: str | list[str] | tuple[str, ...]) -> float:
        return float(self.values[self.mask(coalition)])

    def label(self, mask: int) -> str:
        return ",".join(p for i, p in enumerate(self.players) if mask >> i & 1)

    @classmethod
    def from_mapping(cls, mapping: Mapping[str, float], players: list[str] | None = None) -> "Game":
        """Build a game from ``{"A": v, "A,B": v, ...}`` (names separated by commas).

        Every non-empty coalition of the players must have a value; the empty coalition ``""``
        may be given and defaults to 0. Player order follows first appearance (or ``players``).
        """
        if not mapping:
            raise InputShapeError("The game has no coalition values.",
                                  hint='give values like {"A": 400, "B": 560, "A,B": 740}.')
        order: list[str] = list(players or [])
        for key in mapping:
            for name in _split(key):
                if name not in order:
                    order.append(name)
        n = len(order)
        if n == 0:
            raise InputShapeError("The game has no players (only the empty coalition was given).")
        if n > MAX_PLAYERS:
            raise ParameterError(f"Exact Shapley values need 2**n coalition values; got {n} players "
                                 f"(at most {MAX_PLAYERS}).", hint="use sampling (SHAP) for more players.")
        index = {p: i for i, p in enumerate(order)}
        values = np.full(1 << n, np.nan)
        values[0] = 0.0
        for key, raw in mapping.items():
            try:
                v = float(raw)
            except (TypeError, ValueError):
                raise ParameterError(f"The value of coalition {key!r} must be a number; got {raw!r}.") from None
            if not math.isfinite(v):
                raise ParameterError(f"The value of coalition {key!r} must be finite; got {raw!r}.")
            names = _split(key)
            if len(set(names)) != len(names):
                raise ParameterError(f"Coalition {key!r} names a player twice.")
            values[sum(1 << index[p] for p in names)] = v
        missing = np.flatnonzero(np.isnan(values))
        if len(missing):
            game = cls(tuple(order), values)
            shown = ", ".join(repr(game.label(int(m))) for m in missing[:8])
            more = f" and {len(missing) - 8} more" if len(missing) > 8 else ""
            raise InputShapeError(f"Missing values for {len(missing)} coalition(s): {shown}{more}.",
                                  hint="a game needs the value of every non-empty coalition of its players.")
        return cls(tuple(order), values)


def coalition_labels(players: list[str] | tuple[str, ...]) -> list[str]:
    """Every non-empty coalition of ``players`` as "A", "A,B"..., smallest first, in player order."""
    return [",".join(c) for r in range(1, len(players) + 1) for c in itertools.combinations(players, r)]


def default_values(players: list[str] | tuple[str, ...]) -> dict[str, float]:
    """Starting values for an editable game: the restaurant bill for its three diners, otherwise a
    bill where sharing saves money (each diner alone 400 + 160 * position, together 20 % less)."""
    if tuple(players) == ("Alice", "Bob", "Carol"):
        return dict(RESTAURANT_BILL)
    alone = {p: 400.0 + 160.0 * i for i, p in enumerate(players)}
    return {label: round(sum(alone[p] for p in _split(label)) * (1.0 if "," not in label else 0.8), 2)
            for label in coalition_labels(players)}


def parse_players(text: str, minimum: int = 2, maximum: int = 5) -> list[str]:
    """Player names from comma-separated text, validated (count, duplicates, empty names)."""
    names = _split(text)
    if len(set(names)) != len(names):
        raise ParameterError(f"Player names must be distinct; got {names}.")
    if not minimum <= len(names) <= maximum:
        raise ParameterError(f"The game needs {minimum} to {maximum} players; got {len(names)}: {names}.",
                             hint="separate names with commas, e.g. 'Alice, Bob, Carol'.")
    return names


def _split(key: str) -> list[str]:
    return [part.strip() for part in key.split(",") if part.strip()]


def _popcounts(n: int) -> np.ndarray:
    masks = np.arange(1 << n, dtype=np.int64)
    counts = np.zeros(1 << n, dtype=np.int64)
    for i in range(n):
        counts += (masks >> i) & 1
    return counts


def shapley_values(game: Game) -> np.ndarray:
    """Exact Shapley values, ndarray of shape (n_players,).

    phi_i = sum over coalitions S without i of |S|! (n - |S| - 1)! / n! * (v(S + i) - v(S)).
    """
    n = game.n
    masks = np.arange(1 << n, dtype=np.int64)
    sizes = _popcounts(n)
    weights = np.array([math.factorial(k) * math.factorial(n - k - 1) / math.factorial(n) for k in range(n)])
    phi = np.empty(n)
    for i in range(n):
        without = masks[(masks >> i & 1) == 0]
        phi[i] = np.dot(weights[sizes[without]], game.values[without | (1 << i)] - game.values[without])
    return phi


def join_orders(game: Game) -> list[dict[str, object]]:
    """Every order in which the players can join, with each player's marginal contribution.

    The average of a player's contributions over all orders is its Shapley value (the table the
    lecture builds by hand). Limited to ``MAX_ORDER_PLAYERS`` players.
    """
    if game.n > MAX_ORDER_PLAYERS:
        raise ParameterError(f"Listing join orders needs n! rows; got {game.n} players (at most {MAX_ORDER_PLAYERS}).")
    rows = []
    for order in itertools.permutations(range(game.n)):
        mask, row = 0, {"order": " → ".join(game.players[i] for i in order)}
        for i in order:
            row[game.players[i]] = float(game.values[mask | 1 << i] - game.values[mask])
            mask |= 1 << i
        rows.append(row)
    return rows


def efficiency_gap(game: Game, phi: np.ndarray) -> float:
    """sum(phi) - (v(all players) - v(empty)): 0 up to rounding for exact Shapley values."""
    return float(np.sum(phi) - (game.values[-1] - game.values[0]))
