"""A real HTTP server for tests: uvicorn on 127.0.0.1 (a free port) in a thread with its own event
loop, run with the options of ``expert-jobs serve`` (``uvicorn_options``), lifespan included; and a
raw-socket client for requests no well-behaved client library sends."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from types import TracebackType
from typing import Any

import uvicorn

from expert_jobs.transports.cli._serve import ServerLimits, uvicorn_options


class LiveServer:
    """``with LiveServer(app) as server:`` serves ``app`` at ``server.url`` until the block ends
    (then shuts down like ``expert-jobs serve`` on SIGTERM: lifespan shutdown included)."""

    def __init__(self, app: Any, limits: ServerLimits | None = None) -> None:
        self.limits = limits or ServerLimits()
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind(("127.0.0.1", 0))
        self.port: int = self._socket.getsockname()[1]
        options = uvicorn_options(self.limits, host="127.0.0.1", port=self.port)
        config = uvicorn.Config(app, **options, log_config=None, access_log=False, log_level="warning")
        self.server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._run, name=f"uvicorn-{self.port}", daemon=True)
        self.error: BaseException | None = None

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>``."""
        return f"http://127.0.0.1:{self.port}"

    def _run(self) -> None:
        try:
            asyncio.run(self.server.serve(sockets=[self._socket]))
        except BaseException as exc:  # reported by __enter__ / __exit__
            self.error = exc

    def __enter__(self) -> LiveServer:
        self._thread.start()
        deadline = time.monotonic() + 60
        while not self.server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self._stop()
                raise RuntimeError(f"the test server did not start: {self.error!r}")
            time.sleep(0.01)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._stop()
        if self.error is not None and exc is None:
            raise RuntimeError("the test server failed") from self.error

    def _stop(self) -> None:
        self.server.should_exit = True
        self._thread.join(timeout=60)
        self._socket.close()
        assert not self._thread.is_alive(), "the test server did not stop within 60 s"


def raw_exchange(port: int, data: bytes, *, timeout: float = 20.0) -> bytes:
    """Send ``data`` as it is, then read until the server closes the connection (``timeout``
    bounds every wait: a server that neither answers nor closes fails the test, never hangs it).
    A reset after the answer is taken as the close."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as conn:
        conn.sendall(data)
        received = b""
        while True:
            try:
                chunk = conn.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            received += chunk
    return received


def parse_response(raw: bytes) -> tuple[int, dict[str, str], bytes]:
    """Status, lower-cased headers and body of one HTTP/1.1 response read whole."""
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return status, headers, body
