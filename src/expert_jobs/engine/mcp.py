"""Tools from MCP servers (the ``mcp`` extra), on the official ``mcp`` SDK's client.

An expert's MCP servers (:class:`McpStdioServer`, a local process spoken to over stdio, and
:class:`McpHttpServer`, a remote server over streamable HTTP) are connected lazily, the first
time a job of the expert starts, and shared by every run of the runtime. Each server's tools are
listed once per connection (and again after a reconnect) and offered to the model with their
input schemas as they are; a call is an :class:`McpTool`, a :class:`~expert_jobs.engine.tools.Tool`
whose call awaits the session's ``call_tool``, so it takes the same path as a Python tool
(concurrency, the tool timeout enforced by the runner's watchdog, errors returned to the model).

A server that dies is noticed (its stream ends); the call in flight gets an error result and the
next call starts it again. :meth:`McpClients.close` (from ``Runtime.close``) stops every server.
The SDK is imported here only, and only when a server is first connected.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict

from expert_jobs.domain.errors import ExpertJobsError, UsageError
from expert_jobs.engine.tools import Tool
from expert_jobs.ports.provider import ToolDeclaration

if TYPE_CHECKING:
    from mcp.types import CallToolResult
    from mcp.types import Tool as ListedTool

    from mcp import ClientSession

__all__ = [
    "CONNECT_TIMEOUT",
    "McpClients",
    "McpError",
    "McpHttpServer",
    "McpServer",
    "McpStdioServer",
    "McpTool",
    "McpToolError",
]

CONNECT_TIMEOUT = 30.0
"""Seconds a server may take to start, answer ``initialize`` and list its tools."""

_CLOSE_TIMEOUT = 5.0
_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$")
_INSTALL_HINT = "MCP servers need the mcp extra: pip install 'expert-jobs[mcp]'"


class McpError(ExpertJobsError):
    """An MCP server could not be started, listed or reached (names the server)."""


class McpToolError(Exception):
    """An MCP tool answered with ``isError``: its text goes back to the model as an error result."""


class McpServer:
    """An MCP server whose tools an expert may call (see :class:`McpStdioServer`,
    :class:`McpHttpServer`).

    ``pick`` keeps only the named tools (each must be one the server offers: else the first job of
    the expert fails naming it), ``omit`` leaves tools out. Two servers with the same settings are
    the same server: one connection serves both.
    """

    __slots__ = ("description", "name", "omit", "pick")

    def __init__(
        self,
        name: str,
        *,
        pick: Sequence[str] | None = None,
        omit: Sequence[str] = (),
        description: str = "",
    ) -> None:
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise UsageError(f"MCP server name {name!r} must match {_NAME.pattern}")
        self.name = name
        self.pick = None if pick is None else _names(pick, f"MCP server {name!r}: pick")
        self.omit = _names(omit, f"MCP server {name!r}: omit")
        self.description = description

    def _identity(self) -> tuple[Any, ...]:
        return (type(self), self.name, self.pick, self.omit)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, McpServer) and self._identity() == other._identity()

    def __hash__(self) -> int:
        return hash(self._identity())

    def _transport(self) -> contextlib.AbstractAsyncContextManager[tuple[Any, Any]]:
        raise NotImplementedError


class McpStdioServer(McpServer):
    """An MCP server run as a local process (``command`` with ``args``), spoken to over stdio.

    ``env`` is added to a minimal default environment (the SDK's: ``PATH``, ``HOME`` and the
    like, not the whole of this process's); ``cwd`` is its working directory. The process starts
    with the first job of an expert using it and stops with ``Runtime.close()``.
    """

    __slots__ = ("args", "command", "cwd", "env")

    def __init__(
        self,
        name: str,
        command: str,
        args: Sequence[str] = (),
        *,
        env: Mapping[str, str] | None = None,
        cwd: str | None = None,
        pick: Sequence[str] | None = None,
        omit: Sequence[str] = (),
        description: str = "",
    ) -> None:
        super().__init__(name, pick=pick, omit=omit, description=description)
        if not isinstance(command, str) or not command.strip():
            raise UsageError(f"MCP server {name!r}: command must be a non-empty string, got {command!r}")
        self.command = command
        self.args = _names(args, f"MCP server {name!r}: args", check=False)
        env = dict(env or {})
        for key, value in env.items():
            if not isinstance(key, str) or not isinstance(value, str):
                raise UsageError(f"MCP server {name!r}: env must map strings to strings, got {key!r}")
        self.env = tuple(sorted(env.items()))
        self.cwd = cwd

    def _identity(self) -> tuple[Any, ...]:
        return (*super()._identity(), self.command, self.args, self.env, self.cwd)

    def _transport(self) -> contextlib.AbstractAsyncContextManager[tuple[Any, Any]]:
        from mcp import StdioServerParameters, stdio_client

        params = StdioServerParameters(
            command=self.command, args=list(self.args), env=dict(self.env) or None, cwd=self.cwd
        )
        return stdio_client(params)

    def __repr__(self) -> str:
        return f"McpStdioServer({self.name!r}, {self.command!r}, {list(self.args)!r})"


class McpHttpServer(McpServer):
    """A remote MCP server over streamable HTTP at ``url`` (``http://`` or ``https://``), sent
    ``headers`` (an ``Authorization`` header, say) with every request."""

    __slots__ = ("headers", "url")

    def __init__(
        self,
        name: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        pick: Sequence[str] | None = None,
        omit: Sequence[str] = (),
        description: str = "",
    ) -> None:
        super().__init__(name, pick=pick, omit=omit, description=description)
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise UsageError(f"MCP server {name!r}: url must start with http:// or https://, got {url!r}")
        self.url = url
        headers = dict(headers or {})
        for key, value in headers.items():
            if not isinstance(key, str) or not isinstance(value, str):
                raise UsageError(f"MCP server {name!r}: headers must map strings to strings, got {key!r}")
        self.headers = tuple(sorted(headers.items()))

    def _identity(self) -> tuple[Any, ...]:
        return (*super()._identity(), self.url, self.headers)

    @contextlib.asynccontextmanager
    async def _transport(self) -> AsyncIterator[tuple[Any, Any]]:
        import httpx2  # the SDK's HTTP client
        from mcp.client.streamable_http import streamable_http_client

        # The SDK's default timeouts (30 s; 300 s to read, a response may be a long event stream).
        timeout = httpx2.Timeout(30.0, read=300.0)
        async with (
            httpx2.AsyncClient(headers=dict(self.headers), timeout=timeout) as client,
            streamable_http_client(self.url, http_client=client) as (read, write),
        ):
            yield read, write

    def __repr__(self) -> str:
        return f"McpHttpServer({self.name!r}, {self.url!r})"


def _names(values: Sequence[str], what: str, *, check: bool = True) -> tuple[str, ...]:
    if isinstance(values, str) or not all(isinstance(v, str) and (v or not check) for v in values):
        raise UsageError(f"{what} must be a list of non-empty strings, got {values!r}")
    return tuple(values)


class _AnyArguments(BaseModel):
    model_config = ConfigDict(extra="allow")


def _as_arguments(arguments: Any) -> dict[str, Any]:
    return {"arguments": dict(arguments)}


class McpTool(Tool):
    """One tool of an MCP server: declared to the model with the server's name, description and
    input schema as listed; a call awaits the server's ``tools/call`` (the server validates the
    arguments). A result with ``isError`` is an error result; text content is joined by
    newlines, other content (images, resources) is given as JSON."""

    __slots__ = ("_connection", "server")

    def __init__(self, connection: _Connection, listed: ListedTool) -> None:
        self._connection = connection
        self.server = connection.server
        super().__init__(listed.name, listed.description or "", self._invoke, _AnyArguments)
        self.input_schema = dict(listed.input_schema)
        self.declaration = ToolDeclaration(self.name, self.description, self.input_schema)
        self._validate = _as_arguments

    async def _invoke(self, arguments: dict[str, Any]) -> str:
        result = await self._connection.call(self.name, arguments)
        text = _render_result(result)
        if result.is_error:
            raise McpToolError(text)
        return text

    def __repr__(self) -> str:
        return f"McpTool({self.name!r}, server={self.server.name!r})"


def _render_result(result: CallToolResult) -> str:
    parts: list[str] = []
    for block in result.content:
        text = getattr(block, "text", None)
        if getattr(block, "type", None) == "text" and isinstance(text, str):
            parts.append(text)
        else:
            parts.append(json.dumps(block.model_dump(mode="json", by_alias=True, exclude_none=True)))
    if not parts and result.structured_content is not None:
        return json.dumps(result.structured_content, ensure_ascii=False)
    return "\n".join(parts)


class _Connection:
    """One server's connection: a task holds the SDK's transport and session open (their context
    managers must be entered and left in one task) until it is stopped or the server goes away."""

    def __init__(self, server: McpServer, on_change: Callable[[], None]) -> None:
        self.server = server
        self.tools: tuple[McpTool, ...] | None = None
        self._on_change = on_change
        self._listing: tuple[Any, ...] | None = None
        self._session: ClientSession | None = None
        self._ready: asyncio.Future[ClientSession] | None = None
        self._holder: asyncio.Task[None] | None = None
        self._stop: asyncio.Event | None = None

    async def session(self) -> ClientSession:
        """The live session, connecting first (once for every caller waiting) if there is none."""
        session = self._session
        if session is not None:
            return session
        ready = self._ready
        if ready is None or ready.done():
            ready = self._ready = asyncio.get_running_loop().create_future()
            ready.add_done_callback(_retrieve)
            self._stop = asyncio.Event()
            self._holder = asyncio.create_task(
                self._hold(ready, self._stop), name=f"expert-jobs-mcp-{self.server.name}"
            )
        return await asyncio.shield(ready)

    async def call(self, name: str, arguments: dict[str, Any]) -> CallToolResult:
        """``tools/call`` on the live session; a lost connection is dropped (the next call starts
        the server again) and raised as :class:`McpError`."""
        from mcp.types import CONNECTION_CLOSED

        from mcp import MCPError

        session = await self.session()
        try:
            return await session.call_tool(name, arguments)
        except MCPError as exc:
            if exc.code == CONNECTION_CLOSED:
                self._drop(session)
                raise McpError(
                    f"MCP server {self.server.name!r} went away during the call "
                    "(the next call connects again)"
                ) from None
            raise McpError(f"MCP server {self.server.name!r}: {exc.message}") from None
        except Exception as exc:
            self._drop(session)
            raise McpError(
                f"MCP server {self.server.name!r} could not be reached: {type(exc).__name__}: {exc}"
            ) from None

    def _drop(self, session: ClientSession) -> None:
        if self._session is session:
            self._session = None
            if self._stop is not None:
                self._stop.set()

    async def _hold(self, ready: asyncio.Future[ClientSession], stop: asyncio.Event) -> None:
        try:
            from mcp import ClientSession
        except ImportError as exc:
            ready.set_exception(McpError(f"MCP server {self.server.name!r}: {_INSTALL_HINT} ({exc})"))
            return
        import anyio

        session: ClientSession | None = None
        try:
            async with contextlib.AsyncExitStack() as stack:
                async with asyncio.timeout(CONNECT_TIMEOUT):
                    read, write = await stack.enter_async_context(self.server._transport())
                    # Relay the server's messages, to notice its end (a process that died).
                    relay, relayed = anyio.create_memory_object_stream[Any](0)
                    session = await stack.enter_async_context(ClientSession(relayed, write))
                    lost = asyncio.create_task(_relay(read, relay))
                    stack.callback(lost.cancel)
                    await session.initialize()
                    listed = await _list_tools(session)
                self._adopt(listed)
                self._session = session
                ready.set_result(session)
                halt = asyncio.create_task(stop.wait())
                stack.callback(halt.cancel)
                await asyncio.wait((lost, halt), return_when=asyncio.FIRST_COMPLETED)
                if self._session is session:
                    self._session = None
        except asyncio.CancelledError:
            if not ready.done():
                ready.set_exception(McpError(f"MCP server {self.server.name!r}: connecting was canceled"))
            raise
        except Exception as exc:
            if not ready.done():
                ready.set_exception(self._start_error(exc))
        finally:
            if session is not None and self._session is session:
                self._session = None

    def _start_error(self, exc: BaseException) -> McpError:
        if isinstance(exc, McpError):
            return exc
        if isinstance(exc, TimeoutError):
            return McpError(
                f"MCP server {self.server.name!r} did not connect and list its tools "
                f"within {CONNECT_TIMEOUT:g} s"
            )
        while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
            exc = exc.exceptions[0]
        verb = "start" if isinstance(self.server, McpStdioServer) else "connect"
        return McpError(f"MCP server {self.server.name!r} could not {verb}: {type(exc).__name__}: {exc}")

    def _adopt(self, listed: list[ListedTool]) -> None:
        """Keep the listing (``pick`` then ``omit``); rebuild the tools if it changed."""
        server = self.server
        by_name = {each.name: each for each in listed}
        if server.pick is not None:
            missing = [name for name in server.pick if name not in by_name]
            if missing:
                raise McpError(
                    f"MCP server {server.name!r}: pick names {missing} that the server does not offer "
                    f"(it offers {sorted(by_name)})"
                )
            names = list(server.pick)
        else:
            names = list(by_name)
        names = [name for name in names if name not in server.omit]
        listing = tuple(
            (name, by_name[name].description, json.dumps(by_name[name].input_schema, sort_keys=True))
            for name in names
        )
        if listing != self._listing:
            self._listing = listing
            self.tools = tuple(McpTool(self, by_name[name]) for name in names)
            self._on_change()

    async def close(self) -> None:
        """Stop the holder (the SDK then ends the server process); wait a little for it."""
        holder, self._holder = self._holder, None
        self._session = None
        if self._stop is not None:
            self._stop.set()
        if holder is None or holder.done():
            return
        if holder.get_loop() is not asyncio.get_running_loop():
            return
        done, _ = await asyncio.wait((holder,), timeout=_CLOSE_TIMEOUT)
        if not done:
            holder.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await holder


def _retrieve(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()


async def _relay(read: Any, relay: Any) -> None:
    """Pass the transport's messages on to the session until the transport ends."""
    async with relay:
        async for message in read:
            await relay.send(message)


async def _list_tools(session: ClientSession) -> list[ListedTool]:
    from mcp.types import PaginatedRequestParams

    result = await session.list_tools()
    tools = list(result.tools)
    while result.next_cursor:
        result = await session.list_tools(params=PaginatedRequestParams(cursor=result.next_cursor))
        tools.extend(result.tools)
    return tools


class McpClients:
    """A runtime's connections to MCP servers, one per distinct server; ``on_change`` is called
    when a server's tools change (first listing, or a different one after a reconnect)."""

    def __init__(self, on_change: Callable[[], None]) -> None:
        self._on_change = on_change
        self._connections: dict[McpServer, _Connection] = {}

    def _connection(self, server: McpServer) -> _Connection:
        connection = self._connections.get(server)
        if connection is None:
            connection = self._connections[server] = _Connection(server, self._on_change)
        return connection

    def listed(self, servers: Iterable[McpServer]) -> bool:
        """Whether every one of ``servers`` has had its tools listed."""
        return all(self._connection(each).tools is not None for each in servers)

    async def prepare(self, servers: Iterable[McpServer]) -> None:
        """Connect the servers not yet listed (concurrently); raise the first failure."""
        pending = [self._connection(each) for each in servers]
        pending = [each for each in pending if each.tools is None]
        if pending:
            await asyncio.gather(*(each.session() for each in pending))

    def tools(self, server: McpServer) -> tuple[McpTool, ...]:
        """The server's tools as last listed (none before its first listing)."""
        return self._connection(server).tools or ()

    async def close(self) -> None:
        """Stop every server (their processes end)."""
        connections = list(self._connections.values())
        await asyncio.gather(*(each.close() for each in connections), return_exceptions=True)


def required_env(names: Iterable[str], where: str) -> dict[str, str]:
    """The values of the environment variables ``names`` (perstack.toml's ``requiredEnv``), else
    :class:`UsageError` naming the missing ones."""
    names = list(names)
    missing = [name for name in names if name not in os.environ]
    if missing:
        raise UsageError(f"{where}: the environment variables {missing} are required but not set")
    return {name: os.environ[name] for name in names}
