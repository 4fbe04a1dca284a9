"""The end-to-end setup shared by the browser tests and ``scripts/dashboard_screenshots.py``: a
real ``expert-jobs serve`` process on SQLite (a free port, its output read for the key it prints)
and a headless Chromium driven by Playwright (the system's browser: nothing is downloaded).

Chromium is looked for at ``$EXPERT_JOBS_CHROMIUM``, then ``/usr/bin/chromium``,
``/usr/bin/chromium-browser``, ``/usr/bin/google-chrome``; :func:`browser_or_skip_reason` says why
none can be had (the tests skip with that message).
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import Any

from expert_jobs.service import generate_key, hash_key

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
"""Flags for a headless Chromium that talks to nothing but the test server."""

_CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome")


def chromium_path() -> str | None:
    """The Chromium to drive, or ``None``."""
    given = os.environ.get("EXPERT_JOBS_CHROMIUM")
    if given:
        return given if Path(given).is_file() else None
    for candidate in _CANDIDATES:
        if Path(candidate).is_file():
            return candidate
    found = shutil.which("chromium")
    return found


def browser_or_skip_reason() -> str | None:
    """``None`` when a browser can be driven, else why not (the message the tests skip with)."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the browser tests need the playwright package (pip install -e '.[dev]')"
    if chromium_path() is None:
        return (
            "the browser tests need Chromium: none at $EXPERT_JOBS_CHROMIUM, "
            + ", ".join(_CANDIDATES)
            + " (Debian: apt-get install chromium)"
        )
    return None


def launch(playwright: Any) -> Any:
    """A headless Chromium browser of ``playwright`` (``sync_playwright()``'s)."""
    return playwright.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class Serve:
    """``with Serve(args, cwd) as server:`` runs ``expert-jobs serve ARGS --port P`` until the
    block ends; ``server.url`` is the dashboard's, ``server.output`` what it printed on stdout."""

    def __init__(self, args: list[str], cwd: Path, *, startup: float = 30.0) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/ui/"
        self._cwd = cwd
        self._args = [
            sys.executable,
            "-m",
            "expert_jobs.transports.cli",
            "serve",
            *args,
            "--port",
            str(self.port),
        ]
        self._startup = startup
        self._log = cwd / f"serve-{self.port}.log"
        self._out = cwd / f"serve-{self.port}.out"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def output(self) -> str:
        """What the server printed on stdout so far."""
        return self._out.read_text(encoding="utf-8") if self._out.exists() else ""

    def __enter__(self) -> Serve:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        env.pop("EXPERT_JOBS_CONFIG", None)
        with self._out.open("wb") as out, self._log.open("wb") as log:
            self.process = subprocess.Popen(self._args, cwd=self._cwd, stdout=out, stderr=log, env=env)
        deadline = time.monotonic() + self._startup
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"expert-jobs serve exited {self.process.returncode}:\n{self._log.read_text()}"
                )
            try:
                with urllib.request.urlopen(self.url + "login", timeout=2) as answer:
                    if answer.status == 200:
                        return self
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"expert-jobs serve did not answer within {self._startup} s")
            time.sleep(0.1)

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL after 10 s)."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


def example_server(cwd: Path, *, pace: float = 0.3) -> Serve:
    """``expert-jobs serve --example`` on a SQLite file in ``cwd``; read its key with
    :func:`printed_key` once started."""
    args = ["--example", "--pace", str(pace), "--store", f"sqlite:///{cwd / 'example.db'}"]
    return Serve([*args, "--timeout-graceful-shutdown", "1"], cwd)


def printed_key(server: Serve) -> str:
    """The API key ``serve --example`` printed."""
    found = re.search(r"API key:\s+(\S+)", server.output)
    assert found is not None, f"no key in the output of serve --example:\n{server.output}"
    return found.group(1)


TENANT_A = "tenantaaaaaaaaaaaaaaaaaa"
TENANT_B = "tenantbbbbbbbbbbbbbbbbbb"


def tenants_server(cwd: Path) -> tuple[Serve, dict[str, str]]:
    """A server of two applications (keys ``a`` and ``b``, returned) and a ``slow@1.0.0`` expert
    whose first model turn takes a minute (a job that stays running until it is canceled)."""
    keys = {"a": generate_key(), "b": generate_key()}
    config = cwd / "tenants.toml"
    config.write_text(
        textwrap.dedent(
            f"""
            store = "sqlite:///{cwd / "tenants.db"}"

            [provider]
            providerName = "scripted"

            [[provider.scripts."slow@1.0.0"]]
            text = "Thinking it over for a long while."
            delay = 60

            [applications."{TENANT_A}"]
            name = "alpha"
            keyHashes = ["{hash_key(keys["a"])}"]

            [applications."{TENANT_B}"]
            name = "beta"
            keyHashes = ["{hash_key(keys["b"])}"]

            [experts."slow"]
            version = "1.0.0"
            instruction = "Take your time."
            """
        ),
        encoding="utf-8",
    )
    return Serve(["--config", str(config), "--timeout-graceful-shutdown", "1"], cwd), keys


def sign_in(page: Any, url: str, key: str) -> None:
    """Sign ``page`` in at the dashboard ``url`` with ``key`` (through the form)."""
    page.goto(url)
    page.fill("#key", key)
    page.click("form.stack button[type=submit]")
    page.wait_for_selector("[data-testid=jobs-table]")
