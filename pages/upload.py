"""Your model: upload a model file and data; after a dry run it becomes this session's scenario."""

import pandas as pd
import streamlit as st

from components import cached, state
from components.feedback import guarded, progress_status
from core.upload import byom
from core.upload.model_upload import FORMAT_TITLES, pickle_allowed_by_server

MODEL_TYPES = ["pt", "pth", "pt2", "onnx", "skops", "json", "ubj", "txt", "cbm", "zip", "pkl", "pickle", "joblib"]
DATA_CHOICES = {
    "image_zip": "ZIP of images (one folder per class)",
    "image": "One image (PNG / JPEG)",
    "table": "Table (CSV or Parquet) with a target column",
    "text_csv": "CSV of texts (text + optional label column)",
    "pasted_text": "Pasted text",
}
DEFAULT_DATA = {"image": "image_zip", "tabular": "table", "text": "text_csv"}


def code(text: object) -> str:
    """User text shown literally: backticks cannot close the code span, HTML is escaped by Streamlit."""
    return "`" + str(text).replace("`", "'") + "`"


def floats(text: str, field: str) -> list[float] | None:
    if not text.strip():
        return None
    try:
        return [float(v) for v in text.replace(";", ",").split(",") if v.strip()]
    except ValueError:
        st.error(f"{field} must be numbers separated by commas; got {code(text)}.", icon=":material/error:")
        st.stop()


st.title("Your model")
st.caption("Bring a model you trained: TorchScript (.pt / .pth), torch.export (.pt2), ONNX (.onnx), a scikit-learn "
           "model / pipeline saved with skops (.skops), an XGBoost, LightGBM or CatBoost booster, or a Hugging Face "
           "text or image classifier (a .zip of its save_pretrained folder), with some data to explore it on. Nothing "
           "in the file is run to find out what it is; pickle-based files are refused unless the server allows them. "
           "After a dry run on one sample the model becomes a scenario in the sidebar, for this session only.")

flash = st.session_state.get("up_flash")  # the last addition, until the next attempt
if flash:
    st.success(flash, icon=":material/check_circle:")

# -- the model file ------------------------------------------------------------------------------
st.subheader("1. The model")
model_file = st.file_uploader("Model file", type=MODEL_TYPES, key="up_model",
                              help="TorchScript: torch.jit.script(model).save('model.pt'); torch.export: "
                                   "torch.export.save(torch.export.export(model, (x,)), 'model.pt2'); "
                                   "skops: skops.io.dump(pipeline, 'model.skops'); XGBoost: booster.save_model('model.json') "
                                   "(or .ubj); LightGBM: booster.save_model('model.txt'); CatBoost: "
                                   "model.save_model('model.cbm'); Hugging Face text classifier: zip the folder "
                                   "model.save_pretrained(folder) and tokenizer.save_pretrained(folder) wrote "
                                   "(config.json, model.safetensors, tokenizer.json); image classifier (ViT): zip "
                                   "the folder model.save_pretrained(folder) and "
                                   "image_processor.save_pretrained(folder) wrote (config.json, model.safetensors, "
                                   "preprocessor_config.json).")
if model_file is None:
    st.info("Upload a model file to start.", icon=":material/upload_file:")
    st.stop()
model_bytes = model_file.getvalue()
inspection = cached.model_inspection(model_bytes, model_file.name, pickle_allowed_by_server())
info = {"file": model_file.name, "size": f"{inspection.size / 1024:.1f} KiB", "sha256": inspection.sha256[:16],
        "format": inspection.format_title}
info.update({k: str(v) for k, v in inspection.inferred.items() if k not in ("feature_names", "class_names")})
st.dataframe(pd.DataFrame({"": list(info), "detected": list(info.values())}), hide_index=True, key="up_detected")
if inspection.refused:
    st.error(inspection.refused, icon=":material/block:")
    st.stop()
for note in inspection.notes:
    st.caption(note)
trusted: tuple[str, ...] = ()
if inspection.untrusted_types:
    st.warning("This skops file needs types outside skops' trusted set; loading them could run code:\n\n"
               + "\n".join(f"- {code(t)}" for t in inspection.untrusted_types), icon=":material/gpp_maybe:")
    if not st.checkbox("I trust these types (I know where this file comes from)", key="up_trust"):
        st.stop()
    trusted = inspection.untrusted_types
    with guarded():  # accepted: open it now to infer the spec (input kind, features, classes)
        inspection = cached.model_inspection(model_bytes, model_file.name, pickle_allowed_by_server(), trusted)
    if inspection.refused:
        st.error(inspection.refused, icon=":material/block:")
        st.stop()
confirm_pickle = False
if inspection.needs_pickle_confirmation:
    st.warning(f"{code(model_file.name)} is a {FORMAT_TITLES[inspection.format]}: loading it runs code stored in the "
               "file. The server allows pickles; confirm only for a file you made yourself.", icon=":material/warning:")
    confirm_pickle = st.checkbox("I made this file and accept that loading it runs its code", key="up_pickle")
    if not confirm_pickle:
        st.stop()

# -- the data --------------------------------------------------------------------------------------
st.subheader("2. The data")
kind_guess = inspection.inferred.get("input_kind", "image")
choices = list(DATA_CHOICES)
data_kind = st.radio("Data", choices, index=choices.index(DEFAULT_DATA.get(kind_guess, "image_zip")), key="up_data_kind",
                     format_func=DATA_CHOICES.get, horizontal=True)
