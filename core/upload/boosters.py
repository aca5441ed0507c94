"""Gradient-boosted tree files in their libraries' own formats: XGBoost (.json / .ubj), LightGBM (.txt), CatBoost (.cbm).

All are data, not code: XGBoost's ``booster.save_model("m.json")`` (or ``.ubj``, the same document in
Universal Binary JSON), LightGBM's ``booster.save_model("m.txt")`` and CatBoost's ``model.save_model("m.cbm")``
(a FlatBuffers file) hold the trees, the objective and the feature names, and loading them builds trees
only. Nothing is unpickled.

A malformed LightGBM text file can kill the process inside LightGBM's C++ parser (measured with LightGBM 4.7:
one model cut after 30 characters ends in ``terminate called without an active exception``, another cut in half
in a segmentation fault; tests/hostile/files/truncated.txt is the latter), so every file is first
read in a child process (:func:`describe`): a file that kills the child is refused with a message, and
only a file the child read is loaded in the server (:func:`load_booster`).

What a booster does not store, TrustLens does not guess: the class names (XGBoost and LightGBM keep none:
outputs are named by the data's labels, sorted, unless the user gives them in output order; CatBoost keeps
its classes) and, for files saved without
feature names, the columns (then the table's columns, in file order, must match the model's width).
Classification objectives only: a regression or ranking booster is refused, naming its objective. A CatBoost
model with categorical features is refused for now, naming them (its columns would be text).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import threading
from typing import Any

BOOSTER_FORMATS = ("xgboost", "lightgbm", "catboost")
TITLES = {"xgboost": "XGBoost booster (.json / .ubj)", "lightgbm": "LightGBM booster (.txt)",
          "catboost": "CatBoost model (.cbm)"}
# Objectives whose scores are class probabilities (after the library's own link)
XGBOOST_OBJECTIVES = ("binary:logistic", "binary:logitraw", "multi:softprob", "multi:softmax")
LIGHTGBM_OBJECTIVES = ("binary", "multiclass", "softmax", "multiclassova", "ova", "ovr", "multiclass_ova")
CATBOOST_OBJECTIVES = ("Logloss", "CrossEntropy", "MultiClass", "MultiClassOneVsAll")
OBJECTIVES = {"xgboost": XGBOOST_OBJECTIVES, "lightgbm": LIGHTGBM_OBJECTIVES, "catboost": CATBOOST_OBJECTIVES}
CHILD_TIMEOUT_S = 120.0
MAX_CLASSES = 1000
MAX_DESCRIBED = 64  # files remembered (feature names included), oldest dropped first

_described: dict[str, dict[str, Any]] = {}  # sha256 -> what a child process read from the file without dying
_described_lock = threading.Lock()


class BoosterRefused(Exception):
    """Raised by :func:`describe` for a file that is not a usable classifier booster: the text says why, ``hint``
    what to do (None: save the file again)."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.hint = hint


def detect(data: bytes) -> str | None:
    """``"xgboost"``, ``"lightgbm"``, ``"catboost"`` or None, from the bytes only (never the file name)."""
    head = data[:256]
    if head.startswith(b"CBM1"):
        return "catboost"  # CatBoost's model file magic
    if head.startswith(b"tree\n") and b"version=v" in head:
        return "lightgbm"
    stripped = head.lstrip()
    if stripped.startswith(b"{") and b'"learner"' in head:
        return "xgboost"  # JSON: {"learner":{...},"version":[...]}
    if re.match(rb"\{[iUIlL]", head) and b"learner" in head[:32]:
        return "xgboost"  # UBJSON: '{', then the key "learner" with its length's type marker: {L<int64>learner{...
    return None


_CHILD = r"""
import json, sys
data = sys.stdin.buffer.read()
fmt = sys.argv[1]
if fmt == "xgboost":
    import xgboost as xgb
    booster = xgb.Booster()
    booster.load_model(bytearray(data))
    config = json.loads(booster.save_config())["learner"]
    objective = config["objective"]["name"]
    n_outputs = int(config["learner_model_param"].get("num_class", "0") or 0)
    out = {"objective": objective, "n_classes": max(n_outputs, 2) if objective.startswith(("binary", "multi")) else None,
           "n_features": int(booster.num_features()), "feature_names": booster.feature_names,
           "n_trees": int(booster.num_boosted_rounds())}
elif fmt == "catboost":
    from catboost import CatBoostClassifier
    model = CatBoostClassifier()
    model.load_model(blob=data)
    params = model.get_all_params()
    names = list(model.feature_names_ or [])
    classes = [str(c) for c in model.classes_] if getattr(model, "classes_", None) is not None else []
    out = {"objective": str(params.get("loss_function", "")).split(":")[0], "n_classes": len(classes) or None,
           "class_names": classes, "n_features": len(names), "feature_names": names,
           "categorical": [names[j] for j in model.get_cat_feature_indices()], "depth": int(params.get("depth", 6)),
           "n_trees": int(model.tree_count_)}
else:
    import lightgbm as lgb
    booster = lgb.Booster(model_str=data.decode("utf-8"))
    objective = str(booster.dump_model(num_iteration=1)["objective"]).split()[0]
    per_iteration = int(booster.num_model_per_iteration())
    out = {"objective": objective, "n_classes": 2 if objective == "binary" else per_iteration,
           "n_features": int(booster.num_feature()), "feature_names": list(booster.feature_name()),
           "n_trees": int(booster.num_trees())}
sys.stdout.write(json.dumps(out))
"""


