"""'Your model' in a real browser: every page of the navigation with each kind of upload (TorchScript + ZIP, ONNX +
ZIP, a skops pipeline on raw table columns, skops + CSV text, LightGBM and XGBoost files, zipped Hugging Face text
and ViT classifiers), with the main view of the pages that differ by kind checked on the way (the TorchScript CNN's
saliency grid and calibration, ONNX's occlusion-only grid and its reason, the table models' Shapley values); a
pickle refused; `serve` and a notebook's `launch` opening the app on a preloaded model."""

from __future__ import annotations

import json
import re
import subprocess
import time

import pytest

from tests.e2e import helpers
from tests.hostile import FILES, models

pytestmark = pytest.mark.e2e
BUTTON = "Check with a dry run and add to the sidebar"


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("uploads")
    written = {}
    for name, data in (("digits_cnn.pt", models.digits_torchscript()), ("digits.zip", models.digits_zip()),
                       ("digits.onnx", models.digits_onnx())):
        (folder / name).write_bytes(data)
        written[name] = folder / name
    written["creates_file.pkl"] = FILES / "creates_file.pkl"
    return written


def open_upload_page(page, app_url) -> None:
    """'Your model' by its link: Home is not drawn first (its card and dataset browser cost 3-5 s of a cold run,
    and the every-page and scenario tests check Home); the sidebar's link to it is followed by the every-page sweep."""
    page.goto(f"{app_url}/upload")
    helpers.expect(page.locator('[data-testid="stApp"][data-test-connection-state="CONNECTED"]')).to_be_attached(
        timeout=helpers.UI_TIMEOUT_MS)
    helpers.expect(helpers.title(page).filter(has_text="Your model")).to_be_visible(timeout=helpers.LOAD_TIMEOUT_MS)
    helpers.wait_settled(page)


def dropzone(page, index: int):
    return page.get_by_test_id("stFileUploaderDropzoneInput").nth(index)


def upload_model_and_data(page, model_path, data_path) -> None:
    main = helpers.main(page)
    dropzone(page, 0).set_input_files(str(model_path))
    helpers.expect(main.get_by_text("2. The data")).to_be_visible(timeout=helpers.LOAD_TIMEOUT_MS)
    helpers.wait_settled(page)
    dropzone(page, 1).set_input_files(str(data_path))
    helpers.expect(main.get_by_role("button", name=BUTTON)).to_be_visible(timeout=helpers.LOAD_TIMEOUT_MS)
    helpers.wait_settled(page)


def add_to_sidebar(page) -> None:
    helpers.main(page).get_by_role("button", name=BUTTON).click()
    helpers.expect(helpers.main(page).get_by_text(re.compile("Added .* to the sidebar"))).to_be_visible(
        timeout=helpers.LOAD_TIMEOUT_MS)
    helpers.wait_settled(page)
    helpers.expect(helpers.scenario_box(page)).to_have_value(re.compile("^Your model"))


def grid_titles(page) -> list[str]:
    grid = helpers.main(page).locator(".stPlotlyChart").first
    helpers.expect(grid.locator("g.annotation-text-g").first).to_be_attached(timeout=helpers.LOAD_TIMEOUT_MS)
    return grid.locator("g.annotation-text-g text").evaluate_all(
        "texts => texts.map(t => { const lines = t.querySelectorAll('tspan.line');"
        " return lines.length ? Array.from(lines).map(l => l.textContent).join(' ') : t.textContent; })")


def test_a_pickle_is_refused_in_the_browser(page, app_url, screenshot_dir, files):
    open_upload_page(page, app_url)
    dropzone(page, 0).set_input_files(str(files["creates_file.pkl"]))
    helpers.expect(helpers.main(page).get_by_text(re.compile("refuses pickle-based files"))).to_be_visible(
        timeout=helpers.LOAD_TIMEOUT_MS)
    helpers.wait_settled(page)
    page.screenshot(path=str(screenshot_dir / "upload-pickle-refused.png"), full_page=True)
    assert helpers.main(page).get_by_role("button", name=BUTTON).count() == 0


def _start(command: list[str], url: str, env: dict) -> subprocess.Popen:
    import subprocess
    import time

    from tests.conftest import ROOT
    from tests.e2e.conftest import _healthy

    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not _healthy(url):
        assert process.poll() is None, f"{command} exited with {process.returncode}"
        assert time.monotonic() < deadline, f"{url} not healthy"
        time.sleep(0.3)
    return process


def _stop(process) -> None:
    process.terminate()
    try:
        process.wait(timeout=15)
    except Exception:  # noqa: BLE001 - then kill it
        process.kill()
        process.wait(timeout=15)


