"""A zipped Hugging Face ``save_pretrained`` ViT image classifier as an upload (core/upload/transformers_zip.py,
core/upload/transformers_folder.py, core/adapters/hf_image_adapter.py).

The model is a tiny random ``ViTForImageClassification`` (28 x 28 RGB input, 7 x 7 patches, width 32, 2 layers,
2 heads, the digits "0".."9" as id2label) with a ``ViTImageProcessor``'s ``preprocessor_config.json``, zipped by
``tests.hostile.models.tiny_vit_zip``; the data is the built-in digits' 8 x 8 grey PNGs in class folders
(``digits_zip``), which the model resizes to 28 x 28 and repeats into 3 channels itself.
"""

from __future__ import annotations

import io
import json
import time

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from core.cli import main  # noqa: E402
from core.upload import byom  # noqa: E402
from core.upload.model_upload import (ModelRefusedError, ModelSpecification, detect_format,  # noqa: E402
                                      inspect_model, load_model_file)
from tests.core.test_hf_upload import _own_temp  # noqa: E402,F401 - every extraction in its own folder, checked gone
from tests.hostile.models import (DIGIT_LABELS, TINY_VIT_PROCESSOR, digits_zip, tiny_vit_files,  # noqa: E402
                                  tiny_vit_zip)

TITLE = "Hugging Face classifier (zip of a save_pretrained folder)"
GREY_SPEC = ModelSpecification(input_kind="image", channels=1, height=8, width=8)
RGB_SPEC = ModelSpecification(input_kind="image", channels=3, height=28, width=28)


@pytest.fixture(scope="module")
def vit_zip() -> bytes:
    return tiny_vit_zip()


@pytest.fixture(scope="module")
def images_zip() -> bytes:
    return digits_zip()


@pytest.fixture
def folder(tmp_path):
    """The save_pretrained folder itself, for loading the model with transformers directly."""
    path = tmp_path / "tiny-vit"
    path.mkdir()
    for name, content in tiny_vit_files():
        (path / name).write_bytes(content)
    return path


def reference_model(folder):
    """The folder's model as transformers loads it (eager attention, to return attention maps)."""
    from transformers import AutoModelForImageClassification

    return AutoModelForImageClassification.from_pretrained(folder, local_files_only=True,
                                                           attn_implementation="eager").eval()


def vit_processor():
    """transformers' ViTImageProcessor with the zip's settings (its PIL backend: torchvision is not installed)."""
    settings = {k: v for k, v in TINY_VIT_PROCESSOR.items() if k != "image_processor_type"}
    try:
        from transformers.models.vit.image_processing_pil_vit import ViTImageProcessorPil as Processor
    except ImportError:  # transformers 4: one PIL-based class
        from transformers import ViTImageProcessor as Processor
    return Processor(**settings)


def processed(images: np.ndarray) -> torch.Tensor:
    """The processor's pixel_values for images in [0, 1] of shape (n, C, H, W), fed as RGB uint8 (H, W, 3)
    arrays, as a user's PNGs reach it (grey images repeated into three channels, as the adapter does)."""
    rgb = np.repeat(images, 3, axis=1) if images.shape[1] == 1 else images
    arrays = [np.round(im * 255).astype(np.uint8).transpose(1, 2, 0) for im in rgb]
    return torch.as_tensor(np.asarray(vit_processor()(images=arrays, return_tensors="np")["pixel_values"]))


def refusal(data: bytes, filename: str = "vit.zip", spec: ModelSpecification = GREY_SPEC, **kwargs) -> str:
    """inspect_model's refusal (it never raises); load_model_file must refuse the file too, naming it."""
    inspection = inspect_model(data, filename, **kwargs)
    assert inspection.refused, inspection
    with pytest.raises(ModelRefusedError) as caught:
        load_model_file(data, filename, spec, **kwargs)
    assert str(caught.value).startswith(f"{filename!r}: "), caught.value
    return inspection.refused


