"""A map of a million precomputed points: the server-side map, then the embeddings page in Chromium.

What is measured (a benchmark, not a test):

1. ``publish``: N synthetic activations (``--n``, default 1,000,000 rows x ``--dims`` 64: ten Gaussian clusters,
   the cluster is the predicted class) and their predictions are published into a temporary store in the
   precompute's format (``core.precompute.maps.publish_arrays``: shards + manifest, the precompute's key).
2. ``server``: what the page's first visit costs on the server: find + sha256 of every shard, the PCA of all
   N points in chunks (``pca_map``, cold), the predictions read back, the density raster and the overlay.
3. ``browser``: a Streamlit server on that store and headless Chromium (/usr/bin/chromium, as tests/e2e):
   ``page_painted`` from clicking "Embeddings" to the map painted (the PCA now comes from the store), and
   ``box_selection`` from releasing a dragged box to its listed rows. The page stays responsive when both
   are seconds, not minutes (the browser never receives a million markers: one PNG and <= 5,000 points).

Which samples the rows are: the result is published under the digits CNN's fingerprint and the fingerprint of
digits' "all splits" rows (the page's default points), so the page finds it with the same key a real
precompute would have. Its rows are synthetic and there are 1,000,000 of them, not the 1,797 digits: the page
says so and lists a selected row by index, predicted class and confidence, without an input or a true label
(components/precomputed_map.py). Nothing pretends a synthetic row is a digit.

Prints a table, then one JSON line. Run:
``TRUSTLENS_DATA_DIR=../shared/data python bench/million_map.py [--n 1000000] [--screenshot PATH]``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def synthetic(n: int, dims: int, classes: int = 10, seed: int = 0, chunk: int = 200_000):
    """(activations float32 (n, dims), labels): ``classes`` Gaussian clusters, built in chunks."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=3.0, size=(classes, dims)).astype(np.float32)
    labels = rng.integers(0, classes, n)
    acts = np.empty((n, dims), dtype=np.float32)
    for a in range(0, n, chunk):
        b = min(n, a + chunk)
        acts[a:b] = centres[labels[a:b]] + rng.standard_normal((b - a, dims), dtype=np.float32)
    return acts, labels


def server_side(store_url: str, model_fp: str, data_fp: str) -> dict[str, float]:
    from core.precompute.maps import (density_raster, find_activations, find_predictions, overlay_sample, pca_map,
                                      predictions_of, raster_rgb, select_box)
    from core.store import ArtifactStore

    out = {}
    t = time.perf_counter()
    found = find_activations(store_url, model_fp, data_fp, "relu3")
    out["find_and_verify_s"] = time.perf_counter() - t
    t = time.perf_counter()
    points = pca_map(found, "relu3", store=ArtifactStore(store_url))
    out["pca_all_points_s"] = time.perf_counter() - t
    t = time.perf_counter()
    predicted, _ = predictions_of(find_predictions(store_url, model_fp, data_fp))
    out["read_predictions_s"] = time.perf_counter() - t
    t = time.perf_counter()
    raster = density_raster(points.coords, predicted, 10)
    raster_rgb(raster, np.full((10, 3), 120))
    out["raster_s"] = time.perf_counter() - t
    t = time.perf_counter()
    overlay_sample(predicted, points.n)
    out["overlay_s"] = time.perf_counter() - t
    lo, hi = np.quantile(points.coords, [0.3, 0.7], axis=0)
    t = time.perf_counter()
    out["box_rows"] = float(len(select_box(points.coords, (lo[0], hi[0]), (lo[1], hi[1]))))
    out["select_box_s"] = time.perf_counter() - t
    return out


_DATA_JS = """() => {
  const plot = document.querySelector('[data-testid="stMain"] .js-plotly-plot');
  const t = plot._fullData.find(d => d.type === 'scattergl');
  return [Array.from(t.x), Array.from(t.y)];
}"""
_TO_PAGE_JS = """([x, y]) => {
  const plot = document.querySelector('[data-testid="stMain"] .js-plotly-plot');
  const layout = plot._fullLayout, box = plot.getBoundingClientRect();
  return [box.left + layout.xaxis._offset + layout.xaxis.l2p(x), box.top + layout.yaxis._offset + layout.yaxis.l2p(y)];
}"""


