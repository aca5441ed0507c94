"""TrustLens: explore how a model behaves and whether to trust it.

Start with ``streamlit run app.py``. This script sets the page up, draws the sidebar (scenario,
model, device) shared by every page, and hands over to ``st.navigation``. It imports no heavy
library (torch, umap, shap, openTSNE): pages import what they need, so the first paint is fast.
"""

import streamlit as st

from components import widgets

st.set_page_config(page_title="TrustLens", page_icon=":material/search_insights:", layout="wide")

st.sidebar.title("TrustLens")
st.sidebar.caption("Why did the model decide this, and should you trust it?")
widgets.scenario_sidebar()

page = st.navigation(
    [
        st.Page("pages/home.py", title="Home", icon=":material/home:", default=True),
        st.Page("pages/calibration.py", title="Calibration", icon=":material/speed:"),
        st.Page("pages/images.py", title="Image explanations", icon=":material/image_search:"),
        st.Page("pages/text.py", title="Text explanations", icon=":material/article:"),
        st.Page("pages/trust.py", title="Trust checks", icon=":material/verified:"),
        st.Page("pages/shapley.py", title="Shapley values", icon=":material/groups:"),
        st.Page("pages/uncertainty.py", title="Uncertainty", icon=":material/help:"),
        st.Page("pages/embeddings.py", title="Embeddings", icon=":material/scatter_plot:"),
        st.Page("pages/upload.py", title="Your model", icon=":material/upload_file:"),
    ]
)
page.run()

# After the page so torch's import (for the device name) never delays the first paint.
widgets.device_caption()
