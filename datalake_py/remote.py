"""Talking to a datalake-server: JSON over HTTP with a bounded timeout and the server's errors re-raised."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

from .errors import DatalakeError, error_named


class ServerConnection:
    """One server: `request("GET", "/status")` returns the decoded JSON or raises the server's error."""

    def __init__(self, url: str, token: str | None = None, timeout: float = 10.0):
        self.url = url.rstrip("/")
        self.token = token
        self.timeout = timeout

    def request(self, method: str, path: str, body: Any = None) -> Any:
        """Send `body` (when given) as JSON; the decoded answer."""
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method, headers={"Accept": "application/json"})
        if data is not None:
            req.add_header("Content-Type", "application/json")
        if self.token:
            req.add_header("Authorization", f"Bearer {self.token}")
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as response:
                return json.loads(response.read() or b"null")
        except urllib.error.HTTPError as exc:
            raise _server_error(exc) from None
        except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
            reason = getattr(exc, "reason", exc)
            raise DatalakeError(
                f"cannot reach the datalake server at {self.url} ({reason}) within {self.timeout:g} s; "
                "check that it runs (`datalake-server --base-path LAKE`) and the URL"
            ) from None


def _server_error(exc: urllib.error.HTTPError) -> DatalakeError:
    try:
        body = json.loads(exc.read())
        cls = error_named(body.get("type"))
        return cls(body["error"])
    except (ValueError, KeyError, AttributeError):
        return DatalakeError(f"the server answered {exc.code} {exc.reason}")
