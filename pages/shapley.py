"""Shapley values: the lecture's bill-splitting game, computed exactly and shown step by step."""

import numpy as np
import pandas as pd
import streamlit as st

from components import state
from components.feedback import guarded
from core import shapley

state.current()  # keeps the page inside app.py's shell; the game needs no model
st.title("Shapley values")
st.caption(
    "Features are players in a cooperative game of making a prediction. Before SHAP approximates it, "
    "here is the exact Shapley value of a small game: Alice, Bob and Carol share a restaurant bill. "
    "Each coalition's value is what that group would pay on its own; who should pay what of the total?"
)

names_text = st.text_input("Players (2 to 5, separated by commas)", "Alice, Bob, Carol", key="game_players")
with guarded():
    players = shapley.parse_players(names_text)

st.subheader("Coalition values")
defaults = shapley.default_values(players)
labels = shapley.coalition_labels(players)
columns = st.columns(4)
mapping = {}
for i, label in enumerate(labels):
    # Keys include the player list, so renaming players starts from fresh defaults.
    mapping[label] = columns[i % 4].number_input(
        f"v({label.replace(',', ', ')})", value=float(defaults[label]), step=10.0,
        key=f"game_v_{'|'.join(players)}_{label}",
    )

with guarded():
    game = shapley.Game.from_mapping(mapping, players)
phi = shapley.shapley_values(game)

st.subheader("Shapley values: each player's fair share")
cols = st.columns(len(players))
for col, player, value in zip(cols, players, phi):
    col.metric(player, f"{value:,.2f}")
gap = shapley.efficiency_gap(game, phi)
grand = float(game.values[-1])
status = "holds" if abs(gap) < 1e-6 * max(1.0, abs(grand)) else "FAILS"
st.success(f"Efficiency {status}: {' + '.join(f'{v:,.2f}' for v in phi)} = {phi.sum():,.2f} "
           f"= v(all players) = {grand:,.2f} (gap {gap:.1e}).", icon=":material/balance:")

st.subheader("How: average the marginal contribution over every join order")
st.caption("In each order, a player pays what its arrival adds to the bill of those already seated. "
           "A player's Shapley value is the mean of its column.")
rows = shapley.join_orders(game)
table = pd.DataFrame(rows)
mean_row = {"order": "mean = Shapley value", **{p: float(np.mean(table[p])) for p in players}}
table = pd.concat([table, pd.DataFrame([mean_row])], ignore_index=True)
st.dataframe(table, hide_index=True, width="stretch", key="game_orders",
             column_config={p: st.column_config.NumberColumn(format="%.2f") for p in players})
