"""The lake's pages served from a thread of the calling process: `datalake browse` and
`client.browse()`, no server to run first."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

from aiohttp import web

from ..errors import DatalakeError
from .app import create_pages_app
from .main import is_loopback


class Browsing:
    """The pages of one lake on `host:port` (port 0: any free port), until `stop()` or the process ends.

    Off loopback the pages need `token`. In a notebook the object shows as a link to the pages."""

    def __init__(self, base_path: str | Path, host: str = "127.0.0.1", port: int = 0, token: str | None = None):
        if not is_loopback(host) and not token:
            raise DatalakeError(f"serving the pages on {host} needs a token: give one (--token-file FILE or "
                                "DATALAKE_TOKEN), or serve on 127.0.0.1")
        app = create_pages_app(str(base_path), token)
        self._loop = asyncio.new_event_loop()
        self._runner = web.AppRunner(app, access_log=None)
        try:
            self._loop.run_until_complete(self._runner.setup())
            self._loop.run_until_complete(web.TCPSite(self._runner, host, port).start())
        except OSError as exc:
            self._loop.run_until_complete(self._runner.cleanup())
            self._loop.close()
            raise DatalakeError(f"cannot serve the pages on {host}:{port}: {exc.strerror}; "
                                "choose another port (--port, 0 for any free one)") from None
        bound_host, bound_port = self._runner.addresses[0][:2]
        self.url = f"http://{bound_host if ':' not in bound_host else f'[{bound_host}]'}:{bound_port}/"
        self._thread = threading.Thread(target=self._loop.run_forever, name="datalake-browse", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop serving and release the port."""
        if not self._thread.is_alive():
            return
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(timeout=30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=30)
        self._loop.close()

    def __repr__(self) -> str:
        return self.url

    def _repr_html_(self) -> str:
        return f'<a href="{self.url}" target="_blank">{self.url}</a>'
