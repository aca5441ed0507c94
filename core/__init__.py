"""TrustLens core: models, data, caching and computation. Never imports streamlit or plotly.

Importing ``core`` is cheap: heavy libraries (torch, scikit-learn's estimators, umap, shap,
openTSNE) are imported inside the functions that need them.
"""

__version__ = "0.1.0"
