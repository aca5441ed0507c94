"""Pure Plotly figure builders: result arrays in, ``go.Figure`` out. No streamlit here."""
