"""AppTest of the upload flow ('Your model'): upload -> dry run -> sidebar scenario -> every page; the hostile corpus."""

from __future__ import annotations

import json
import os
import re

import pytest
from streamlit.testing.v1 import AppTest

from core.upload import byom
from tests.conftest import ROOT
from tests.pages.helpers import open_app, sidebar_state
from tests.hostile import DATA_CASES, FILES, MODEL_CASES, PICKLE_MARKER
from tests.hostile import models

# Every page in app.py's navigation (so a page added later is covered without editing this file).
PAGES = [p for p in re.findall(r'st\.Page\("([^"]+)"', (ROOT / "app.py").read_text()) if p != "pages/upload.py"]
# Pages that still assume a built-in scenario (they call core.scenarios directly): reported to their owners.
KNOWN_BUILT_IN_ONLY: set[str] = set()


@pytest.fixture(scope="module")
def digits_files():
    return models.digits_torchscript(), models.digits_zip()


@pytest.fixture(autouse=True)
def _clean():
    if os.path.exists(PICKLE_MARKER):
        os.remove(PICKLE_MARKER)
    yield
    assert not os.path.exists(PICKLE_MARKER)


def open_upload_page() -> AppTest:
    return open_app("pages/upload.py", title="Your model")


def upload(at: AppTest, key: str, name: str, data: bytes) -> AppTest:
    at.file_uploader(key=key).set_value((name, data, "application/octet-stream")).run()
    assert not at.exception, at.exception
    return at


def errors(at: AppTest) -> str:
    return "\n".join(e.value for e in at.error)


def add(at: AppTest) -> AppTest:
    at.button(key="up_go").click().run()
    assert not at.exception, at.exception
    return at


def test_torchscript_cnn_with_a_zip_becomes_the_sidebar_scenario_and_every_page_works(digits_files):
    model, data = digits_files
    at = open_upload_page()
    upload(at, "up_model", "digits_cnn.pt", model)
    detected = at.dataframe[0].value
    assert "TorchScript archive" in detected["detected"].tolist()
    upload(at, "up_data", "digits.zip", data)
    add(at)
    assert not at.error, errors(at)
    name = at.session_state["tl_scenario"]
    assert name.startswith("upload-")
    assert "Your model: digits_cnn.pt + digits.zip" in at.selectbox(key="tl_scenario").options  # shown by title
    assert "Added" in at.success[0].value and "digits.zip" in at.success[0].value
    uploaded = byom.get(name)
    assert uploaded.spec.class_names == tuple(str(i) for i in range(10))
    # the uploaded copy of the built-in CNN classifies the PNG round trip of its test images as well
    assert uploaded.trained.metrics["test_accuracy"] >= 0.9

    at.switch_page("pages/images.py").run()
    assert not at.error, errors(at)
    grid = json.loads(at.get("plotly_chart")[0].proto.spec)
    titles = [a["text"] for a in grid["layout"]["annotations"]]
    assert "Integrated Gradients" in titles and "Gradient" in titles  # gradient methods offered for TorchScript


def test_onnx_model_offers_occlusion_and_says_why_not_gradients(digits_files):
    _, data = digits_files
    at = open_upload_page()
    upload(at, "up_model", "digits.onnx", models.digits_onnx())
    assert any("computes no gradients" in c.value for c in at.caption)
    upload(at, "up_data", "digits.zip", data)
    add(at)
    assert not at.error, errors(at)
    at.switch_page("pages/images.py").run()
    assert not at.exception and not at.error, errors(at)
    offered = at.multiselect(key="img_methods").options  # shown by title
    assert "Occlusion" in offered and not {"Gradient", "Integrated Gradients", "SmoothGrad"} & set(offered)
    assert any("onnxruntime" in c.value for c in at.caption)
    at.switch_page("pages/calibration.py").run()
    assert not at.exception and not at.error, errors(at)


@pytest.mark.slow  # 2.2 s
def test_skops_pipeline_with_a_csv_table():
    model, csv = models.breast_cancer_skops()
    at = open_upload_page()
    upload(at, "up_model", "cancer.skops", model)
    assert at.radio(key="up_data_kind").value == "table"
    upload(at, "up_data", "cancer.csv", csv)
    add(at)
    assert not at.error, errors(at)
    name = at.session_state["tl_scenario"]
    assert byom.get(name).trained.metrics["test_accuracy"] > 0.9
    at.switch_page("pages/shapley.py").run()
    assert not at.exception and not at.error, errors(at)


def test_zipped_hugging_face_classifier_with_a_csv_of_texts():
    at = open_upload_page()
    upload(at, "up_model", "tiny-bert.zip", models.tiny_bert_zip())
    detected = dict(zip(*at.dataframe[0].value.to_dict("list").values()))
    assert detected["format"] == "Hugging Face classifier (zip of a save_pretrained folder)"
    assert detected["architecture"] == "BertForSequenceClassification" and detected["layers"] == "2"
    assert detected["max_tokens"] == "128" and at.radio(key="up_data_kind").value == "text_csv"
    upload(at, "up_data", "reviews.csv", models.TINY_BERT_TEXTS)
    assert at.text_input(key="up_classes").value == "neg, pos"  # id2label
    add(at)
    assert not at.error, errors(at)
    uploaded = byom.get(at.session_state["tl_scenario"])
    assert uploaded.inspection.format == "transformers" and uploaded.spec.class_names == ("neg", "pos")


