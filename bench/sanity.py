"""Trust-check benchmark (issue 10; a benchmark, not a test).

For one MNIST test image and the trained MNIST CNN, in one run:

- the full cascading randomisation test (every layer, 4 methods: gradient, SmoothGrad (50),
  Guided Backprop, Integrated Gradients (50)) against its floor: the same forward+backward and
  forward passes done as one well-sized batch stream on the original model (5 stages x the
  methods' passes);
- a 100-step deletion + insertion curve (most and least relevant first, 3 random orders) against
  its floor: the same number of forward passes in one batch stream.

Targets: within 1.5x of the floor; one deletion curve well under a second. Prints a table and one
JSON line. Run: ``TRUSTLENS_DATA_DIR=../shared/data python bench/sanity.py``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.calibration import timed  # noqa: E402

METHODS = ("gradient", "smoothgrad", "guided_backprop", "integrated_gradients")
PASSES = {"gradient": (1, 0), "smoothgrad": (50, 0), "guided_backprop": (1, 0), "integrated_gradients": (50, 2)}


def median_time(fn, repeats: int) -> float:
    return timed(fn, repeats)[0]  # bench/calibration.py's warm-up + median


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--index", type=int, default=0, help="MNIST test image")
    parser.add_argument("--batch-size", type=int, default=256)
    args = parser.parse_args(argv)

    import torch

    from core import scenarios
    from core.attribution import image_context
    from core.trust.sanity import faithfulness_curves, parameter_layers, randomization_test
    from core.store import ArtifactStore

    adapter = scenarios.load_model("mnist", "cnn").adapter
    splits = scenarios.load_data("mnist")
    context = image_context(splits["train"])
    x = np.asarray(splits["test"].x[args.index:args.index + 1], dtype=np.float32)
    target = adapter.predict(x)
    module = adapter.torch_module()
    stages = 1 + len(parameter_layers(module))
    xt = torch.as_tensor(x).to(adapter.device)
    tt = torch.as_tensor(target).to(adapter.device)

    def floor(fb_rows: int, f_rows: int) -> None:
        """fb_rows input gradients and f_rows forward passes of the image, ``batch_size`` rows per pass."""
        for start in range(0, fb_rows, args.batch_size):
            m = min(args.batch_size, fb_rows - start)
            inputs = xt.expand(m, *xt.shape[1:]).clone().requires_grad_(True)
            scores = module(inputs).gather(1, tt.expand(m)[:, None]).sum()
            torch.autograd.grad(scores, inputs)
        with torch.inference_mode():
            for start in range(0, f_rows, args.batch_size):
                module(xt.expand(min(args.batch_size, f_rows - start), *xt.shape[1:]))

    fb = stages * sum(PASSES[m][0] for m in METHODS)
    fwd = stages * sum(PASSES[m][1] for m in METHODS)

    def cascade() -> None:
        # A fresh store per call: the timed work is the computation, not a cache hit.
        with tempfile.TemporaryDirectory() as folder:
            randomization_test(adapter, x, target, {m: None for m in METHODS}, context=context,
                               batch_size=args.batch_size, store=ArtifactStore(folder))

    ours_cascade = median_time(cascade, args.repeats)
    floor_cascade = median_time(lambda: floor(fb, fwd), args.repeats)

    heat = np.random.default_rng(0).normal(size=(1, 28, 28))
    steps, orders = 100, 2 + 3
    deletion_rows = (steps + 1) * 2 * orders
    ours_deletion = median_time(lambda: faithfulness_curves(adapter, x, target, heat, steps=steps, random_orders=3,
                                                            context=context, batch_size=args.batch_size), args.repeats)
    floor_deletion = median_time(lambda: floor(0, deletion_rows), args.repeats)

    rows = [
        ("cascading randomisation (5 stages x 4 methods)", f"{fb} fb + {fwd} f", ours_cascade, floor_cascade),
        ("deletion + insertion, 100 steps, 3 random orders", f"{deletion_rows} f", ours_deletion, floor_deletion),
    ]
    print(f"device {adapter.device}, torch {torch.__version__}, {torch.get_num_threads()} threads, MNIST test image {args.index}")
    print(f"{'check':<50} {'passes':>16} {'ours s':>8} {'floor s':>8} {'ratio':>6}")
    for name, passes, ours, base in rows:
        print(f"{name:<50} {passes:>16} {ours:8.3f} {base:8.3f} {ours / base:6.2f}")
    met = all(ours / base <= 1.5 for _n, _p, ours, base in rows) and ours_deletion < 1.0
    print("targets met" if met else "targets missed (ratio <= 1.5, deletion curve < 1 s)")
    print(json.dumps({"bench": "sanity", "device": adapter.device, "results": [
        {"check": n, "passes": p, "ours_s": round(o, 4), "floor_s": round(b, 4), "ratio": round(o / b, 3)}
        for n, p, o, b in rows], "targets_met": met}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
