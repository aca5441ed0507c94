"""Page tests (AppTest): shared fixtures. Opening a page: tests/pages/helpers.py."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def no_background_umap_compilation(monkeypatch):
    """The embeddings page starts UMAP's numba compilation in a background thread (pages/embeddings.py). No page
    test looks at it (tests/core/test_umap_warm.py and the browser tests do), and in a test process it runs on
    behind the tests: measured, it took 200 s of CPU from the tests after it."""
    import core.embeddings.warm as umap_warm

    monkeypatch.setattr(umap_warm, "warm_in_background", lambda: None)