def quantised(n: int, shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    """n random images in [0, 1] on the 1/255 grid (what 8-bit PNGs decode to)."""
    return (np.random.RandomState(seed).randint(0, 256, size=(n, *shape)) / 255.0).astype(np.float32)


# -- detection and inspection ------------------------------------------------------------------------------------
def test_a_zipped_vit_is_the_transformers_format_read_as_an_image_classifier(vit_zip):
    assert detect_format(vit_zip, "vit.zip") == "transformers"
    inspection = inspect_model(vit_zip, "vit.zip")
    assert inspection.refused is None and inspection.format == "transformers" and inspection.format_title == TITLE
    assert not inspection.needs_pickle_confirmation
    got = inspection.inferred
    assert got["input_kind"] == "image" and got["outputs"] == "logits"
    assert got["architecture"] == "ViTForImageClassification" and got["model_type"] == "vit"
    assert got["layers"] == 2 and got["hidden_size"] == 32 and got["patch_size"] == 7
    assert got["image_size"] == "28x28" and got["model_channels"] == 3 and got["weights"] == "model.safetensors"
    assert got["class_names"] == list(DIGIT_LABELS) and got["n_classes"] == 10
    assert not {"channels", "height", "width", "mean", "std"} & set(got)  # the data keeps its own size
    assert inspection.notes[0].startswith("ViTForImageClassification (tiny-vit/): 2 layers, 28x28 input in 3 channels; "
                                          "images resized to 28x28, rescaled by 0.00392157 (from 0..255), normalised "
                                          "with mean [0.5, 0.5, 0.5] and std [0.5, 0.5, 0.5]")
    named = inspect_model(tiny_vit_zip(("zero", "one", "two", "three", "four", "five", "six", "seven", "eight",
                                        "nine")), "named.zip")
    assert named.inferred["class_names"][:3] == ["zero", "one", "two"]
    assert "id2label: zero, one, two" in named.notes[1]


# -- loading and predicting ----------------------------------------------------------------------------------------
def test_predictions_equal_the_model_on_its_processors_own_preprocessing(vit_zip, folder):
    from core.adapters.hf_image_adapter import HFImageAdapter

    start = time.perf_counter()
    adapter = load_model_file(vit_zip, "vit.zip", RGB_SPEC)
    print(f"tiny ViT zip loaded in {time.perf_counter() - start:.2f} s")
    assert isinstance(adapter, HFImageAdapter) and adapter.class_names == DIGIT_LABELS
    assert adapter.info.extra["architecture"] == "transformer" and adapter.info.extra["patch_grid"] == [4, 4]
    assert adapter.info.extra["channels"] == "3 channels, as the model takes"
    images = quantised(5, (3, 28, 28))
    proba = adapter.predict_proba(images)
    assert proba.shape == (5, 10)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-12)
    with torch.no_grad():
        expected = torch.softmax(reference_model(folder)(pixel_values=processed(images)).logits, dim=1).numpy()
    np.testing.assert_allclose(proba, expected, atol=1e-4)
    assert proba.std(axis=0).max() > 1e-3  # a random model that still tells images apart


def test_smaller_grey_images_are_resized_and_repeated_as_the_processor_does(folder):
    from core.adapters.hf_image_adapter import HFImageAdapter, HFImageClassifier
    from core.upload.transformers_folder import load_image_pretrained

    model, processing, _ = load_image_pretrained(folder)
    adapter = HFImageAdapter(HFImageClassifier(model, processing), data_channels=1, name="vit",
                             class_names=DIGIT_LABELS)
    assert adapter.info.extra["channels"] == "grey images (1 channel) repeated into the model's 3 channels"
    images = quantised(6, (1, 8, 8), seed=1)
    with torch.no_grad():
        ours = adapter.torch_module().prepare(torch.as_tensor(images))
    theirs = processed(images)
    assert ours.shape == theirs.shape == (6, 3, 28, 28)
    # PIL resizes 8-bit images and rounds each result to an integer (with fixed-point weights): within one grey level
    # (1 / 255 / std 0.5 = 0.008 after normalising), a third of one on average
    levels = (ours - theirs).abs() * 0.5 * 255
    print(f"resized 8x8 -> 28x28: max {float(levels.max()):.3f}, mean {float(levels.mean()):.3f} grey levels from PIL")
    assert float(levels.max()) <= 1.0 + 1e-4 and float(levels.mean()) < 0.4