@pytest.mark.parametrize("how", ["cli", "notebook"])
def test_serve_starts_the_app_with_the_model_preloaded(browser, screenshot_dir, files, tmp_path, how):
    import os
    import sys

    from tests.e2e.conftest import _free_port, new_context

    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({"class_names": ["zero", "one", "two", "three", "four", "five", "six", "seven",
                                                "eight", "nine"]}))
    if how == "cli":
        command = [sys.executable, "-m", "core", "serve", "--model", str(files["digits_cnn.pt"]), "--data",
                   str(files["digits.zip"]), "--spec", str(spec), "--port", str(port)]
    else:  # what a notebook cell does: launch(...) returns the server process
        code = (f"from core.upload.byom import launch; p = launch({str(files['digits_cnn.pt'])!r}, {str(files['digits.zip'])!r}, "
                f"{str(spec)!r}, port={port}); import signal, sys; signal.signal(signal.SIGTERM, lambda *a: "
                "(p.terminate(), p.wait(), sys.exit(0))); p.wait()")
        command = [sys.executable, "-c", code]
    process = _start(command, url, dict(os.environ))
    try:
        context = new_context(browser)
        page = context.new_page()
        page.goto(url)
        helpers.expect(helpers.title(page).filter(has_text="Your model: digits_cnn.pt + digits.zip")).to_be_visible(
            timeout=helpers.LOAD_TIMEOUT_MS)
        # The sidebar's pickers come with the run that added the preloaded model (seen once on the CI machine: main
        # and sidebar captions painted, the pickers not yet 5 s later): wait for that run, then for the pickers.
        helpers.wait_settled(page)
        helpers.expect(helpers.scenario_box(page)).to_have_value(re.compile("^Your model"), timeout=helpers.UI_TIMEOUT_MS)
        helpers.expect(helpers.main(page).get_by_text(re.compile("Classes: zero, one, two"))).to_be_visible()
        helpers.wait_settled(page)
        helpers.wait_painted(page)
        page.screenshot(path=str(screenshot_dir / f"serve-{how}-home.png"), full_page=True)
        helpers.assert_no_errors(page)
        context.close()
    finally:
        _stop(process)


def _page_titles() -> list[str]:
    from tests.conftest import ROOT

    return [t for t in re.findall(r'st\.Page\("[^"]+", title="([^"]+)"', (ROOT / "app.py").read_text()) if t != "Your model"]


# What each page shows for an upload once it has computed (not just its title): a page that stops at an
# error or a notice fails here. Pages not listed only need their title and no error.
PAGE_CONTENT = {"Uncertainty": "Accuracy and AUROC per stress set"}


def _saliency_grid_of_a_torchscript_cnn(page) -> None:
    titles = grid_titles(page)
    for column in ("Original", "Gradient", "Integrated Gradients"):
        assert column in titles, titles


def _occlusion_only_for_onnx(page) -> None:
    titles = grid_titles(page)
    assert "Occlusion" in titles and "Gradient" not in titles, titles
    helpers.expect(helpers.main(page).get_by_text(re.compile("onnxruntime, which computes no gradients")).first).to_be_visible()


def _shapley_values_with_their_additivity(page) -> None:
    helpers.expect(helpers.main(page).get_by_text(re.compile("Additivity error")).first).to_be_visible(
        timeout=helpers.LOAD_TIMEOUT_MS)


def _calibration_metrics(page) -> None:
    helpers.expect(helpers.main(page).get_by_text(re.compile("ECE")).first).to_be_visible(timeout=helpers.LOAD_TIMEOUT_MS)


# A page's main view for one kind of upload, checked where the sweep passes it (each was a test of its own that
# uploaded the model again): gradient maps for the TorchScript CNN, occlusion alone and the reason for ONNX, SHAP
# values with their additivity for the table models.
KIND_CHECKS = {
    ("torchscript", "Image explanations"): _saliency_grid_of_a_torchscript_cnn,
    ("torchscript", "Calibration"): _calibration_metrics,
    ("onnx", "Image explanations"): _occlusion_only_for_onnx,
    **{(kind, "Shapley values"): _shapley_values_with_their_additivity for kind in ("skops-raw", "lightgbm", "xgboost")},
}


