"""Params are the spec: a method's dataclass declares its form, deep-link names and CLI flags once."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, fields as dc_fields

import numpy as np
import pytest

from core import params as P
from core.attribution import method_names
from core.explanation import get_method
from core.attribution.base import Method, MethodResult, METHODS, register
from core.attribution.lrp import LRPParams
from core.errors import ParameterError
from core.tabular.shap_tabular import ShapParams
from core.text.lime_text import LimeParams

CONTEXT = {"image_shape": (1, 8, 8), "image_side": 8, "layers": ["conv1", "relu1", "conv2", "relu2"],
           "default_layer": "relu2", "layer_label": str}


class FakeColumn:
    """Stands in for a streamlit container: every widget returns the value it would open on."""

    def __init__(self, log):
        self.log = log

    def _take(self, kind, label, value, key, **kw):
        self.log.append((kind, key, value, kw))
        return value

    def toggle(self, label, value, key=None, help=None):
        return self._take("toggle", label, value, key)

    def selectbox(self, label, options, index=0, key=None, format_func=str, help=None):
        [format_func(o) for o in options]
        return self._take("select", label, options[index], key, options=list(options))

    def radio(self, label, options, index=0, key=None, format_func=str, horizontal=False, help=None):
        return self._take("radio", label, options[index], key, options=list(options))

    def select_slider(self, label, options, value, key=None, help=None):
        assert value in options
        return self._take("select_slider", label, value, key, options=list(options))

    def number_input(self, label, low, high, value, step=None, key=None, help=None):
        assert low <= value <= high
        return self._take("number", label, value, key, low=low, high=high)

    def slider(self, label, low, high, value, step=None, key=None, help=None):
        assert low <= value <= high
        return self._take("slider", label, value, key, low=low, high=high)

    def columns(self, n):
        return [self] * n

    def caption(self, text):
        self.log.append(("caption", None, text, {}))


def draw(params_type, prefix, context=CONTEXT):
    from components.params_form import params_form

    log = []
    return params_form(params_type, prefix, context, FakeColumn(log)), log


@pytest.mark.parametrize("name", method_names())
def test_every_image_method_form_opens_on_valid_defaults(name):
    method = get_method(name)
    params, log = draw(method.params_type, method.prefix)
    assert isinstance(params, method.params_type)
    keys = [key for _kind, key, _v, _kw in log if key]
    assert len(keys) == len(set(keys))
    assert all(key.startswith(method.prefix + "_") for key in keys)
    for f in P.fields(method.params_type):  # the form opens on the dataclass default where there is one
        if f.default is not None and P.shown(f, {g.name: getattr(params, g.name) for g in P.fields(method.params_type)}):
            assert getattr(params, f.name) == f.default


def test_automatic_defaults_come_from_the_data():
    occ, _ = draw(get_method("occlusion").params_type, "occ")
    assert (occ.window, occ.stride) == get_method("occlusion").params_type().resolved(8, 8)
    cam, log = draw(get_method("grad_cam").params_type, "cam")
    assert cam.layer == "relu2"
    assert [kw["options"] for kind, key, _v, kw in log if key == "cam_layer"] == [CONTEXT["layers"]]


def test_stride_is_bounded_by_the_window_just_chosen():
    _, log = draw(get_method("occlusion").params_type, "occ")
    window = next(v for _k, key, v, _kw in log if key == "occ_window")
    stride_high = next(kw["high"] for _k, key, _v, kw in log if key == "occ_stride")
    assert stride_high == window


def test_lrp_shows_epsilon_or_alpha_and_derives_beta():
    params, log = draw(LRPParams, "lrp")
    assert [key for _k, key, _v, _kw in log] == ["lrp_rule", "lrp_epsilon"]
    built = P.build(LRPParams, {"rule": "alpha_beta", "epsilon": 1e-6, "alpha": 2.0})
    assert (built.alpha, built.beta) == (2.0, 1.0)


def test_text_and_table_methods_use_the_same_spec():
    lime, log = draw(LimeParams, "lime", {})
    assert lime == LimeParams()
    assert [key for _k, key, _v, _kw in log] == ["lime_samples", "lime_features", "lime_selection", "lime_seed"]
    shap, log = draw(ShapParams, "shap", {})
    assert shap == ShapParams()
    assert [key for _k, key, _v, _kw in log] == ["shap_algorithm", "shap_background", "shap_background_size"]


def test_link_names_are_the_form_keys():
    from components.links import PAGE_PARAMS

    images = {p.key: p.kind for p in PAGE_PARAMS["images"]}
    for name in method_names():
        method = get_method(name)
        for key, kind in P.link_kinds(method.params_type, method.prefix):
            assert images[key] == kind


@pytest.mark.parametrize("name", method_names())
def test_cli_flags_round_trip(name):
    method = get_method(name)
    parser = argparse.ArgumentParser()
    P.add_flags(parser, [method])
    assert P.from_flags(method.params_type, method.prefix, parser.parse_args([])) == method.params_type()
    for f in P.fields(method.params_type):
        if f.kind == "int" and f.spec.options:
            value = f.spec.options[-1]
            args = parser.parse_args([f.flag(method.prefix), str(value)])
            assert getattr(P.from_flags(method.params_type, method.prefix, args), f.name) == value


def test_bad_flag_value_is_a_parameter_error():
    parser = argparse.ArgumentParser()
    P.add_flags(parser, [get_method("lime", "text")])
    with pytest.raises(ParameterError):
        P.from_flags(LimeParams, "lime", parser.parse_args(["--lime-samples", "1"]))
    with pytest.raises(SystemExit):
        parser.parse_args(["--lime-selection", "best"])


@dataclass(frozen=True)
class _SquareParams:
    power: int = P.param(2, "Power", "power", low=1, high=4)


def test_a_new_method_needs_only_its_own_file():
    """Registering a method (what its own module does) puts it in the list, the form, the links and the CLI."""

    def run(adapter, x, target, params, **_):
        return MethodResult(maps=np.asarray(x, np.float32) ** params.power)

    register(Method(name="square_test", title="Square", params_type=_SquareParams, run=run,
                    unsupported=lambda adapter: None, signed=lambda p: False, output="logit",
                    needs_gradients=False, prefix="sq", order=99))
    try:
        assert method_names()[-1] == "square_test"
        params, log = draw(_SquareParams, "sq")
        assert params == _SquareParams() and log[0][1] == "sq_power"
        from components.links import _method_params

        assert ("sq_power", "int") in {(p.key, p.kind) for p in _method_params()}
        parser = argparse.ArgumentParser()
        P.add_flags(parser, [get_method("square_test")])
        assert P.from_flags(_SquareParams, "sq", parser.parse_args(["--sq-power", "3"])).power == 3
    finally:
        METHODS.pop("square_test")


def test_every_spec_default_is_valid():
    for params_type in [get_method(n).params_type for n in method_names()] + [LimeParams, ShapParams]:
        for f in P.fields(params_type):
            if f.default is None:
                continue
            if isinstance(f.spec.choices, tuple):
                assert f.default in f.spec.choices, (params_type, f.name)
            if f.spec.options:
                assert f.default in f.spec.options, (params_type, f.name)
            for b in (f.spec.low, f.spec.high):
                assert b is None or isinstance(b, str) or isinstance(b, (int, float))
        assert {f.name for f in dc_fields(params_type)} >= {f.name for f in P.fields(params_type)}