def test_gradients_reach_the_pixels_and_every_pixel_method_runs(vit_zip):
    from core.attribution import explain_images, supported_methods

    adapter = load_model_file(vit_zip, "vit.zip", GREY_SPEC)
    x = torch.as_tensor(quantised(2, (1, 8, 8), seed=2)).requires_grad_(True)
    adapter.torch_module()(x)[:, 3].sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and float(x.grad.abs().min()) > 0
    methods = supported_methods(adapter)
    for name in ("gradient", "smoothgrad", "integrated_gradients", "occlusion", "attention_rollout"):
        assert methods[name] is None, (name, methods[name])
    assert "ReLU" in methods["guided_backprop"] and "torch.nn.Sequential" in methods["lrp"]
    images = x.detach().numpy()
    target = np.array([3, 7])
    for name in ("gradient", "smoothgrad", "integrated_gradients", "occlusion"):
        maps = explain_images(adapter, images, target, name).maps
        assert maps.shape[0] == 2 and maps.shape[-2:] == (8, 8) and np.isfinite(maps).all(), name
        assert np.abs(maps).max() > 0, name


def test_attention_rollout_equals_a_hand_rollout_of_the_models_attentions(vit_zip, folder):
    from core.attribution import explain_images

    adapter = load_model_file(vit_zip, "vit.zip", GREY_SPEC)
    images = quantised(3, (1, 8, 8), seed=3)
    maps = explain_images(adapter, images, np.zeros(3, dtype=np.int64), "attention_rollout").maps
    with torch.no_grad():
        pixels = adapter.torch_module().prepare(torch.as_tensor(images))
        attentions = reference_model(folder)(pixel_values=pixels, output_attentions=True).attentions
    stacked = np.stack([a.double().numpy() for a in attentions], axis=1)  # (n, layers, heads, 17, 17)
    assert stacked.shape == (3, 2, 2, 17, 17)
    eye = np.eye(17)
    for i in range(3):
        joint = eye
        for layer in stacked[i]:
            mixed = 0.5 * layer.mean(axis=0) + 0.5 * eye
            joint = (mixed / mixed.sum(axis=1, keepdims=True)) @ joint
        patches = joint[0, 1:].reshape(4, 4)  # [CLS]'s row over the 4 x 4 patches
        expected = np.kron(patches, np.ones((2, 2)))  # each 7 x 7 patch of the 28 x 28 input: 2 x 2 of our pixels
        np.testing.assert_allclose(maps[i, 0], expected, atol=1e-6)


