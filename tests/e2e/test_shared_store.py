"""Two app servers over one S3 store a precompute job filled (issue 22): a real S3-compatible server (moto's
server mode, started here), ``python -m core precompute ... --store s3://...`` run as a team would, then a
read-write server and a read-only one (``TRUSTLENS_STORE_READONLY=1``) sharing the bucket.

The read-write server computes what the precompute does not hold, and it lands in the bucket; the read-only
server opens a precomputed test image, shows its map with the "precomputed" caption, and writes nothing.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
import time
import uuid

from core.embeddings.warm import WARMUP_ENV_VAR
from core.store import ENV_VAR, MODEL_CACHE_ENV_VAR, READONLY_ENV_VAR, STORE_ENV_VAR
from tests.conftest import ROOT, require_dataset
from tests.e2e import helpers
from tests.e2e.conftest import new_context, streamlit_server
from tests.moto_support import CREDENTIALS, bucket_keys, client, moto_server

PREFIX = "team"
PICKED = 7  # a test image of digits the read-only server opens


def test_a_read_only_server_shows_the_precompute_and_writes_nothing(browser, tmp_path, screenshot_dir):
    require_dataset("digits")
    with moto_server() as endpoint:
        s3 = client(endpoint)
        bucket = f"trustlens-shared-{uuid.uuid4().hex[:8]}"  # moto's backend is process-wide: a bucket of our own
        s3.create_bucket(Bucket=bucket)
        store = f"s3://{bucket}/{PREFIX}"
        env = {**CREDENTIALS, "AWS_ENDPOINT_URL_S3": endpoint, "AWS_EC2_METADATA_DISABLED": "true",
               "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"), "AWS_CONFIG_FILE": str(tmp_path / "none"),
               STORE_ENV_VAR: store, WARMUP_ENV_VAR: "0",
               # trained models stay in the session's folder (the servers only read them)
               MODEL_CACHE_ENV_VAR: os.environ.get(MODEL_CACHE_ENV_VAR) or os.environ[ENV_VAR]}
        env_plain = {k: v for k, v in os.environ.items() if k not in (READONLY_ENV_VAR, "AWS_PROFILE", "AWS_ENDPOINT_URL")}

        # the precompute job, through the CLI
        began = time.monotonic()
        job = subprocess.run([sys.executable, "-m", "core", "precompute", "digits", "--ops", "attributions",
                              "--method", "gradient", "--store", store, "--json", "--quiet"],
                             cwd=ROOT, env={**env_plain, **env}, capture_output=True, text=True, timeout=120)
        assert job.returncode == 0, job.stderr[-3000:]
        precompute_s = time.monotonic() - began
        report = json.loads(job.stdout)
        (op,) = report["ops"]
        assert op["rows"] == report["rows"] > PICKED and not op["skipped"]
        precomputed = bucket_keys(s3, bucket)
        assert precomputed and all(k.startswith(f"{PREFIX}/precomputed/{op['key']}/") for k in precomputed)

        started = time.monotonic()
        with contextlib.ExitStack() as stack:
            writer = stack.enter_context(streamlit_server(_folder(tmp_path, "rw"), env=env))
            reader = stack.enter_context(streamlit_server(_folder(tmp_path, "ro"), env={**env, READONLY_ENV_VAR: "1"}))
            context = stack.enter_context(contextlib.closing(new_context(browser)))
            served = time.monotonic()

            # 1. the read-write server: a method the precompute does not hold, beside one it holds
            page = context.new_page()
            page.goto(f"{writer}/images?scenario=digits&images={PICKED}&methods=gradient,guided_backprop")
            _wait_grid(page)
            (line,) = helpers.main(page).get_by_text(re.compile("precomputed by")).all_inner_texts()
            assert "Gradient: precomputed" in line and "Guided" not in line, line
            written = bucket_keys(s3, bucket)
            computed = sorted(set(written) - set(precomputed))
            assert computed, "the read-write server saved nothing in the shared store"
            assert not any("/precomputed/" in k for k in computed)

            # 2. the read-only server: a precomputed test image, read from the bucket
            page = context.new_page()
            page.goto(f"{reader}/images?scenario=digits&images={PICKED}&methods=gradient")
            _wait_grid(page)
            main = helpers.main(page)
            caption = main.get_by_text(re.compile(r"Gradient: precomputed by python -m core precompute on "
                                                  r"\d{4}-\d\d-\d\d, engine local"))
            helpers.expect(caption).to_be_visible(timeout=helpers.UI_TIMEOUT_MS)
            helpers.wait_painted(page)
            page.screenshot(path=str(screenshot_dir / "shared-store-read-only.png"), full_page=True)
            helpers.assert_no_errors(page)
            assert main.locator(".stPlotlyChart").first.locator("g.hm image").count() >= 2  # original + gradient
            assert bucket_keys(s3, bucket) == written, "the read-only server wrote to the shared store"
            print(f"precompute {precompute_s:.1f} s, servers {served - started:.1f} s, pages {time.monotonic() - served:.1f} s")


def _folder(tmp_path, name: str):
    folder = tmp_path / name
    folder.mkdir()
    return folder


def _wait_grid(page) -> None:
    main = helpers.main(page)
    helpers.expect(helpers.title(page).filter(has_text="Image explanations")).to_be_visible(
        timeout=helpers.LOAD_TIMEOUT_MS)
    helpers.expect(main.locator(".stPlotlyChart").first.locator("g.hm image").first).to_be_attached(
        timeout=helpers.LOAD_TIMEOUT_MS)
    helpers.wait_settled(page)