def browser_side(store_url: str, n: int, screenshot: Path | None) -> dict[str, float]:
    from playwright.sync_api import sync_playwright

    from tests.e2e import helpers
    from tests.e2e.conftest import CHROMIUM, CHROMIUM_ARGS, VIEWPORT, streamlit_process

    out: dict[str, float] = {}
    log_dir = Path(tempfile.mkdtemp(prefix="million-map-server-"))
    with streamlit_process(log_dir, env={"TRUSTLENS_STORE": store_url, "TRUSTLENS_UMAP_WARMUP": "0"}) as (url, _):
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            page = browser.new_context(viewport=VIEWPORT).new_page()
            out["app_open_s"] = helpers.open_app(page, url)
            main = helpers.main(page)
            t = time.perf_counter()
            helpers.sidebar(page).get_by_role("link", name="Embeddings").click()
            helpers.expect(main.get_by_text(re.compile(r"^Box- or lasso-select a region"))).to_be_visible(
                timeout=helpers.LOAD_TIMEOUT_MS)
            helpers.wait_settled(page)
            helpers.wait_painted(page)
            out["page_painted_s"] = time.perf_counter() - t
            # how long the browser's main thread is blocked by one hover over the map (responsiveness)
            xs, ys = page.evaluate(_DATA_JS)
            xs, ys = np.sort(xs), np.sort(ys)
            x0, y0 = page.evaluate(_TO_PAGE_JS, [float(xs[int(0.3 * len(xs))]), float(ys[int(0.7 * len(ys))])])
            x1, y1 = page.evaluate(_TO_PAGE_JS, [float(xs[int(0.7 * len(xs))]), float(ys[int(0.3 * len(ys))])])
            t = time.perf_counter()
            page.mouse.move((x0 + x1) / 2, (y0 + y1) / 2)
            page.evaluate("() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")
            out["hover_frame_s"] = time.perf_counter() - t
            page.locator('[data-testid="stPlotlyChart"] .modebar-btn[data-val="select"]').first.click()
            page.mouse.move(x0, y0)
            page.mouse.down()
            page.mouse.move((x0 + x1) / 2, (y0 + y1) / 2, steps=5)
            page.mouse.move(x1, y1, steps=5)
            t = time.perf_counter()
            page.mouse.up()
            heading = main.get_by_role("heading", name=re.compile(rf"^Selection: [\d,]+ of {n:,} points"))
            helpers.expect(heading).to_be_visible(timeout=120_000)
            helpers.wait_settled(page)
            helpers.expect(main.locator('[data-testid="stDataFrame"]')).to_be_visible(timeout=60_000)
            helpers.wait_painted(page)
            out["box_selection_s"] = time.perf_counter() - t
            out["selected_rows"] = float(heading.inner_text().split()[1].replace(",", ""))
            if screenshot is not None:
                screenshot.parent.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(screenshot), full_page=False)
            browser.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--dims", type=int, default=64)
    parser.add_argument("--no-browser", action="store_true")
    parser.add_argument("--screenshot", type=Path, default=ROOT / "tests" / "e2e" / "screenshots" / "million_map.png")
    args = parser.parse_args()

    store_url = tempfile.mkdtemp(prefix="million-map-store-")
    os.environ["TRUSTLENS_STORE"] = store_url  # this process's artifact cache too (the page's predictions)
    from core import scenarios
    from core.embeddings import combine_splits
    from core.precompute.maps import publish_arrays

    adapter = scenarios.load_model("digits", "cnn").adapter  # trained on first use, cached in the model cache
    data_fp = combine_splits(scenarios.load_data("digits"))[0].fingerprint
    rows: dict[str, float] = {}
    t = time.perf_counter()
    acts, labels = synthetic(args.n, args.dims)
    proba = np.full((args.n, 10), 0.02, dtype=np.float32)
    proba[np.arange(args.n), labels] = 0.82
    rows["synthesise_s"] = time.perf_counter() - t
    t = time.perf_counter()
    publish_arrays(store_url, "activations", {"layer": "relu3"}, adapter.fingerprint, data_fp, {"activations": acts},
                   source={"bench": "million_map", "synthetic": True})
    publish_arrays(store_url, "predictions", {}, adapter.fingerprint, data_fp, {"proba": proba, "predicted": labels},
                   source={"bench": "million_map", "synthetic": True})
    rows["publish_s"] = time.perf_counter() - t
    del acts, proba
    rows.update(server_side(store_url, adapter.fingerprint, data_fp))
    if not args.no_browser:
        rows.update(browser_side(store_url, args.n, args.screenshot))
    print(f"{'measure':<22}{'value':>12}")
    for name, value in rows.items():
        print(f"{name:<22}{value:>12.3f}" if name.endswith("_s") else f"{name:<22}{value:>12,.0f}")
    if not args.no_browser:
        print(f"screenshot: {args.screenshot}")
    print(json.dumps({"bench": "million_map", "n": args.n, "dims": args.dims, "cores": os.cpu_count(),
                      **{k: round(v, 3) for k, v in rows.items()}}))


if __name__ == "__main__":
    main()