def test_a_zipped_hugging_face_classifier_asking_for_remote_code_is_refused_on_the_page():
    at = open_upload_page()
    upload(at, "up_model", "remote.zip", models.tiny_bert_zip(config={"auto_map": {"AutoModel": "evil.Model"}}))
    assert "'remote.zip': tiny-bert/config.json: asks for remote code ('auto_map')" in errors(at)
    assert not at.button


def test_uploads_stay_in_their_session(digits_files):
    model, data = digits_files
    first = open_upload_page()
    upload(first, "up_model", "digits_cnn.pt", model)
    upload(first, "up_data", "digits.zip", data)
    add(first)
    name = first.session_state["tl_scenario"]
    other = open_app()
    assert not any(o.startswith("Your model") for o in other.selectbox(key="tl_scenario").options)
    # even a session that knows the name cannot select it
    other = open_app(state=sidebar_state(name))
    assert other.session_state["tl_scenario"] == "digits"


@pytest.mark.parametrize("name", sorted(MODEL_CASES))
def test_hostile_model_files_are_refused_on_the_page(name):
    at = open_upload_page()
    upload(at, "up_model", name, (FILES / name).read_bytes())
    assert MODEL_CASES[name] in errors(at)
    assert not at.button  # no way forward from a refused file


def test_untrusted_skops_types_must_be_accepted():
    at = open_upload_page()
    upload(at, "up_model", "untrusted_types.skops", (FILES / "untrusted_types.skops").read_bytes())
    assert "_operator.neg" in at.warning[0].value
    assert not at.button
    at.checkbox(key="up_trust").check().run()
    assert at.file_uploader(key="up_data")  # accepted: the flow goes on to the data
    assert at.radio(key="up_data_kind").value == "table"  # and the opened pipeline says it takes a table
    upload(at, "up_data", "rows.csv", b"a,b,c,target\n0.1,0.2,0.3,0\n0.4,0.5,0.6,1\n0.7,0.8,0.9,1\n")
    add(at)
    assert not at.error, errors(at)
    assert byom.get(at.session_state["tl_scenario"]).spec.class_names == ("0", "1")


@pytest.mark.parametrize("name", sorted(DATA_CASES))
def test_hostile_data_is_refused_on_the_page(name, digits_files):
    kind, _options, fragment = DATA_CASES[name]
    model = (FILES / "ten_outputs.pt").read_bytes() if name == "one_class.zip" else digits_files[0]
    at = open_upload_page()
    upload(at, "up_model", "model.pt", model)
    at.radio(key="up_data_kind").set_value(kind).run()
    upload(at, "up_data", name, (FILES / name).read_bytes())
    add(at)
    assert fragment in errors(at), errors(at)
    assert not at.session_state["tl_scenario"].startswith("upload-")


@pytest.mark.parametrize("model_name, fragment", [("raises_in_forward.pt", "always fails in forward"),
                                                  ("ten_outputs.pt", "returns 10 scores")])
def test_broken_models_fail_the_dry_run_with_a_message(model_name, fragment):
    at = open_upload_page()
    upload(at, "up_model", model_name, (FILES / model_name).read_bytes())
    upload(at, "up_data", "three_classes.zip", (FILES / "three_classes.zip").read_bytes())
    at.selectbox(key="up_outputs").set_value("logits").run()
    add(at)
    assert fragment in errors(at)


def test_html_and_non_utf8_text_is_shown_escaped():
    csv = ('text,label\n"<script>alert(1)</script> good great <b>film</b>",pos\n'
           '"bad awful \xff plot",neg\n').encode("latin-1")
    at = open_upload_page()
    upload(at, "up_model", "text.skops", models.text_skops())
    assert at.radio(key="up_data_kind").value == "text_csv"
    upload(at, "up_data", "reviews.csv", csv)
    add(at)
    assert not at.error, errors(at)
    at.switch_page("pages/text.py").run()
    assert not at.exception, at.exception
    shown = [m.value for m in at.markdown] + [h.proto.body for h in at.get("html")]
    assert not any("<script>" in s for s in shown)
    assert any("&lt;script&gt;" in s for s in shown)