def describe(data: bytes, fmt: str) -> dict[str, Any]:
    """Read the booster in a child process: objective, classes, feature names, trees.

    Raises
    ------
    BoosterRefused
        The library is missing, the child died or failed reading the file, or the objective is not a
        classification one.
    """
    digest = hashlib.sha256(data).hexdigest()
    with _described_lock:
        if digest in _described:
            return dict(_described[digest])
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    try:
        done = subprocess.run([sys.executable, "-c", _CHILD, fmt], input=data, capture_output=True, env=env,
                              timeout=CHILD_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired:
        raise BoosterRefused(f"reading it took over {CHILD_TIMEOUT_S:.0f} s.") from None
    if done.returncode != 0:
        text = done.stderr.decode("utf-8", errors="replace")
        if "No module named" in text:
            raise BoosterRefused(f"the {fmt} package is not installed on this server (pip install -r requirements.txt).")
        lines = [line.strip() for line in text.splitlines() if line.strip() and not line.startswith(("Traceback", "  File"))]
        reason = lines[-1][:300] if lines else f"the reader exited with code {done.returncode}"
        if done.returncode < 0 or "terminate called" in text:
            reason = f"{fmt} aborted while parsing it ({reason})"
        raise BoosterRefused(f"it looks like a {TITLES[fmt]} but could not be read: {reason}.")
    info = json.loads(done.stdout.decode("utf-8"))
    allowed = OBJECTIVES[fmt]
    if info["objective"] not in allowed:
        raise BoosterRefused(f"its objective is {info['objective']!r}, not a classification one ({', '.join(allowed)}): "
                             "TrustLens explains classifiers.", hint="upload a classifier.")
    if not info["n_trees"] or not info["n_features"]:
        # A CatBoost file cut in half passes FlatBuffers' check as a model of 0 trees and 0 features (measured).
        raise BoosterRefused(f"it holds {info['n_trees']} trees over {info['n_features']} features: the file is "
                             "truncated or empty.")
    if info.get("categorical"):
        raise BoosterRefused(f"its categorical features ({', '.join(map(repr, info['categorical'][:8]))}) are not taken "
                             "yet: TrustLens feeds boosters numbers.",
                             hint="train it on numeric columns (e.g. one-hot or ordinal codes), or save the model as a "
                                  "scikit-learn pipeline with skops, which takes raw text columns.")
    if not info["n_classes"] or not 2 <= info["n_classes"] <= MAX_CLASSES:
        raise BoosterRefused(f"it declares {info['n_classes']} classes; 2 to {MAX_CLASSES} are taken.",
                             hint="upload a classifier of 2 or more classes.")
    with _described_lock:
        _described[digest] = dict(info)
        while len(_described) > MAX_DESCRIBED:
            del _described[next(iter(_described))]
    return info


def inferred_spec(info: dict[str, Any]) -> dict[str, Any]:
    """What the upload form and ``inspect-model`` show for a described booster."""
    out: dict[str, Any] = {"input_kind": "tabular", "n_features": info["n_features"], "n_classes": info["n_classes"],
                           "objective": info["objective"], "n_trees": info["n_trees"], "outputs": "probabilities"}
    if info.get("feature_names"):
        out["feature_names"] = list(info["feature_names"])
    if info.get("class_names"):
        out["class_names"] = list(info["class_names"])
    return out


def notes(info: dict[str, Any]) -> list[str]:
    out = [] if info.get("class_names") else [
        "A booster stores no class names: its outputs are named by the data's labels in sorted order; give the class "
        "names in the model's output order if they differ."]
    if not info.get("feature_names"):
        out.append("The file names no features: the table's columns, in file order, are taken as the model's.")
    return out


def load_booster(data: bytes, fmt: str) -> Any:
    """The library's booster, built in this process from a file :func:`describe` has read in a child."""
    describe(data, fmt)  # read in a child first (remembered by content)
    if fmt == "xgboost":
        import xgboost as xgb

        booster = xgb.Booster()
        booster.load_model(bytearray(data))
        booster.set_param({"nthread": 1})
        return booster
    if fmt == "catboost":
        from catboost import CatBoostClassifier

        model = CatBoostClassifier()
        model.load_model(blob=data)
        return model
    import lightgbm as lgb

    return lgb.Booster(model_str=data.decode("utf-8"))


def _normalised(name: str) -> str:
    # LightGBM replaces the characters JSON would need escaped (and spaces) in feature names with "_".
    return re.sub(r"[^0-9A-Za-z]+", "_", str(name)).strip("_").lower()


def match_columns(model_names: list[str], columns: list[str], target: str | None, filename: str) -> list[str]:
    """The table's columns for the booster's features, in the model's order.

    A column matches a feature by its exact name, else by the name LightGBM would have stored for it
    (``mean radius`` for ``mean_radius``) when exactly one column does.

    Raises
    ------
    BoosterRefused
        A feature no column matches, naming it and the file.
    """
    exact = set(columns)
    by_norm: dict[str, list[str]] = {}
    for column in columns:
        if column != target:
            by_norm.setdefault(_normalised(column), []).append(column)
    out, missing = [], []
    for name in model_names:
        if name in exact:
            out.append(name)
            continue
        candidates = by_norm.get(_normalised(name), [])
        if len(candidates) == 1:
            out.append(candidates[0])
        else:
            missing.append(name)
    if missing:
        raise BoosterRefused(f"{filename!r} lacks {len(missing)} of the booster's {len(model_names)} features: "
                             f"{', '.join(map(repr, missing[:8]))}{'...' if len(missing) > 8 else ''}.")
    return out
