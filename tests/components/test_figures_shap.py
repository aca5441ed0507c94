"""components/figures/shap.py: the waterfall's labels say each feature's value as the data shows it."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from components.figures.shap import waterfall_figure


def explanation():
    # a raw-column pipeline's row: 'colour' is the text category 'blue', held as code 0 where SHAP ran
    return SimpleNamespace(values=np.array([[0.30, -0.05, 0.10]]), base_values=np.array([0.4]),
                           data=np.array([[0.0, 1.25, np.nan]]), feature_names=("colour", "x1", "x2"),
                           rows=np.array([7]), output=np.array([0.75]))


def labels(fig) -> list[str]:
    return list(fig.data[0].y)


def test_labels_show_the_tables_values_not_the_codes():
    fig = waterfall_figure(explanation(), 0, target_name="yes", shown={"colour": "blue", "x2": float("nan")})
    assert labels(fig) == ["model output", "x1 = 1.25", "x2 = —", "colour = blue", "base value (average output)"]
    assert fig.layout.title.text == "Why row 7: SHAP values of P(yes)"
    # the steps still add up from the base value to the output
    assert np.isclose(0.4 + sum(fig.data[0].x[1:-1]), 0.75)


def test_without_the_table_the_model_inputs_label_the_steps():
    assert labels(waterfall_figure(explanation(), 0)) == ["model output", "x1 = 1.25", "x2 = —", "colour = 0",
                                                          "base value (average output)"]