# Boosters (core/upload/boosters.py) in their libraries' own files: LightGBM's text file, whose feature names
# ('mean_radius') the CSV's columns ('mean radius') are matched to, and XGBoost's JSON (CatBoost's .cbm shares their
# code past the file: tests/pages/test_upload.py sweeps it). Tables as people keep them (core/upload/raw_columns.py):
# a ColumnTransformer pipeline on raw columns, strings and missing values included; a pipeline on numeric columns is
# uploaded by the ten-session test (tests/e2e/test_many_sessions.py) and swept by the AppTests (tests/pages/test_upload.py).
# The text uploads' data: 16 labelled reviews, one of them a script tag that must stay text on every page.
REVIEWS_CSV = "text,label\n" + "\n".join(['"<script>alert(1)</script> good great film",pos', "bad awful plot,neg",
                                         "fine good fun,pos", "dull poor boring,neg"] * 4) + "\n"


# A zipped Hugging Face save_pretrained folder (core/upload/transformers_zip.py): a tiny random BERT classifier.
@pytest.mark.parametrize("kind", ["torchscript", "onnx", "skops-raw", "skops-text", "lightgbm", "xgboost",
                                  "transformers", "transformers-vit"])
def test_every_page_in_the_browser_with_an_upload(page, app_url, screenshot_dir, files, tmp_path, kind):
    if kind == "transformers":
        model, data = tmp_path / "tiny-bert.zip", tmp_path / "reviews.csv"
        model.write_bytes(models.tiny_bert_zip())
        data.write_text(REVIEWS_CSV)
    elif kind == "transformers-vit":  # the same format with a tiny random ViT image classifier, on the digits' PNGs
        model, data = tmp_path / "tiny-vit.zip", files["digits.zip"]
        model.write_bytes(models.tiny_vit_zip())
    elif kind in ("lightgbm", "xgboost", "skops-raw"):
        built, name = {"lightgbm": (models.cancer_lightgbm, "cancer.txt"), "xgboost": (models.cancer_xgboost, "cancer.json"),
                       "skops-raw": (models.raw_columns_skops, "raw.skops")}[kind]
        model, data = tmp_path / name, tmp_path / "table.csv"
        booster, table = built()
        model.write_bytes(booster)
        data.write_bytes(table)
    elif kind == "skops-text":
        model, data = tmp_path / "text.skops", tmp_path / "reviews.csv"
        model.write_bytes(models.text_skops())
        data.write_text(REVIEWS_CSV)
    else:
        model, data = {"torchscript": (files["digits_cnn.pt"], files["digits.zip"]),
                       "onnx": (files["digits.onnx"], files["digits.zip"])}[kind]
    open_upload_page(page, app_url)
    upload_model_and_data(page, model, data)
    if kind == "torchscript":
        helpers.expect(helpers.main(page).get_by_text("TorchScript archive")).to_be_attached()  # a dataframe cell (canvas)
    add_to_sidebar(page)
    problems, timings, checked = {}, {}, []
    for title in _page_titles():
        started = time.perf_counter()
        helpers.sidebar(page).get_by_role("link", name=title).click()
        # The clicked page's own h1 (Home's is the scenario's title): the previous page's h1 stays visible
        # until the new page draws, and a screenshot taken then showed the Embeddings page as "Slices and groups".
        heading = helpers.title(page).filter(has_not_text=re.compile(r"^Your model$")) if title == "Home" else \
            helpers.title(page).filter(has_text=title)
        helpers.expect(heading).to_be_visible(timeout=helpers.LOAD_TIMEOUT_MS)
        if title in PAGE_CONTENT:
            helpers.expect(helpers.main(page).get_by_text(PAGE_CONTENT[title]).first).to_be_visible(
                timeout=helpers.LOAD_TIMEOUT_MS)
        if (kind, title) in KIND_CHECKS:
            KIND_CHECKS[kind, title](page)
            checked.append(title)
        helpers.wait_settled(page)
        helpers.wait_visible_painted(page, timeout=helpers.LOAD_TIMEOUT_MS)
        timings[title] = round(time.perf_counter() - started, 1)
        page.screenshot(path=str(screenshot_dir / f"upload-{kind}-{title.replace(' ', '_')}.png"), full_page=True)
        assert page.get_by_test_id("stException").count() == 0, (title, page.get_by_test_id("stException").all_inner_texts())
        errors = page.get_by_test_id("stAlertContentError").all_inner_texts()
        if errors:
            problems[title] = errors
        assert page.locator("script", has_text="alert(1)").count() == 0  # user text never becomes a script
    assert not problems, problems
    assert sorted(checked) == sorted(t for k, t in KIND_CHECKS if k == kind), checked  # no page skipped its check
    print(f"{kind}: " + ", ".join(f"{t} {v} s" for t, v in timings.items()))
    (screenshot_dir / f"upload-{kind}-seconds.json").write_text(json.dumps(timings, indent=1))
