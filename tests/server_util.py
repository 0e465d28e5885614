"""Starting a real datalake-server subprocess on a free loopback port for tests."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, lake: Path, *args: str, env: dict | None = None):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = lake.parent / f"server-{self.port}.log"
        self.proc = subprocess.Popen(
            [sys.executable, "-c", "from datalake.server.main import main; main()", "--base-path", str(lake),
             "--port", str(self.port), "--num-proc", "2", *args],
            stdout=self.log.open("w"), stderr=subprocess.STDOUT, env={**os.environ, **(env or {})},
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                self.get("/health")
                return
            except (urllib.error.URLError, ConnectionError):
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"server did not start: {self.log.read_text()}")
                time.sleep(0.1)

    def call(self, method: str, path: str, token: str | None = None, data: bytes | None = None) -> tuple[int, dict]:
        req = urllib.request.Request(self.url + path, method=method, data=data)
        if token:
            req.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())

    def get(self, path: str, token: str | None = None) -> dict:
        status, body = self.call("GET", path, token)
        assert status == 200, body
        return body

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.terminate()
        return self.proc.wait(timeout=60)

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(timeout=30)