options: dict = {}
if data_kind == "pasted_text":
    text = st.text_area("Documents (separate them with a blank line)", key="up_text", height=160)
    data_bytes, data_name = text.encode("utf-8"), "pasted text"
    if not text.strip():
        st.info("Paste at least one document.", icon=":material/edit_note:")
        st.stop()
else:
    types = {"image_zip": ["zip"], "image": ["png", "jpg", "jpeg"], "table": ["csv", "parquet"], "text_csv": ["csv"]}[data_kind]
    data_file = st.file_uploader("Data file", type=types, key="up_data")
    if data_kind == "table":
        c1, c2 = st.columns([2, 1])
        no_labels = c2.checkbox("No labels", key="up_no_target")
        target = c1.text_input("Target column", "target", key="up_target", disabled=no_labels)
        options["target"] = None if no_labels else target.strip()
    if data_kind == "text_csv":
        c1, c2 = st.columns(2)
        options["text_column"] = c1.text_input("Text column", "text", key="up_text_column").strip() or None
        options["label_column"] = c2.text_input("Label column (empty: none or 'label')", "", key="up_label_column").strip() or None
    if data_file is None:
        st.info("Upload the data to explore the model on.", icon=":material/upload:")
        st.stop()
    data_bytes, data_name = data_file.getvalue(), data_file.name

# -- the spec ---------------------------------------------------------------------------------------
st.subheader("3. The spec")
st.caption("Inferred from the file and the data where possible; set a field to override it.")
inferred = inspection.inferred
c1, c2, c3, c4 = st.columns(4)
kinds = ["infer", "image", "tabular", "text"]
input_kind = c1.selectbox("Input kind", kinds, key="up_kind")
outputs = c2.selectbox("Outputs", ["detect", "logits", "probabilities"], key="up_outputs",
                       help="logits are soft-maxed; 'detect' checks whether a dry run's rows sum to 1")
class_text = c3.text_input("Class names (comma-separated, model output order)", ", ".join(inferred.get("class_names", [])),
                           key="up_classes")
class_file = c4.file_uploader("or a class-names file (.txt / .json)", type=["txt", "json"], key="up_classes_file")
overrides: dict = {}
if input_kind != "infer":
    overrides["input_kind"] = input_kind
if outputs != "detect":
    overrides["outputs"] = outputs
if class_file is not None:
    from core.upload.data_upload import parse_class_names

    with guarded():
        overrides["class_names"] = list(parse_class_names(class_file.getvalue(), class_file.name))
elif class_text.strip():
    overrides["class_names"] = [c.strip() for c in class_text.split(",") if c.strip()]
if (input_kind if input_kind != "infer" else inferred.get("input_kind", "image" if data_kind.startswith("image") else "")) == "image":
    i1, i2, i3, i4, i5 = st.columns(5)
    for column, field in ((i1, "channels"), (i2, "height"), (i3, "width")):
        value = column.number_input(field.capitalize() + " (0 = infer)", 0, 4096, int(inferred.get(field) or 0), key=f"up_{field}")
        if value:
            overrides[field] = int(value)
    mean = floats(i4.text_input("Normalisation mean", "", key="up_mean", placeholder="0 (e.g. 0.485, 0.456, 0.406)"), "Mean")
    std = floats(i5.text_input("Normalisation std", "", key="up_std", placeholder="1 (e.g. 0.229, 0.224, 0.225)"), "Std")
    if mean is not None:
        overrides["mean"] = mean
    if std is not None:
        overrides["std"] = std
    if (mean is None) != (std is None):
        st.error("Give both the normalisation mean and std, or neither.", icon=":material/error:")
        st.stop()

if st.button("Check with a dry run and add to the sidebar", type="primary", key="up_go", icon=":material/play_arrow:"):
    st.session_state.pop("up_flash", None)
    source = byom.DataSource(kind=data_kind, data=data_bytes, filename=data_name, **options)
    with guarded(), progress_status(f"Opening {model_file.name}") as progress:
        uploaded = byom.open_upload(model_bytes, model_file.name, source, overrides, allow_pickle=pickle_allowed_by_server(),
                                    confirm_pickle=confirm_pickle, trusted_types=trusted, progress=progress)
    state.add_upload(uploaded.name)
    accuracy = uploaded.trained.metrics["test_accuracy"]
    st.session_state["up_flash"] = (
        f"Added {code(uploaded.spec.title)} to the sidebar ({uploaded.n_samples} samples"
        + (f", accuracy {accuracy:.1%} on the test split" if uploaded.labelled else ", no labels") + "). "
        "Every page now uses it; pick a built-in scenario in the sidebar to go back.")
    st.rerun()

# -- this session's uploads ------------------------------------------------------------------------
# state.current() (which may rerun once to enter app.py's shell) comes after the button: under AppTest
# every run starts outside the shell, and that rerun would swallow the click.
selected = state.current().scenario
names = state.session_uploads()
if names:
    st.subheader("Your scenarios in this session")
    for name in names:
        uploaded = byom.get(name)
        s = uploaded.summary()
        with st.expander(s["title"], expanded=name == selected):
            spec = uploaded.model_spec
            st.markdown(f"**Format** {code(s['format'])} · **input** {spec.input_kind}"
                        + (f" {spec.channels}x{spec.height}x{spec.width}" if spec.input_kind == "image" else "")
                        + f" · **outputs** {spec.outputs} · **classes** {code(', '.join(spec.class_names))}")
            if s["gradients_unavailable"]:
                st.info(s["gradients_unavailable"], icon=":material/info:")
            for note in s["notes"]:
                st.caption(note)
