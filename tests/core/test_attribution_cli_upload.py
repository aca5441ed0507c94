"""``python -m core explain`` and decoding uploaded images."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest

from core.cli import main
from core.errors import InputShapeError
from core.upload.image_upload import load_image
from tests.core.models_support import holdout, load


def test_explain_writes_the_map_the_predicted_class_and_the_target(tmp_path, capsys):
    out = tmp_path / "ig.npz"
    code = main(["explain", "digits", "--method", "integrated_gradients", "--index", "5", "--target", "true",
                 "--out", str(out), "--json", "--quiet"])
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    test = holdout("digits")
    adapter = load("digits", "cnn").adapter
    x = np.asarray(test.x[5:6], dtype=np.float32)
    (entry,) = report["entries"]
    assert report["indices"] == [5] and entry["index"] == 5 and entry["degenerate"] is False
    assert entry["true"] == entry["target"] == int(test.y[5])
    assert entry["predicted"] == int(adapter.predict(x)[0])
    saved = np.load(out)
    assert saved["maps"].shape == (1, 1, 8, 8) and saved["heatmap"].shape == (1, 8, 8)
    assert int(saved["target"][0]) == entry["target"] and int(saved["predicted"][0]) == entry["predicted"]
    np.testing.assert_array_equal(saved["image"], x)
    # The map is the engine's, for the same image and target.
    from core.attribution import explain_images, image_context

    from core.scenarios import load_data

    expected = explain_images(adapter, x, saved["target"], "integrated_gradients",
                              context=image_context(load_data("digits")["train"]))
    np.testing.assert_allclose(saved["maps"], expected.maps, rtol=1e-6)
    gap = entry["extras"]["completeness_gap"]
    assert abs(gap) < 0.02 * abs(entry["extras"]["output_delta"])


def test_explain_a_class_by_name_and_occlusion_on_a_scikit_learn_model(tmp_path, capsys):
    out = tmp_path / "occ.npz"
    assert main(["explain", "digits", "--model", "logreg", "--method", "occlusion", "--index", "0", "--target", "7",
                 "--out", str(out), "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "Occlusion toward 7 (probability)" in printed and str(out) in printed
    saved = np.load(out)
    assert int(saved["target"][0]) == 7 and saved["extra_probability_map"].shape == (1, 7, 7)


@pytest.mark.parametrize("args, message", [
    (["explain", "breast-cancer", "--method", "gradient", "--index", "0"], "needs an image scenario"),
    (["explain", "digits", "--method", "saliency", "--index", "0"], "Unknown attribution method 'saliency'"),
    (["explain", "digits", "--method", "gradient", "--index", "99999"], "out of range"),
    (["explain", "digits", "--method", "gradient", "--index", "3-1"], "runs backwards"),
    (["explain", "digits", "--method", "gradient", "--index", "0-450"], "valid indices are 0 to 449"),
    (["explain", "digits", "--method", "gradient", "--index", "a,3"], "is not an index or a range"),
    (["explain", "digits", "--model", "logreg", "--method", "gradient", "--index", "0"], "cannot run on model 'logreg'"),
    (["explain", "digits", "--method", "gradient", "--index", "0", "--target", "12"], "0..9"),
])
def test_explain_errors_name_what_to_fix(args, message, tmp_path, capsys):
    assert main([*args, "--out", str(tmp_path / "x.npz"), "--quiet"]) == 1
    assert message in capsys.readouterr().err
    assert not (tmp_path / "x.npz").exists()


def test_explain_several_indices_one_map_and_one_entry_each(tmp_path, capsys):
    out = tmp_path / "cam.npz"
    assert main(["explain", "digits", "--method", "grad_cam", "--index", "3,7,9,0-2,7", "--out", str(out), "--json",
                 "--quiet"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["indices"] == [3, 7, 9, 0, 1, 2] and [e["index"] for e in report["entries"]] == report["indices"]
    saved = np.load(out)
    assert saved["maps"].shape == (6, 1, 8, 8) and saved["index"].tolist() == report["indices"]
    assert saved["degenerate"].tolist() == [e["degenerate"] for e in report["entries"]]
    assert report["degenerate_count"] == int(saved["degenerate"].sum())
    # Each map is the one the engine gives for that image alone.
    from core.attribution import explain_images

    test = holdout("digits")
    adapter = load("digits", "cnn").adapter
    alone = explain_images(adapter, np.asarray(test.x[9:10], dtype=np.float32), saved["target"][2:3], "grad_cam")
    np.testing.assert_allclose(saved["maps"][2:3], alone.maps, rtol=1e-5, atol=1e-7)


def test_explain_refuses_an_output_that_is_not_npz(tmp_path, capsys):
    assert main(["explain", "digits", "--method", "gradient", "--index", "0", "--out", str(tmp_path / "m.png")]) == 1
    assert ".npz" in capsys.readouterr().err


def png(array: np.ndarray, mode: str = "L") -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(array.astype(np.uint8), mode=mode).save(buffer, format="PNG")
    return buffer.getvalue()


def test_a_dark_digit_on_white_paper_is_inverted_and_resized():
    paper = np.full((56, 56), 255, dtype=np.uint8)
    paper[10:46, 24:32] = 0  # a dark vertical stroke: a "1"
    up = load_image(png(paper), (1, 8, 8))
    assert up.inverted and up.original_size == (56, 56)
    assert up.x.shape == (1, 8, 8) and up.x.dtype == np.float32
    assert up.x[0, 4, 3:5].mean() > 0.6 and up.x[0, 0, 0] < 0.05  # light stroke on dark, like the datasets
    kept = load_image(png(255 - paper), (1, 8, 8))
    assert not kept.inverted
    np.testing.assert_allclose(kept.x, up.x, atol=0.02)
    assert load_image(png(paper), (1, 8, 8), invert=False).x[0, 0, 0] > 0.95


def test_colour_and_transparent_uploads_fit_the_model_channels():
    rgb = np.zeros((20, 30, 3), dtype=np.uint8)
    rgb[..., 0] = 200
    assert load_image(png(rgb, "RGB"), (3, 12, 12), invert=False).x.shape == (3, 12, 12)
    rgba = np.zeros((16, 16, 4), dtype=np.uint8)  # fully transparent: white paper, inverted to black
    assert load_image(png(rgba, "RGBA"), (1, 8, 8)).x.max() < 0.05


@pytest.mark.parametrize("data, message", [
    (b"", "empty"),
    (b"GIF89a not really", "not an image"),
    (b"%PDF-1.4 hello", "not an image"),
])
def test_files_that_are_not_images_are_refused(data, message):
    with pytest.raises(InputShapeError, match=message):
        load_image(data, (1, 8, 8))


def test_a_decompression_bomb_is_refused_before_decoding():
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("1", (12_000, 12_000)).save(buffer, format="PNG")  # 144 Mpx, ~20 kB on disk
    with pytest.raises(InputShapeError, match="too large|not an image"):
        load_image(buffer.getvalue(), (1, 8, 8))