# -- the upload: data, randomisation, the CLI -----------------------------------------------------------------------
def test_upload_with_the_digits_zip_and_the_randomisation_units(vit_zip, images_zip):
    from core.trust.sanity import parameter_layers, randomized_adapter

    uploaded = byom.open_upload(vit_zip, "vit.zip", byom.DataSource("image_zip", images_zip, "digits.zip"))
    adapter = uploaded.trained.adapter
    assert uploaded.spec.kind == "image" and uploaded.model_spec.image_shape == (1, 8, 8)
    assert uploaded.model_spec.class_names == DIGIT_LABELS and uploaded.n_samples == 40
    report = uploaded.report()
    assert report["format_title"] == TITLE
    assert {"gradient", "integrated_gradients", "occlusion", "attention_rollout"} <= set(report["methods_offered"])
    assert adapter.info.extra["channels"].startswith("grey images (1 channel) repeated")
    assert adapter.layer_names() == ["cls.0", "cls.1", "cls.2", "logits"]
    assert adapter.activations(uploaded.splits["test"].x[:3], "cls.2").shape == (3, 32)
    module = adapter.torch_module()
    # the blocks' ModuleList, whatever this transformers version names it (4.x: vit.encoder.layer, 5.x: vit.layers)
    blocks = "model.vit.encoder.layer" if hasattr(module.model.vit, "encoder") else "model.vit.layers"
    assert module.layer_groups() == ["model.vit.embeddings", f"{blocks}.0", f"{blocks}.1"]
    assert parameter_layers(module) == ["model.vit.embeddings", f"{blocks}.0", f"{blocks}.1", "model.vit.layernorm",
                                        "model.classifier"]
    x = uploaded.splits["test"].x[:4]
    randomised = randomized_adapter(adapter, [f"{blocks}.1"], seed=0, label="block 2")
    assert type(randomised) is type(adapter) and randomised.fingerprint != adapter.fingerprint
    assert np.abs(randomised.predict_proba(x) - adapter.predict_proba(x)).max() > 1e-3


