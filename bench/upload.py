"""Bring-your-own-model benchmark (a benchmark, not a test): what does an uploaded model cost?

Measured side by side in one process, each the median of ``--repeats`` runs after one warm-up:

- Forward passes of the built-in digits CNN on ``--n`` images, batch 64, through
  ``predict_proba``: the native ``TorchAdapter`` over the ``nn.Module`` (the floor), and the same
  weights uploaded as TorchScript, as a torch.export program and as ONNX. The ONNX adapter is also
  compared with calling ``onnxruntime.InferenceSession.run`` on the same batches directly (the
  peer library, with the softmax done in numpy as the adapter does).
- Integrated Gradients (32 steps) on 8 images: native vs the TorchScript upload.
- A skops pipeline (scaler + logistic regression) on ``--rows`` table rows: the adapter's
  ``predict_proba`` vs calling the pipeline's ``predict_proba`` directly.
- Opening an upload (inspect, load, dry run, predict every sample) of the CNN + a ZIP of 40 PNGs
  per format, with the registry cleared each time; and refusing the hostile corpus' ZIP bombs,
  image bomb and pickle (time to the error message).

Prints a table, then one JSON line of ratios. Run: ``python bench/upload.py`` (trains the digits
CNN on first use, then loads it from the cache).
"""

from __future__ import annotations

import argparse
import io
import json
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.calibration import timed as calibration_timed  # noqa: E402


def timed(fn: Callable[[], object], repeats: int) -> float:
    return calibration_timed(fn, repeats)[0]  # bench/calibration.py's warm-up + median


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000, help="images per forward-pass timing (default 2000)")
    parser.add_argument("--rows", type=int, default=20000, help="table rows for the skops timing (default 20000)")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    import torch

    from core.upload import byom
    from core.adapters.torch_adapter import TorchAdapter
    from core.attribution import explain_images
    from core.upload.byom import DataSource
    from core.errors import TrustLensError
    from core.upload.model_upload import ModelSpecification, load_model_file
    from core.store import ArtifactStore
    from tests.hostile import FILES, models

    module = models.digits_module().cpu().eval()
    classes = tuple(str(i) for i in range(10))
    spec = ModelSpecification(input_kind="image", channels=1, height=8, width=8, class_names=classes)
    x = np.random.RandomState(0).rand(args.n, 1, 8, 8).astype(np.float32)
    native = TorchAdapter(module, name="native", class_names=classes, input_kind="image", device="cpu")
    files = {"torchscript": models.digits_torchscript(), "onnx": models.digits_onnx()}
    program = torch.export.export(module, (torch.rand(2, 1, 8, 8),), dynamic_shapes=({0: torch.export.Dim("batch")},))
    buffer = io.BytesIO()
    torch.export.save(program, buffer)
    files["torch_export"] = buffer.getvalue()
    adapters = {fmt: load_model_file(data, f"m.{fmt}", spec) for fmt, data in files.items()}

    rows: list[tuple[str, float]] = []
    floor = timed(lambda: native.predict_proba(x, batch_size=64), args.repeats)
    rows.append(("forward: native nn.Module (floor)", floor))
    forward = {fmt: timed(lambda a=a: a.predict_proba(x, batch_size=64), args.repeats) for fmt, a in adapters.items()}
    for fmt, seconds in forward.items():
        rows.append((f"forward: uploaded {fmt}", seconds))
    session = adapters["onnx"]._session

    def onnx_direct() -> np.ndarray:
        out = []
        for start in range(0, len(x), 64):
            logits = session.run(None, {"x": x[start:start + 64]})[0].astype(np.float64)
            e = np.exp(logits - logits.max(axis=1, keepdims=True))
            out.append(e / e.sum(axis=1, keepdims=True))
        return np.concatenate(out)

    onnx_peer = timed(onnx_direct, args.repeats)
    rows.append(("forward: onnxruntime session.run direct (peer)", onnx_peer))
    assert np.allclose(onnx_direct(), adapters["onnx"].predict_proba(x), atol=1e-6)

    store = ArtifactStore(Path(__import__("tempfile").mkdtemp()) / "cache")  # IG uncached each time
    images, target = x[:8], np.arange(8) % 10
    def ig(adapter) -> None:
        store.clear()  # every repeat computes (the store would return the first result)
        explain_images(adapter, images, target, "integrated_gradients", store=store, batch_size=256)

    ig_native = timed(lambda: ig(native), args.repeats)
    ig_script = timed(lambda: ig(adapters["torchscript"]), args.repeats)
    rows.append(("integrated gradients: native", ig_native))
    rows.append(("integrated gradients: uploaded torchscript", ig_script))

    import skops.io as sio

    model_bytes, csv = models.breast_cancer_skops()
    pipeline = sio.loads(model_bytes)
    tab_spec = ModelSpecification(input_kind="tabular", class_names=("0", "1"))
    tab = load_model_file(model_bytes, "m.skops", tab_spec)
    table = np.random.RandomState(1).rand(args.rows, pipeline.n_features_in_).astype(np.float32) * 10
    import pandas as pd
    import warnings

    frame = pd.DataFrame(table, columns=pipeline.feature_names_in_)
    sk_direct = timed(lambda: pipeline.predict_proba(frame), args.repeats)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the adapter feeds arrays: "X does not have valid feature names"
        sk_ours = timed(lambda: tab.predict_proba(table), args.repeats)
    rows.append(("skops pipeline: predict_proba direct (peer)", sk_direct))
    rows.append(("skops pipeline: uploaded adapter", sk_ours))

    data = models.digits_zip()
    opened = {}
    for fmt, blob in files.items():
        def open_once(blob=blob, fmt=fmt):
            byom.forget()
            return byom.open_upload(blob, f"m.{fmt}", DataSource("image_zip", data, "digits.zip"))
        opened[fmt] = timed(open_once, args.repeats)
        rows.append((f"open upload (inspect, load, dry run, predict 40): {fmt}", opened[fmt]))

    def refuse(name: str, kind: str) -> None:
        try:
            byom.open_upload(files["torchscript"], "m.pt", DataSource(kind, (FILES / name).read_bytes(), name))
        except TrustLensError:
            return
        raise AssertionError(f"{name} was accepted")

    for name, kind in (("zip_bomb.zip", "image_zip"), ("zip_bomb_many.zip", "image_zip"), ("image_bomb.png", "image")):
        rows.append((f"refuse {name}", timed(lambda n=name, k=kind: (byom.forget(), refuse(n, k)), args.repeats)))
    from core.upload.model_upload import inspect_model

    rows.append(("refuse creates_file.pkl (inspect)",
                 timed(lambda: inspect_model((FILES / "creates_file.pkl").read_bytes(), "x.pkl"), args.repeats)))

    width = max(len(name) for name, _ in rows)
    print(f"{'step':<{width}}  {'median s':>10}")
    for name, seconds in rows:
        print(f"{name:<{width}}  {seconds:>10.4f}")
    ratios = {f"forward_{fmt}_vs_native": round(s / floor, 3) for fmt, s in forward.items()}
    ratios["forward_onnx_adapter_vs_onnxruntime"] = round(forward["onnx"] / onnx_peer, 3)
    ratios["ig_torchscript_vs_native"] = round(ig_script / ig_native, 3)
    ratios["skops_adapter_vs_direct"] = round(sk_ours / sk_direct, 3)
    ratios.update({f"open_{fmt}_s": round(s, 3) for fmt, s in opened.items()})
    print(json.dumps({"n_images": args.n, "rows": args.rows, "repeats": args.repeats, **ratios}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
