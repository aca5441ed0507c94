"""A real S3-compatible server for tests: moto's server mode on 127.0.0.1 (not a mocked client).

Shared by tests/core/test_store_url.py and tests/e2e/test_shared_store.py.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}


@contextlib.contextmanager
def moto_server() -> Iterator[str]:
    """Start moto's threaded S3 server on a free port; yields its endpoint URL; stops it (and s3fs's cached clients)."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        import s3fs

        s3fs.S3FileSystem.clear_instance_cache()  # no cached client outlives the server
        server.stop()


def client(endpoint: str):
    """A boto3 S3 client of the server at ``endpoint``."""
    import boto3

    return boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                        aws_access_key_id="testing", aws_secret_access_key="testing")


def bucket_keys(s3, name: str) -> list[str]:
    """Every key in bucket ``name``."""
    keys: list[str] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=name):
        keys += [item["Key"] for item in page.get("Contents", [])]
    return sorted(keys)