def test_cli_inspect_model_and_explain_on_a_vit_zip(vit_zip, images_zip, tmp_path, capsys):
    model, data = tmp_path / "vit.zip", tmp_path / "digits.zip"
    model.write_bytes(vit_zip)
    data.write_bytes(images_zip)
    assert main(["inspect-model", str(model), "--data", str(data), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert f"vit.zip + {data}: {TITLE}, 40 samples" in out
    assert "input: image 1x8x8, outputs: logits" in out and "classes (10): 0, 1, 2, 3" in out
    assert "attention_rollout" in out and "integrated_gradients" in out
    assert "ViTForImageClassification (tiny-vit/): 2 layers, 28x28 input in 3 channels" in out
    assert main(["explain", "--upload", str(model), "--data", str(data), "--method", "attention_rollout",
                 "--index", "0", "--json", "--quiet"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["method"] == "attention_rollout"


# -- what is refused, naming the ZIP, the member and the field ---------------------------------------------------
@pytest.mark.parametrize("processor, expected", [
    ({"size": {"height": 32, "width": 32}}, "tiny-vit/preprocessor_config.json: field 'size' is {'height': 32, "
                                            "'width': 32}, but config.json's image_size is 28"),
    ({"size": {"shortest_edge": 24}}, "tiny-vit/preprocessor_config.json: field 'size' is {'shortest_edge': 24}, "
                                      "but config.json's image_size is 28"),
    ({"do_center_crop": True, "crop_size": {"height": 24, "width": 24}, "size": {"shortest_edge": 32}},
     "tiny-vit/preprocessor_config.json: field 'crop_size' is {'height': 24, 'width': 24}, but config.json's "
     "image_size is 28"),
    ({"size": {"longest_edge": 28}}, "tiny-vit/preprocessor_config.json: field 'size' is {'longest_edge': 28}: "
                                     "TrustLens reads"),
    ({"auto_map": {"AutoImageProcessor": "evil.Processor"}},
     "tiny-vit/preprocessor_config.json: asks for remote code ('auto_map')"),
    ({"image_std": [0.5, 0.0, 0.5]}, "tiny-vit/preprocessor_config.json: field 'image_std' is [0.5, 0.0, 0.5]: every "
                                     "value must be positive"),
    ({"image_mean": [0.5, 0.5]}, "tiny-vit/preprocessor_config.json: field 'image_mean' has 2 values for a model of "
                                 "3 channels"),
    ({"padding": "x" * (1 << 20)}, "tiny-vit/preprocessor_config.json: 1,048,"),
])
def test_an_image_processor_that_disagrees_or_asks_for_code_is_refused(processor, expected):
    message = refusal(tiny_vit_zip(processor=processor), "bad.zip")
    assert message.startswith(f"'bad.zip': {expected}"), message


def test_a_processor_that_agrees_by_shortest_edge_or_crop_is_taken(vit_zip):
    spec = ModelSpecification(input_kind="image", channels=1, height=8, width=8)
    images = quantised(2, (1, 8, 8), seed=4)
    fixed = load_model_file(vit_zip, "vit.zip", spec).predict_proba(images)
    by_edge = load_model_file(tiny_vit_zip(processor={"size": {"shortest_edge": 28}}), "edge.zip", spec)
    np.testing.assert_allclose(by_edge.predict_proba(images), fixed, atol=1e-6)  # square images: the same resize
    cropped = tiny_vit_zip(processor={"size": {"shortest_edge": 32}, "do_center_crop": True,
                                      "crop_size": {"height": 28, "width": 28}})
    assert inspect_model(cropped, "crop.zip").refused is None
    module = load_model_file(cropped, "crop.zip", spec).torch_module()
    assert tuple(module.prepare(torch.as_tensor(images)).shape) == (2, 3, 28, 28)


def test_missing_processor_config_or_a_base_model_is_refused():
    message = refusal(tiny_vit_zip(drop=("preprocessor_config.json",)), "noproc.zip")
    assert message.startswith("'noproc.zip': tiny-vit/preprocessor_config.json: missing"), message
    base = tiny_vit_zip(config={"architectures": ["ViTModel"]})
    message = refusal(base, "base.zip")
    assert message.startswith("'base.zip': tiny-vit/config.json: architecture 'ViTModel' is not a "
                              "*ForSequenceClassification model (text), nor a *ForImageClassification model"), message
    # loading it beside image data says the same (it said "a Hugging Face text classifier takes text", wrongly)
    with pytest.raises(ModelRefusedError) as caught:
        load_model_file(base, "base.zip", GREY_SPEC)
    assert str(caught.value).startswith("'base.zip': tiny-vit/config.json: architecture 'ViTModel' is not a "), caught.value
    message = refusal(tiny_vit_zip(config={"image_size": None}), "nosize.zip")
    assert message.startswith("'nosize.zip': tiny-vit/config.json: field 'image_size' is None"), message


def test_pickled_weights_need_the_servers_opt_in_and_the_users_confirmation(vit_zip):
    from safetensors.torch import load

    state = load(dict(tiny_vit_files())["model.safetensors"])
    pickled = io.BytesIO()
    torch.save(state, pickled)
    data = tiny_vit_zip(drop=("model.safetensors",), extra={"tiny-vit/pytorch_model.bin": pickled.getvalue()})
    message = refusal(data, "pickled.zip", allow_pickle=False)
    assert message.startswith("'pickled.zip': its weights are pytorch_model.bin, a pickle")
    assert inspect_model(data, "pickled.zip", allow_pickle=True).needs_pickle_confirmation
    with pytest.raises(ModelRefusedError, match="'pickled.zip': tiny-vit/pytorch_model.bin: is a pickle"):
        load_model_file(data, "pickled.zip", GREY_SPEC, allow_pickle=True, confirm_pickle=False)
    trusted = load_model_file(data, "pickled.zip", GREY_SPEC, allow_pickle=True, confirm_pickle=True)
    images = quantised(2, (1, 8, 8), seed=5)
    np.testing.assert_allclose(trusted.predict_proba(images),
                               load_model_file(vit_zip, "vit.zip", GREY_SPEC).predict_proba(images), atol=1e-6)


def test_a_spec_for_other_input_is_refused(vit_zip):
    with pytest.raises(ModelRefusedError, match="'vit.zip': a Hugging Face image classifier takes images, not text"):
        load_model_file(vit_zip, "vit.zip", ModelSpecification(input_kind="text"))
    with pytest.raises(ModelRefusedError, match="the model takes 3-channel images, and the data has 4 channels"):
        load_model_file(vit_zip, "vit.zip", ModelSpecification(input_kind="image", channels=4, height=8, width=8))
