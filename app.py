"""TrustLens: explore how a model behaves and whether to trust it.

Start with ``streamlit run app.py``. This script sets the page up, draws the sidebar (scenario,
model, device, presentation mode, copy link) shared by every page, and hands over to
``st.navigation``. It imports no heavy library (torch, umap, shap, openTSNE): pages import what
they need, so the first paint is fast.

The view's state round-trips through the URL (components/links.py): values in the query string
are restored before the widgets are drawn, and the current values are written back after the page
ran, so a copied address reopens the same view.
"""

import streamlit as st

from components import links, present, widgets
from components.runtime import configure_server

configure_server()  # once per process: torch's threads for many concurrent sessions

links.restore_shared()
st.set_page_config(page_title="TrustLens", page_icon=":material/search_insights:", layout="wide",
                   initial_sidebar_state="collapsed" if present.is_on() else "auto")

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
        st.Page("pages/slices.py", title="Slices and groups", icon=":material/pie_chart:"),
        st.Page("pages/data.py", title="Data checks", icon=":material/fact_check:"),
        st.Page("pages/upload.py", title="Your model", icon=":material/upload_file:"),
    ]
)
links.restore_page(page.url_path)
present.sidebar_toggle()
# The link is written before the page runs (a page that calls st.stop() ends the script: nothing can be
# drawn or sent after it) and again after it, with the values the page's own run settled on.
links.publish(page.url_path)
link_slot = links.copy_link_control(page.url_path)
present.apply_style()
page.run()
links.publish(page.url_path)
link_slot.code(links.link(page.url_path), language=None, wrap_lines=True)

# After the page so torch's import (for the device name) never delays the first paint.
widgets.device_caption()
