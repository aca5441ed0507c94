"""Presentation: Streamlit widgets, cached wrappers around core, and Plotly figure builders."""