# -- every page over each kind of upload -------------------------------------------------------------
@pytest.fixture(scope="module")
def uploads(digits_files):
    """One registered upload per supported format / data kind, made once for the page sweep."""
    from core.upload.byom import DataSource

    cnn, images = digits_files
    cancer_model, cancer_csv = models.breast_cancer_skops()
    rows = ["\"<script>alert(1)</script> good great\",pos", "bad awful plot,neg", "fine good fun,pos", "dull poor,neg"] * 3
    texts = ("text,label\n" + "\n".join(rows) + "\n").encode()
    made = {
        "torchscript+zip": byom.open_upload(cnn, "digits_cnn.pt", DataSource("image_zip", images, "digits.zip")),
        "onnx+zip": byom.open_upload(models.digits_onnx(), "digits.onnx", DataSource("image_zip", images, "digits.zip")),
        "skops+csv": byom.open_upload(cancer_model, "cancer.skops", DataSource("table", cancer_csv, "cancer.csv")),
        "skops-text+csv": byom.open_upload(models.text_skops(), "text.skops", DataSource("text_csv", texts, "t.csv")),
        # a ColumnTransformer pipeline on raw text columns with missing values (core/upload/raw_columns.py)
        "skops-raw+csv": byom.open_upload(*_raw()),
        # boosters in their libraries' own files (core/upload/boosters.py)
        "xgboost+csv": byom.open_upload(*_booster(models.cancer_xgboost(), "cancer.json")),
        "lightgbm+csv": byom.open_upload(*_booster(models.cancer_lightgbm(), "cancer.txt")),
        "catboost+csv": byom.open_upload(*_booster(models.cancer_catboost(), "cancer.cbm")),
        # a zipped Hugging Face save_pretrained folder: a tiny random BERT classifier (core/upload/transformers_zip.py)
        "transformers+csv": byom.open_upload(models.tiny_bert_zip(), "tiny-bert.zip",
                                             DataSource("text_csv", texts, "t.csv")),
        # the same format with a tiny random ViT image classifier and the digits' 8 x 8 PNGs (resized by the model)
        "transformers-vit+zip": byom.open_upload(models.tiny_vit_zip(), "tiny-vit.zip",
                                                 DataSource("image_zip", images, "digits.zip")),
    }
    return {k: v.name for k, v in made.items()}


def _booster(files, filename):
    from core.upload.byom import DataSource

    model, table = files
    return model, filename, DataSource("table", table, "cancer.csv")


def _raw():
    from core.upload.byom import DataSource

    model, table = models.raw_columns_skops()
    return model, "raw.skops", DataSource("table", table, "holdout.csv")


@pytest.mark.parametrize("page", [pytest.param(p, marks=pytest.mark.xfail(
    strict=True, reason="the page calls core.scenarios for the selected scenario")) if p in KNOWN_BUILT_IN_ONLY else p
    for p in PAGES])
# The sweep takes 20 s cold (32 page runs): the fast tier keeps one kind, the slow tier has the others.
@pytest.mark.parametrize("upload_kind", ["torchscript+zip"] + [pytest.param(kind, marks=pytest.mark.slow)
                                                               for kind in ("onnx+zip", "skops+csv", "skops-text+csv",
                                                                           "skops-raw+csv", "xgboost+csv",
                                                                           "lightgbm+csv", "catboost+csv",
                                                                           "transformers+csv",
                                                                           "transformers-vit+zip")])
def test_every_page_runs_on_every_kind_of_upload(uploads, upload_kind, page):
    name = uploads[upload_kind]
    at = open_app(page, state={"tl_uploads": [name], "tl_scenario": name})
    assert at.session_state["tl_scenario"] == name
    shown = [m.value for m in at.markdown] + [h.proto.body for h in at.get("html")]
    assert not any("<script>" in s for s in shown)


def test_unlabelled_data_shows_no_accuracy_on_the_model_card():
    from core.upload.byom import DataSource

    texts = ("text\n" + "\n".join(["good great fun", "bad awful plot", "dull poor film", "fine good story"] * 3)
             + "\n").encode()
    name = byom.open_upload(models.text_skops(), "text.skops", DataSource("text_csv", texts, "unlabelled.csv")).name
    at = open_app(state={"tl_uploads": [name], "tl_scenario": name})
    shown = {m.label: m.value for m in at.metric}
    assert shown["Test accuracy"] == shown["Validation accuracy"] == "no labels"
    assert shown["Training time"] == "uploaded"


def test_uncertainty_page_scores_an_upload_with_its_own_stress_sets(uploads):
    # (the sources and sets themselves are tested in tests/pages/test_uncertainty_upload.py)
    at = open_app("pages/uncertainty.py", state={"tl_uploads": [uploads["torchscript+zip"]],
                                                 "tl_scenario": uploads["torchscript+zip"]}, errors=True)
    assert "Gaussian noise σ=0.1" in list(at.dataframe[0].value["set"])


@pytest.mark.slow
def test_shapley_waterfall_of_a_raw_column_pipeline_names_its_categories(uploads):
    """SHAP runs on the codes of a raw text column; the waterfall says the row's category as the table shows it."""
    import json

    name = uploads["skops-raw+csv"]
    at = open_app("pages/shapley.py", state={"tl_uploads": [name], "tl_scenario": name})
    assert not at.exception and not at.error, [e.value for e in at.error]
    figures = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    waterfall = next(f for f in figures if f["layout"]["title"]["text"].startswith("Why row"))
    steps = [label for label in waterfall["data"][0]["y"] if " = " in label]
    colour = [label for label in steps if label.startswith("colour = ")]
    assert colour and colour[0].removeprefix("colour = ") in {"red", "green", "blue"}, steps
