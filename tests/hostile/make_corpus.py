"""Write the hostile and broken input corpus into tests/hostile/files/ (committed; rerun to refresh).

    .venv/bin/python -m tests.hostile.make_corpus

Every file is small (the bombs are a few hundred KB compressed): the point is what they claim
or contain, not their size. ``CASES`` (in tests/hostile/__init__.py) says what each file is and
which message the app must answer it with.
"""

from __future__ import annotations

import io
import operator
import os
import pickle
import struct
import zipfile
import zlib

import numpy as np

from tests.hostile import FILES, PICKLE_MARKER


def _png(array: np.ndarray) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(array.astype(np.uint8), "L").save(buffer, "PNG")
    return buffer.getvalue()


def _bomb_png(width: int, height: int) -> bytes:
    """A 1-bit PNG of width x height zeros written by hand (Pillow would need the pixels in memory)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    row = b"\x00" + b"\x00" * ((width + 7) // 8)
    compressor = zlib.compressobj(9)
    body = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", body) + chunk(b"IEND", b"")


class _CreatesFile:
    """Unpickling this calls open(PICKLE_MARKER, 'w'): it creates a file if anything ever unpickles it."""

    def __reduce__(self):  # noqa: D105
        return (open, (PICKLE_MARKER, "w"))


def _small_cnn(n_out: int = 3):
    import torch
    from torch import nn

    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(4, n_out)).eval()


def build() -> dict[str, bytes]:
    import torch
    from torch import nn

    rng = np.random.RandomState(0)
    files: dict[str, bytes] = {}
    noise = rng.bytes(4096)
    files["random_bytes.pt"] = noise
    files["random_bytes.onnx"] = noise
    files["random_bytes.skops"] = noise
    files["empty.pt"] = b""

    buffer = io.BytesIO()
    torch.jit.save(torch.jit.trace(_small_cnn(), torch.rand(1, 1, 8, 8)), buffer)
    files["truncated.pt"] = buffer.getvalue()[: len(buffer.getvalue()) // 2]
    buffer = io.BytesIO()
    torch.onnx.export(_small_cnn(), (torch.rand(1, 1, 8, 8),), buffer, input_names=["x"],
                      dynamic_axes={"x": {0: "n"}}, dynamo=False)
    files["truncated.onnx"] = buffer.getvalue()[: len(buffer.getvalue()) // 2]

    import skops.io as sio
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import FunctionTransformer

    x, y = rng.rand(40, 3), np.arange(40) % 2
    files["truncated.skops"] = sio.dumps(LogisticRegression().fit(x, y))[:300]
    # operator.neg is harmless, but it is outside skops' trusted set: the user must accept it.
    files["untrusted_types.skops"] = sio.dumps(Pipeline([("neg", FunctionTransformer(operator.neg)),
                                                         ("clf", LogisticRegression())]).fit(x, y))

    # Boosters cut short. LightGBM's C++ parser kills the process on this one (core/upload/boosters.py reads it in
    # a child); XGBoost raises.
    import lightgbm as lgb
    import xgboost as xgb

    booster = lgb.train({"objective": "binary", "verbose": -1, "num_threads": 1}, lgb.Dataset(x, y), 3)
    text = booster.model_to_string().encode()
    files["truncated.txt"] = text[: len(text) // 2]  # measured: the parser segfaults (exit -11)
    raw = bytes(xgb.train({"objective": "binary:logistic", "nthread": 1}, xgb.DMatrix(x, y), 3).save_raw("json"))
    files["truncated.json"] = raw[: len(raw) // 2]

    files["creates_file.pkl"] = pickle.dumps(_CreatesFile(), protocol=4)
    buffer = io.BytesIO()
    torch.save({"model": _CreatesFile()}, buffer)
    files["creates_file_torch.pt"] = buffer.getvalue()

    class Raises(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            if bool(x.sum() > -1e30):
                raise RuntimeError("this model always fails in forward")
            return x

    buffer = io.BytesIO()
    torch.jit.save(torch.jit.script(Raises()), buffer)
    files["raises_in_forward.pt"] = buffer.getvalue()
    buffer = io.BytesIO()
    torch.jit.save(torch.jit.trace(_small_cnn(n_out=10), torch.rand(1, 1, 8, 8)), buffer)
    files["ten_outputs.pt"] = buffer.getvalue()  # with the 3-class image ZIP: output / class-name mismatch

    # -- data ------------------------------------------------------------------------------------
    def image_zip(members: dict[str, bytes]) -> bytes:
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
            for name, content in members.items():
                archive.writestr(name, content)
        return out.getvalue()

    digit = _png((rng.rand(8, 8) * 255))
    files["three_classes.zip"] = image_zip({f"images/{c}/{i}.png": _png(rng.rand(8, 8) * 255)
                                            for c in ("a", "b", "c") for i in range(3)})
    files["one_class.zip"] = image_zip({f"only/{i}.png": _png(rng.rand(8, 8) * 255) for i in range(3)})
    files["escape.zip"] = image_zip({"a/1.png": digit, "../evil.png": digit})
    files["escape_nested.zip"] = image_zip({"a/1.png": digit, "a/../../evil.png": digit})
    files["absolute.zip"] = image_zip({"a/1.png": digit, "/etc/evil.png": digit})
    files["zip_bomb.zip"] = image_zip({"a/1.png": digit, "b/bomb.png": b"\0" * (30 * 2**20)})
    files["zip_bomb_many.zip"] = image_zip({f"c{i}/bomb.png": b"\0" * (19 * 2**20) for i in range(11)})
    files["image_bomb.png"] = _bomb_png(9000, 9000)  # 81 megapixels in a few KB
    files["image_bomb.zip"] = image_zip({"a/1.png": digit, "b/bomb.png": files["image_bomb.png"]})
    files["empty.png"] = b""
    files["empty_image.zip"] = image_zip({"a/1.png": digit, "b/empty.png": b""})
    files["not_a_zip.zip"] = noise[:500]

    files["non_utf8.csv"] = "text,label\n\"caf\xe9 cr\xe8me \xff\",a\n\"na\xefve\",b\n".encode("latin-1")
    files["html_script.csv"] = ('text,label\n"<script>alert(\'x\')</script> <b>bold</b> &amp;",a\n'
                                '"<img src=x onerror=alert(1)>",b\n').encode()
    files["nan.csv"] = b"f1,f2,f3,target\n0.1,0.2,0.3,0\n0.4,,0.6,1\n0.7,0.8,0.9,0\n"
    files["missing_target.csv"] = b"f1,f2,f3,label\n0.1,0.2,0.3,0\n0.4,0.5,0.6,1\n"
    files["one_class.csv"] = b"f1,f2,f3,target\n0.1,0.2,0.3,1\n0.4,0.5,0.6,1\n0.7,0.8,0.9,1\n"
    files["empty.csv"] = b""
    return files


def main() -> None:
    FILES.mkdir(parents=True, exist_ok=True)
    for name, content in sorted(build().items()):
        (FILES / name).write_bytes(content)
        print(f"{len(content):>9} {name}")
    if os.path.exists(PICKLE_MARKER):  # writing the corpus must not have run the payload either
        raise SystemExit(f"{PICKLE_MARKER} exists: something unpickled the hostile file")


if __name__ == "__main__":
    main()
