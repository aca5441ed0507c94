"""Exact Shapley values: the lecture's restaurant bill, the axioms on random games, the CLI."""

from __future__ import annotations

import itertools
import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.tabular import shapley
from core.errors import InputShapeError, ParameterError
from tests.conftest import ROOT


def test_restaurant_bill_gives_the_lecture_answer():
    game = shapley.Game.from_mapping(shapley.RESTAURANT_BILL)
    np.testing.assert_allclose(shapley.shapley_values(game), [180, 360, 460], atol=1e-9)


def test_join_orders_average_to_the_shapley_values():
    game = shapley.Game.from_mapping(shapley.RESTAURANT_BILL)
    rows = shapley.join_orders(game)
    assert len(rows) == 6
    assert rows[0] == {"order": "Alice → Bob → Carol", "Alice": 400.0, "Bob": 340.0, "Carol": 260.0}
    means = [np.mean([r[p] for r in rows]) for p in game.players]
    np.testing.assert_allclose(means, shapley.shapley_values(game))
    for row in rows:  # each order splits the whole bill
        assert sum(row[p] for p in game.players) == pytest.approx(1000)


def brute_force(game: shapley.Game) -> np.ndarray:
    """Average marginal contribution over all n! orders (independent of the subset formula)."""
    totals = np.zeros(game.n)
    for order in itertools.permutations(range(game.n)):
        mask = 0
        for i in order:
            totals[i] += game.values[mask | 1 << i] - game.values[mask]
            mask |= 1 << i
    return totals / math.factorial(game.n)


games = st.integers(1, 5).flatmap(
    lambda n: st.lists(st.floats(-1e3, 1e3, allow_nan=False), min_size=(1 << n) - 1, max_size=(1 << n) - 1)
    .map(lambda vals, n=n: shapley.Game(tuple(f"p{i}" for i in range(n)), np.array([0.0, *vals])))
)


@settings(max_examples=60, deadline=None)
@given(games)
def test_matches_the_permutation_definition_and_is_efficient(game):
    phi = shapley.shapley_values(game)
    np.testing.assert_allclose(phi, brute_force(game), atol=1e-8)
    assert abs(shapley.efficiency_gap(game, phi)) < 1e-8


@settings(max_examples=60, deadline=None)
@given(games, st.data())
def test_null_player_gets_zero(game, data):
    # Make player k a null player: adding it to any coalition changes nothing.
    k = data.draw(st.integers(0, game.n - 1))
    values = game.values.copy()
    for mask in range(1 << game.n):
        if mask >> k & 1:
            values[mask] = values[mask & ~(1 << k)]
    phi = shapley.shapley_values(shapley.Game(game.players, values))
    assert abs(phi[k]) < 1e-9


@settings(max_examples=60, deadline=None)
@given(st.integers(2, 5), st.data())
def test_symmetric_players_get_equal_values(n, data):
    # A game whose value depends only on how many of players 0 and 1 are in, plus the others.
    base = data.draw(st.lists(st.floats(-100, 100, allow_nan=False), min_size=1 << n, max_size=1 << n))
    values = np.array(base)
    for mask in range(1 << n):
        swapped = mask & ~0b11 | (mask & 1) << 1 | (mask >> 1) & 1
        values[swapped] = values[mask] if swapped > mask else values[swapped]
    values[0] = 0.0
    phi = shapley.shapley_values(shapley.Game(tuple(f"p{i}" for i in range(n)), values))
    assert phi[0] == pytest.approx(phi[1], abs=1e-8)


def test_additive_game_gives_each_player_its_own_worth():
    worth = {"A": 3.0, "B": -1.0, "C": 7.5}
    mapping = {",".join(c): sum(worth[p] for p in c) for r in range(1, 4) for c in itertools.combinations("ABC", r)}
    phi = shapley.shapley_values(shapley.Game.from_mapping(mapping))
    np.testing.assert_allclose(phi, [3.0, -1.0, 7.5])


def test_ten_players_is_fast_and_exact():
    rng = np.random.default_rng(0)
    game = shapley.Game(tuple(f"p{i}" for i in range(10)), np.r_[0.0, rng.random((1 << 10) - 1)])
    phi = shapley.shapley_values(game)
    assert abs(shapley.efficiency_gap(game, phi)) < 1e-9


@pytest.mark.parametrize("mapping, error, match", [
    ({}, InputShapeError, "no coalition values"),
    ({"A": 1, "A,B": 3}, InputShapeError, r"Missing values for 1 coalition\(s\): 'B'"),
    ({"A": 1, "B": "lots", "A,B": 3}, ParameterError, r"coalition 'B' must be a number; got 'lots'"),
    ({"A": 1, "B": float("nan"), "A,B": 3}, ParameterError, "must be finite"),
    ({"A,A": 1}, ParameterError, "names a player twice"),
])
def test_bad_games_are_refused_with_a_message(mapping, error, match):
    with pytest.raises(error, match=match):
        shapley.Game.from_mapping(mapping)


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "core", "shapley-game", *args], cwd=ROOT, capture_output=True,
                          text=True, env=os.environ.copy(), timeout=60)


def test_cli_default_is_the_restaurant_bill():
    done = run_cli("--json")
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["players"] == ["Alice", "Bob", "Carol"]
    assert out["shapley_values"] == pytest.approx({"Alice": 180, "Bob": 360, "Carol": 460}, abs=1e-9)
    assert abs(out["efficiency_gap"]) < 1e-9


def test_cli_takes_values_and_reports_bad_json():
    done = run_cli("--values", json.dumps({"A": 1, "B": 2, "A,B": 5}), "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["shapley_values"] == {"A": 2.0, "B": 3.0}
    bad = run_cli("--values", "{A: 1}")
    assert bad.returncode == 1 and "not valid JSON" in bad.stderr and "Traceback" not in bad.stderr


def test_parse_players_and_defaults():
    assert shapley.parse_players(" Ann ,Ben, Cy ") == ["Ann", "Ben", "Cy"]
    with pytest.raises(ParameterError, match="distinct"):
        shapley.parse_players("A, A")
    with pytest.raises(ParameterError, match="got 1"):
        shapley.parse_players("A")
    assert shapley.coalition_labels(["A", "B", "C"]) == ["A", "B", "C", "A,B", "A,C", "B,C", "A,B,C"]
    assert shapley.default_values(["Alice", "Bob", "Carol"]) == shapley.RESTAURANT_BILL
    values = shapley.default_values(["A", "B"])
    assert values == {"A": 400.0, "B": 560.0, "A,B": 768.0}  # together 20 % cheaper
