"""A real MCP server for the tests, written with the SDK's server API (``MCPServer``, formerly
FastMCP). ``python server.py`` serves over stdio; ``python server.py --http PORT`` serves over
streamable HTTP on 127.0.0.1:PORT (path ``/mcp``). ``MCP_TEST_TOOLS=a,b`` keeps only those tools
(``MCP_TEST_TOOLS_FILE``: read from that file, at start)."""

from __future__ import annotations

import asyncio
import os
import sys

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError

server = MCPServer("expert-jobs-tests", log_level="ERROR")


@server.tool()
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


@server.tool()
def echo(text: str) -> str:
    """Say the text back, with the server's marker (env MCP_TEST_MARK)."""
    return f"{os.environ.get('MCP_TEST_MARK', '')}{text}"


@server.tool()
def pid() -> int:
    """The server process's id."""
    return os.getpid()


@server.tool()
def fail(reason: str) -> str:
    """Always fails with the reason."""
    raise ToolError(reason)


@server.tool()
async def crash() -> str:
    """Kills the server process in the middle of the call."""
    os._exit(3)


@server.tool()
async def hang() -> str:
    """Never answers."""
    await asyncio.Event().wait()
    return "unreachable"


keep = os.environ.get("MCP_TEST_TOOLS")
if os.environ.get("MCP_TEST_TOOLS_FILE"):
    with open(os.environ["MCP_TEST_TOOLS_FILE"], encoding="utf-8") as listed:
        keep = listed.read().strip()
if keep:
    for name in ("add", "echo", "pid", "fail", "crash", "hang"):
        if name not in keep.split(","):
            server.remove_tool(name)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--http":
        server.run("streamable-http", host="127.0.0.1", port=int(sys.argv[2]))
    else:
        server.run()
