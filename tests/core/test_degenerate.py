"""Degenerate maps: detection, the Grad-CAM default layer that avoids them, and verdicts that refuse them."""

from collections import OrderedDict

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from torch import nn

from core.attribution.gradcam import default_layer, layer_label, pre_activation_layers, spatial_layers
from core.trust.degenerate import (
    CONSTANT,
    NON_FINITE,
    VANISHED,
    degenerate_kinds,
    degenerate_reason,
    degenerate_rows,
    is_degenerate,
)
from tests.core.attribution_support import adapter_of


def test_kinds_of_degenerate_maps():
    maps = np.stack([
        np.zeros((4, 4)),                       # Grad-CAM after its ReLU clipped everything
        np.full((4, 4), 0.3),                   # constant, not zero
        np.where(np.eye(4) > 0, np.nan, 1.0),   # NaN
        np.full((4, 4), 1e-20) * np.arange(16).reshape(4, 4),  # underflowed gradient of a saturated output
        np.arange(16.0).reshape(4, 4),          # a usable map
        np.full((4, 4), 5.0) + 1e-9 * np.arange(16).reshape(4, 4),  # float32 rounding noise around a constant
    ])
    assert degenerate_kinds(maps) == [VANISHED, CONSTANT, NON_FINITE, VANISHED, None, CONSTANT]
    assert degenerate_rows(maps).tolist() == [True, True, True, True, False, True]
    assert degenerate_reason(maps[4]) is None
    reason = degenerate_reason(maps[0], "Grad-CAM")
    assert reason.startswith("Grad-CAM's map is blank") and "Try:" in reason
    assert is_degenerate(np.array([])) and not is_degenerate(np.array([0.0, 1.0]))


@settings(max_examples=60, deadline=None)
@given(arrays(np.float64, (3, 5), elements=st.floats(-1e3, 1e3, allow_nan=False)))
def test_a_map_is_degenerate_exactly_when_it_ranks_nothing(maps):
    flags = degenerate_rows(maps)
    for row, flag in zip(maps, flags):
        spread = row.max() - row.min()
        size = np.abs(row).max()
        assert flag == (size < 1e-12 or spread <= 1e-6 * size)
        # Adding a clear ramp always makes it usable.
        assert not is_degenerate(row + np.linspace(0, 1 + 2 * size, row.size))


class _Net(nn.Module):
    """Registration order differs from the forward order: the hooks, not the names' order, decide."""

    def __init__(self) -> None:
        super().__init__()
        self.head = nn.Linear(4 * 4 * 4, 3)
        self.act = nn.ReLU()
        self.norm = nn.BatchNorm2d(4)
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.pool = nn.AdaptiveAvgPool2d(4)

    def forward(self, x):
        return self.head(self.pool(self.act(self.norm(self.conv(x)))).flatten(1))


def test_default_layer_is_the_conv_block_output_in_forward_order():
    torch.manual_seed(0)
    adapter = adapter_of(_Net().eval(), 3)
    assert spatial_layers(adapter, (1, 8, 8)) == ["conv", "norm", "act", "pool"]
    assert default_layer(adapter, (1, 8, 8)) == "act"
    assert pre_activation_layers(adapter, (1, 8, 8)) == {"conv", "norm"}
    assert layer_label("conv", {"conv"}) == "conv (before its activation)" and layer_label("act", {"conv"}) == "act"


def test_without_an_activation_module_the_default_stays_the_last_conv():
    torch.manual_seed(0)
    module = nn.Sequential(OrderedDict([("conv1", nn.Conv2d(1, 2, 3, padding=1)), ("conv2", nn.Conv2d(2, 2, 3, padding=1)),
                                        ("flat", nn.Flatten()), ("fc", nn.Linear(2 * 8 * 8, 3))]))
    adapter = adapter_of(module.eval(), 3)
    assert default_layer(adapter, (1, 8, 8)) == "conv2"
    assert pre_activation_layers(adapter, (1, 8, 8)) == set()
