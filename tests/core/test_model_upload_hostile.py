"""The hostile corpus through core: each file answered by a clear TrustLensError, nothing run or crashed."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from core.upload import byom
from core.upload.byom import DataSource
from core.upload.data_upload import load_table, load_text_csv
from core.errors import InputShapeError
from core.upload.model_upload import ModelRefusedError, ModelSpecification, inspect_model, load_model_file
from tests.hostile import DATA_CASES, FILES, MODEL_CASES, PICKLE_MARKER

IMAGE_SPEC = ModelSpecification(input_kind="image", channels=1, height=8, width=8, class_names=("a", "b", "c"))


def read(name: str) -> bytes:
    return (FILES / name).read_bytes()


@pytest.fixture(autouse=True)
def _no_marker():
    if os.path.exists(PICKLE_MARKER):
        os.remove(PICKLE_MARKER)
    byom.forget()
    yield
    assert not os.path.exists(PICKLE_MARKER), "a hostile pickle was unpickled"
    byom.forget()


def test_corpus_is_complete():
    names = {p.name for p in FILES.iterdir()}
    assert set(MODEL_CASES) <= names and set(DATA_CASES) <= names


@pytest.mark.parametrize("name", sorted(MODEL_CASES))
def test_hostile_model_files_are_refused_with_a_message(name):
    inspection = inspect_model(read(name), name, allow_pickle=False)
    assert inspection.refused, name
    assert MODEL_CASES[name] in inspection.refused
    assert repr(name) in inspection.refused  # names the file
    with pytest.raises(ModelRefusedError, match="Try:"):  # and says what to try
        load_model_file(read(name), name, IMAGE_SPEC, allow_pickle=False)


@pytest.mark.parametrize("name", ["creates_file.pkl", "creates_file_torch.pt"])
def test_pickles_are_not_run_even_with_the_server_opt_in_until_confirmed(name):
    inspection = inspect_model(read(name), name, allow_pickle=True)
    assert inspection.refused is None and inspection.needs_pickle_confirmation
    with pytest.raises(ModelRefusedError, match="Tick the confirmation"):
        load_model_file(read(name), name, IMAGE_SPEC, allow_pickle=True, confirm_pickle=False)
    with pytest.raises(ModelRefusedError, match="refuses pickle-based"):
        load_model_file(read(name), name, IMAGE_SPEC, allow_pickle=False, confirm_pickle=True)
    with pytest.raises(ModelRefusedError):
        byom.open_upload(read(name), name, DataSource("image_zip", read("three_classes.zip"), "three_classes.zip"),
                         allow_pickle=False, confirm_pickle=True)
    assert not os.path.exists(PICKLE_MARKER)


def test_the_marker_would_appear_if_the_pickle_ran(tmp_path):
    # Guards the guard: the payload really creates the file when unpickled, so the checks above can fail.
    import pickle

    pickle.loads(read("creates_file.pkl"))
    assert os.path.exists(PICKLE_MARKER)
    os.remove(PICKLE_MARKER)


def test_skops_with_untrusted_types_needs_acceptance():
    data = read("untrusted_types.skops")
    inspection = inspect_model(data, "untrusted_types.skops")
    assert inspection.refused is None
    assert inspection.untrusted_types == ("_operator.neg",)
    spec = ModelSpecification(input_kind="tabular", class_names=("0", "1"), outputs="probabilities")
    with pytest.raises(ModelRefusedError, match="_operator.neg"):
        load_model_file(data, "untrusted_types.skops", spec)
    accepted = inspect_model(data, "untrusted_types.skops", trusted_types=("_operator.neg",))
    assert accepted.inferred["n_features"] == 3 and accepted.inferred["input_kind"] == "tabular"
    adapter = load_model_file(data, "untrusted_types.skops", spec, trusted_types=["_operator.neg"])
    proba = adapter.predict_proba(np.random.RandomState(0).rand(5, 3))
    assert proba.shape == (5, 2) and np.allclose(proba.sum(axis=1), 1)


@pytest.mark.parametrize("name", sorted(DATA_CASES))
def test_hostile_data_is_refused_with_a_message(name):
    kind, options, fragment = DATA_CASES[name]
    with pytest.raises(InputShapeError) as caught:
        byom.open_upload(read("ten_outputs.pt") if name == "one_class.zip" else _cnn3(), "cnn.pt",
                         DataSource(kind, read(name), name, **options))
    assert fragment in str(caught.value), str(caught.value)


def test_zip_escape_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(InputShapeError):
        byom.open_upload(_cnn3(), "cnn.pt", DataSource("image_zip", read("escape.zip"), "escape.zip"))
    assert list(tmp_path.iterdir()) == [] and not (tmp_path.parent / "evil.png").exists()


def test_model_raising_in_forward_is_a_message():
    with pytest.raises(InputShapeError, match="always fails in forward") as caught:
        byom.open_upload(read("raises_in_forward.pt"), "raises_in_forward.pt",
                         DataSource("image_zip", read("three_classes.zip"), "three_classes.zip"),
                         {"outputs": "logits"})
    assert "dry run failed" in str(caught.value) and "(1, 1, 8, 8)" in str(caught.value)


def test_output_shape_against_class_names_names_both_shapes():
    with pytest.raises(InputShapeError) as caught:
        byom.open_upload(read("ten_outputs.pt"), "ten_outputs.pt",
                         DataSource("image_zip", read("three_classes.zip"), "three_classes.zip"))
    message = str(caught.value)
    assert "returns 10 scores" in message and "3 class names" in message
    assert "expected output shape (1, 3), received (1, 10)" in message


def test_wrong_image_size_names_the_shapes():
    # A .pt2 program exported for 8x8 inputs, fed 5x5 images: the message names both shapes.
    import io

    import torch

    class Flat(torch.nn.Module):  # a Linear on 64 pixels: any other size fails in forward
        def __init__(self):
            super().__init__()
            self.fc = torch.nn.Linear(64, 3)

        def forward(self, x):
            return self.fc(x.flatten(1))

    buffer = io.BytesIO()
    torch.jit.save(torch.jit.trace(Flat().eval(), torch.rand(1, 1, 8, 8)), buffer)
    with pytest.raises(InputShapeError) as caught:
        byom.open_upload(buffer.getvalue(), "flat.pt", DataSource("image_zip", read("three_classes.zip"), "x.zip"),
                         {"height": 5, "width": 5, "outputs": "logits"})
    assert "(1, 1, 5, 5)" in str(caught.value)


def test_non_utf8_text_is_decoded_with_a_note():
    loaded = load_text_csv(read("non_utf8.csv"), "non_utf8.csv")
    assert loaded.labelled and len(loaded.bundle) == 2
    assert "\ufffd" in loaded.bundle.x[0] and any("not valid UTF-8" in n for n in loaded.notes)


def test_html_text_is_kept_verbatim_for_escaping_later():
    loaded = load_text_csv(read("html_script.csv"), "html_script.csv")
    assert loaded.bundle.x[0].startswith("<script>")  # kept as data; the pages escape it (tests/pages)


@pytest.mark.parametrize("name, target, fragment", [
    ("nan.csv", "target", "missing (NaN) value(s), the first in row 2"),
    ("missing_target.csv", "target", "no target column 'target'"),
    ("empty.csv", "target", "empty (0 bytes)"),
])
def test_bad_tables_name_the_problem(name, target, fragment):
    with pytest.raises(InputShapeError, match=None) as caught:
        load_table(read(name), name, target)
    assert fragment in str(caught.value)


def test_one_class_table_is_accepted_when_the_model_names_its_classes():
    from tests.core.test_model_upload import skops_pipeline

    uploaded = byom.open_upload(skops_pipeline(), "m.skops", DataSource("table", read("one_class.csv"), "one_class.csv"))
    assert uploaded.spec.class_names == ("0", "1")
    assert any("Only one class" in n for n in uploaded.notes)


def _cnn3() -> bytes:
    import io

    import torch

    from tests.hostile.make_corpus import _small_cnn

    buffer = io.BytesIO()
    torch.jit.save(torch.jit.trace(_small_cnn(), torch.rand(1, 1, 8, 8)), buffer)
    return buffer.getvalue()


def test_files_are_small():
    assert sum(p.stat().st_size for p in Path(FILES).iterdir()) < 1_000_000
