"""Uncertainty benchmark (issue 7, item 6; a benchmark, not a test).

Measured side by side in one process, each the median of ``--repeats`` runs after one warm-up:

- ``ensemble_s``: scoring the MNIST test set with K deep-ensemble members as the page does it,
  ``Source.probabilities`` (every member's ``predict_proba`` in batches, float64 renormalised rows,
  stacked), into a fresh empty ArtifactStore each run (so nothing is a cache hit; the store write
  is included). ``ensemble_floor_s``: the same K members' bare forward passes over the same
  batches (``module(x)`` under ``torch.inference_mode``, nothing else).
- ``mc_s``: T MC dropout passes (``Source.probabilities`` of the ``mc_dropout`` source, fresh
  store; masks keyed by seed, pass and sample), against ``mc_floor_s``: T bare forward passes of
  the dropout-on copy over the same batches with torch's own dropout (outside a keyed draw the copy's
  layers call ``F.dropout``), and ``mc_eval_floor_s``: T forward passes of the model with no dropout
  at all (the floor of the forward passes themselves).
- ``train_digits_s``: training 5 digits CNN members from scratch (fresh store), the way the page
  trains them (together, one vmapped model; see ``core.uncertainty.members.trains_jointly``), against
  ``train_one_digits_s``: one member with the scenario's own training loop (5x that is what
  training them one after the other would cost). Target: under 60 s.

- ``upload_mc_s`` (``--upload``): the scenario's CNN saved with ``torch.jit.script`` and uploaded
  with a ZIP of the scored test images, T MC dropout passes over the upload's test split
  (``core.uncertainty.upload``, fresh store), against ``upload_mc_floor_s``: T bare forward passes
  of the same dropout-on TorchScript copy (normalisation wrapper included) over the same batches.

Ratios: ``ensemble_s / ensemble_floor_s``, ``mc_s / mc_floor_s`` and ``upload_mc_s / upload_mc_floor_s``
(target within 1.3x).
Prints a table, then one JSON line. Needs MNIST (``TRUSTLENS_DATA_DIR``); the MNIST members are
trained on first use (cached in the default store, not timed). Run from anywhere:
``TRUSTLENS_DATA_DIR=../shared/data python bench/uncertainty.py``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.calibration import timed  # noqa: E402

TARGET_RATIO = 1.3
TARGET_TRAIN_S = 60.0


def forward_floor(module, to_tensor, x, batch_size: int, passes: int) -> None:
    import torch

    with torch.inference_mode():
        for start in range(0, len(x), batch_size):
            inputs = to_tensor(x[start:start + batch_size])
            for _ in range(passes):
                module(inputs)


def uploaded_mc(scenario: str, test, passes: int):
    """(MC dropout source, test split) of the scenario's CNN uploaded as TorchScript with a ZIP of ``test``'s images."""
    import io
    import zipfile

    import numpy as np
    import torch
    from PIL import Image

    from core import scenarios

    from core.upload import byom
    from core.uncertainty.upload import upload_source

    module = scenarios.load_model(scenario, "cnn").adapter.torch_module().cpu().eval()
    model = io.BytesIO()
    torch.jit.save(torch.jit.script(module), model)
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as out:
        for i, (image, label) in enumerate(zip(test.x, test.y)):
            png = io.BytesIO()
            Image.fromarray(np.round(image[0] * 255).astype(np.uint8), "L").save(png, "PNG")
            out.writestr(f"test/{label}/{i}.png", png.getvalue())
    uploaded = byom.open_upload(model.getvalue(), "cnn.pt", byom.DataSource("image_zip", archive.getvalue(), "test.zip"))
    upload_test = uploaded.splits["test"]
    upload_test.fingerprint  # noqa: B018 - hashed once, as above
    return upload_source(uploaded, "mc_dropout", passes), upload_test


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--members", type=int, default=5, help="K (default 5)")
    parser.add_argument("--mc-samples", type=int, default=30, help="T (default 30)")
    parser.add_argument("--n", type=int, default=10_000, help="MNIST test images (default all 10,000)")
    parser.add_argument("--batch-size", type=int, default=128, help="inputs per forward pass (default 128)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs after one warm-up (default 3)")
    parser.add_argument("--skip-training", action="store_true", help="do not time the digits members' training")
    parser.add_argument("--skip-ensemble", action="store_true", help="time MC dropout only (no K members to train)")
    parser.add_argument("--scenario", default="mnist", help="image scenario whose test split is scored (default mnist)")
    parser.add_argument("--upload", action="store_true", help="also time MC dropout on the CNN uploaded as TorchScript")
    args = parser.parse_args(argv)

    from core import scenarios
    from core.store import ArtifactStore
    from core.uncertainty import members as member_lib
    from core.uncertainty.sources import load_source

    test = scenarios.load_data(args.scenario)["test"][: args.n]
    test.fingerprint  # noqa: B018 - hashed once here, as the page's bundles are
    bs = args.batch_size
    mc = load_source(args.scenario, "cnn", None, "mc_dropout", args.mc_samples)

    def fresh() -> ArtifactStore:
        return ArtifactStore(tempfile.mkdtemp(prefix="bench-uncertainty-"))

    rows = []
    result: dict = {"scenario": args.scenario, "n": len(test), "batch_size": bs}
    if not args.skip_ensemble:
        ensemble = load_source(args.scenario, "cnn", None, "deep", args.members)
        ens_s, _ = timed(lambda: ensemble.probabilities(test, batch_size=bs, store=fresh()), args.repeats)
        ens_floor, _ = timed(lambda: [forward_floor(a.torch_module(), a.to_tensor, test.x, bs, 1)
                                      for a in ensemble.adapters], args.repeats)
        rows.append(("ensemble", f"K={args.members}", ens_s, ens_floor))
        result.update({"ensemble_s": round(ens_s, 3), "ensemble_floor_s": round(ens_floor, 3),
                       "ensemble_ratio": round(ens_s / ens_floor, 3)})
    module, to_tensor, _outputs = mc._stochastic
    mc_s, _ = timed(lambda: mc.probabilities(test, batch_size=bs, store=fresh()), args.repeats)
    mc_floor, _ = timed(lambda: forward_floor(module, to_tensor, test.x, bs, args.mc_samples), args.repeats)
    eval_module = mc.adapters[0].torch_module()  # the shared model, in evaluation mode: dropout is the identity
    mc_eval_floor, _ = timed(lambda: forward_floor(eval_module, to_tensor, test.x, bs, args.mc_samples), args.repeats)
    rows.append(("MC dropout", f"T={args.mc_samples}", mc_s, mc_floor))
    rows.append(("  vs eval", f"T={args.mc_samples}", mc_s, mc_eval_floor))

    result.update({"mc_s": round(mc_s, 3), "mc_floor_s": round(mc_floor, 3), "mc_ratio": round(mc_s / mc_floor, 3),
                   "mc_eval_floor_s": round(mc_eval_floor, 3), "mc_eval_ratio": round(mc_s / mc_eval_floor, 3)})
    if args.upload:
        source, upload_test = uploaded_mc(args.scenario, test, args.mc_samples)
        up_s, _ = timed(lambda: source.probabilities(upload_test, batch_size=bs, store=fresh()), args.repeats)
        up_floor, _ = timed(lambda: forward_floor(source._module, source.adapter.to_tensor, upload_test.x, bs,
                                                  args.mc_samples), args.repeats)
        rows.append(("upload MC", f"T={args.mc_samples}", up_s, up_floor))
        result.update({"upload_n": len(upload_test), "upload_mc_s": round(up_s, 3),
                       "upload_mc_floor_s": round(up_floor, 3), "upload_mc_ratio": round(up_s / up_floor, 3)})
    print(f"{'what':<12} {'size':<6} {'ours s':>8} {'floor s':>8} {'ratio':>6}")
    for name, size, ours, floor in rows:
        print(f"{name:<12} {size:<6} {ours:8.3f} {floor:8.3f} {ours / floor:6.2f}")
    if not args.skip_training:
        started = time.perf_counter()
        member_lib.forget_members()
        member_lib.ensemble_members("digits", "cnn", None, "deep", 5, store=fresh())
        train_s = time.perf_counter() - started
        spec = scenarios.get_spec("digits")
        started = time.perf_counter()
        scenarios._fit(spec, spec.model("cnn"), scenarios.load_data("digits")["train"], None)
        one_s = time.perf_counter() - started
        print(f"training 5 digits CNN members together: {train_s:.1f} s (target < {TARGET_TRAIN_S:.0f} s); "
              f"one member alone: {one_s:.1f} s (5 one after the other: ~{5 * one_s:.0f} s)")
        result.update({"train_digits_s": round(train_s, 2), "train_one_digits_s": round(one_s, 2),
                       "train_speedup_vs_sequential": round(5 * one_s / train_s, 2)})
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
