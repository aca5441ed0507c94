"""The hostile and broken input corpus (files in tests/hostile/files/, written by make_corpus.py).

``MODEL_CASES`` and ``DATA_CASES`` pair each file with a fragment of the message TrustLens must
answer it with; tests/core/test_model_upload_hostile.py runs them through core and
tests/pages/test_upload.py through the upload page and every page.
"""

from pathlib import Path

FILES = Path(__file__).resolve().parent / "files"
# Unpickling creates_file.pkl / creates_file_torch.pt would create this file; tests check it never appears.
PICKLE_MARKER = "/tmp/trustlens-hostile-pickle-ran.txt"

# model file -> fragment of the refusal message (inspect_model / the upload page)
MODEL_CASES = {
    "random_bytes.pt": "not a model TrustLens recognises",
    "random_bytes.onnx": "could not be read",
    "random_bytes.skops": "not a model TrustLens recognises",
    "empty.pt": "the file is empty",
    "truncated.pt": "truncated or corrupt",
    "truncated.onnx": "could not be read",
    "truncated.skops": "truncated or corrupt",
    "truncated.txt": "lightgbm aborted while parsing it",
    "truncated.json": "XGBoost booster (.json / .ubj) but could not be read",
    "creates_file.pkl": "refuses pickle-based files",
    "creates_file_torch.pt": "refuses pickle-based files",
}

# (data file, DataSource kind, options) -> message fragment, with a valid 3-output TorchScript CNN
DATA_CASES = {
    "escape.zip": ("image_zip", {}, "escapes the archive"),
    "escape_nested.zip": ("image_zip", {}, "escapes the archive"),
    "absolute.zip": ("image_zip", {}, "escapes the archive"),
    "zip_bomb.zip": ("image_zip", {}, "ZIP bomb"),
    "zip_bomb_many.zip": ("image_zip", {}, "ZIP bomb"),
    "image_bomb.zip": ("image_zip", {}, "too large to decode safely"),
    "image_bomb.png": ("image", {}, "too large to decode safely"),
    "empty.png": ("image", {}, "empty (0 bytes)"),
    "empty_image.zip": ("image_zip", {}, "empty"),
    "not_a_zip.zip": ("image_zip", {}, "not a readable ZIP"),
    "one_class.zip": ("image_zip", {}, "one class only"),
}
