"""``expert-jobs serve``: the limits the HTTP server runs with and the uvicorn options they become.

uvicorn's own defaults suit a development server: no bound on connections, a shutdown that waits
for every open checkpoint stream to end (forever), header limits only with the ``h11`` protocol.
:class:`ServerLimits` holds sane bounds for a service on a network; each comes from the command
line, else the configuration's ``[server]`` table (when it has the key), else its default here.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from expert_jobs.api.dispatch import DEFAULT_MAX_BODY_BYTES
from expert_jobs.config import Config
from expert_jobs.domain.errors import UsageError
from expert_jobs.ports.provider import Provider

__all__ = [
    "EXAMPLE_APPLICATION",
    "EXAMPLE_PACE",
    "ServerLimits",
    "example_server_config",
    "server_limits",
    "uvicorn_options",
]

EXAMPLE_APPLICATION = "exampleapplication000001"
"""The application ``serve --example`` makes a key for (the same id at every start, so its earlier
jobs stay visible with the new key)."""
EXAMPLE_PACE = 1.0
"""Seconds each scripted model turn of ``serve --example`` takes, so that its job can be watched."""


@dataclass(frozen=True, slots=True)
class ServerLimits:
    """The bounds of ``expert-jobs serve`` (see docs/operations.md, "Deployment")."""

    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    """The largest request body read (413 past it; checked while reading)."""
    max_header_bytes: int = 16_384
    """The largest request line plus headers (uvicorn's ``h11_max_incomplete_event_size``); more
    is a 400 from the server and the connection is closed."""
    timeout_keep_alive: int = 5
    """Seconds an idle keep-alive connection is kept open."""
    limit_concurrency: int | None = 1_000
    """Connections (or requests in flight) past which new requests get a 503; ``None``: no bound.
    A checkpoint stream holds one for its whole life."""
    backlog: int = 2_048
    """Connections the kernel queues before they are accepted."""
    timeout_graceful_shutdown: int | None = 10
    """Seconds a shutdown waits for requests in flight (checkpoint streams included) before it
    closes them; then the worker stops (its own grace). ``None``: wait for them all."""
    proxy_headers: bool = True
    """Trust ``X-Forwarded-For`` / ``X-Forwarded-Proto`` from ``forwarded_allow_ips``."""
    forwarded_allow_ips: str | None = None
    """The proxies trusted for those headers (comma-separated addresses or networks, ``*`` for
    any); ``None``: uvicorn's default, ``$FORWARDED_ALLOW_IPS`` else ``127.0.0.1``."""

    def __post_init__(self) -> None:
        for name in ("max_body_bytes", "max_header_bytes", "timeout_keep_alive", "backlog"):
            if getattr(self, name) < 1:
                raise UsageError(f"server.{name}: must be at least 1, got {getattr(self, name)}")
        for name in ("limit_concurrency", "timeout_graceful_shutdown"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise UsageError(f"server.{name}: must be at least 1 (or unset), got {value}")


def server_limits(config: Config, **overrides: Any) -> ServerLimits:
    """The limits of ``config``'s ``[server]`` table (its keys named like :class:`ServerLimits`'s
    fields, where it has them), with the ``overrides`` that are not ``None`` on top."""
    values: dict[str, Any] = {}
    for spec in dataclasses.fields(ServerLimits):
        configured = getattr(config.server, spec.name, None)
        if configured is not None:
            values[spec.name] = configured
        if overrides.get(spec.name) is not None:
            values[spec.name] = overrides[spec.name]
    unknown = set(overrides) - {spec.name for spec in dataclasses.fields(ServerLimits)}
    if unknown:
        raise TypeError(f"unknown server limits: {sorted(unknown)}")
    return ServerLimits(**values)


def uvicorn_options(limits: ServerLimits, *, host: str, port: int) -> dict[str, Any]:
    """The keyword arguments of ``uvicorn.run`` / ``uvicorn.Config`` for ``limits``.

    The ``h11`` protocol is chosen whatever else is installed: it is the one that bounds the size
    of the request head. WebSockets are off (the API has none) and the lifespan is required, so a
    service that fails to start stops the server instead of serving without a worker.
    """
    options: dict[str, Any] = {
        "host": host,
        "port": port,
        "http": "h11",
        "ws": "none",
        "lifespan": "on",
        "h11_max_incomplete_event_size": limits.max_header_bytes,
        "timeout_keep_alive": limits.timeout_keep_alive,
        "limit_concurrency": limits.limit_concurrency,
        "backlog": limits.backlog,
        "timeout_graceful_shutdown": limits.timeout_graceful_shutdown,
        "proxy_headers": limits.proxy_headers,
        "server_header": False,
    }
    if limits.forwarded_allow_ips is not None:
        options["forwarded_allow_ips"] = limits.forwarded_allow_ips
    return options


def example_server_config(base: Config, *, pace: float = EXAMPLE_PACE) -> tuple[Config, str, Provider]:
    """What ``expert-jobs serve --example`` serves: ``base`` (the example's configuration) with
    :data:`EXAMPLE_APPLICATION` and a new API key for it (returned; only its hash is kept), and its
    scripted provider paced so that a person can watch the job: each model turn takes about
    ``pace`` seconds, a third of it before the first token, the rest streaming the answer's text
    (0: at full speed)."""
    from expert_jobs.config import ApplicationConfig
    from expert_jobs.providers.scripted import ScriptedProvider
    from expert_jobs.service.applications import generate_key, hash_key

    if pace < 0:
        raise UsageError(f"--pace: must be at least 0 seconds, got {pace}")
    key = generate_key()
    application = ApplicationConfig.model_validate({"name": "example", "keyHashes": [hash_key(key)]})
    config = base.model_copy(update={"applications": {**base.applications, EXAMPLE_APPLICATION: application}})
    scripts = {
        expert: [turn.model_copy(update={"delay": max(turn.delay, pace / 3)}).to_turn() for turn in turns]
        for expert, turns in (base.provider.scripts or {}).items()
    }
    # About 16 chunks of text per turn: a sentence streams over two thirds of the pace.
    provider = ScriptedProvider(scripts, stream_chunk_chars=6, stream_delay=pace * 2 / 3 / 16)
    return config, key, provider
