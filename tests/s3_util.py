"""A real S3 and Glue server for tests (moto's, on loopback), a bucket per test, and a publish
killed mid-way in a child process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

import pandas as pd

from conftest import image_bytes, process
from datalake import DatalakeClient

SECRET = "dummy-secret-never-published"
OCR = {"lang": "ko", "src": "real"}


@pytest.fixture(scope="module")
def endpoint() -> str:
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def store(endpoint, monkeypatch, request):
    """An s3fs file system on the server and a fresh bucket named for the test; AWS settings dummy."""
    import s3fs

    for name in [k for k in os.environ if k.startswith("AWS_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "dummy-key")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")  # never ask the network for credentials
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_ENDPOINT_URL_GLUE", endpoint)
    fs = s3fs.S3FileSystem(client_kwargs={"endpoint_url": endpoint}, skip_instance_cache=True,
                           use_listings_cache=False)
    bucket = request.node.name.replace("_", "-")[:50].strip("-").lower()
    fs.mkdir(bucket)
    return fs, bucket


# A publish in a child process, killed by SIGKILL right after its n-th object is stored (the
# n-th PUT the object store answered), whatever the machine's speed; with a fifth argument
# `pause` it prints "paused" there instead and waits for a line on its stdin.
KILLED_PUBLISHER = r"""
import os, signal, sys
import s3fs.core
from datalake import DatalakeClient

sent, call = [0], s3fs.core.S3FileSystem._call_s3


async def counting(self, method, *args, **kwargs):
    answer = await call(self, method, *args, **kwargs)
    if getattr(method, "__name__", method) in ("put_object", "complete_multipart_upload"):
        sent[0] += 1
        if sent[0] == int(sys.argv[4]) and sys.argv[5:] == ["pause"]:
            print("paused", flush=True)
            sys.stdin.readline()
        elif sent[0] == int(sys.argv[4]):
            os.kill(os.getpid(), signal.SIGKILL)
    return answer


s3fs.core.S3FileSystem._call_s3 = counting
s3fs.core.S3FileSystem.call_s3 = s3fs.core.sync_wrapper(counting)  # what an open file calls
DatalakeClient(base_path=sys.argv[1]).publish(sys.argv[2], endpoint_url=sys.argv[3])
"""


def killed_publish(client: DatalakeClient, target: str, endpoint: str, after: int) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DATALAKE_")}
    done = subprocess.run([sys.executable, "-c", KILLED_PUBLISHER, str(client.base_path), target, endpoint,
                           str(after)], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == -signal.SIGKILL, done.stderr


def publishable_lake(path: Path) -> DatalakeClient:
    """A lake of 8 OCR rows (dataset docs) and 4 raw images, built, with the collection `train`."""
    c = DatalakeClient(user_id="alice", base_path=path, create_dirs=True, num_proc=1)
    upload_ocr(c, range(8), "docs")
    c.upload_raw(pd.DataFrame({"image": [image_bytes(i) for i in range(20, 24)]}), provider="huggingface", dataset="raw")
    process(c)
    c.build_db()
    c.import_collection(c.search(tasks=["ocr"]), name="train")
    return c


def upload_ocr(c: DatalakeClient, seeds, dataset: str, overwrite: bool = False) -> None:
    c.upload_task(pd.DataFrame({"image": [image_bytes(i) for i in seeds], "label": [f"t{i}" for i in seeds]}),
                  provider="huggingface", dataset=dataset, task="ocr", variant="v1", meta=OCR, overwrite=overwrite)
