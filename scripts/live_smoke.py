#!/usr/bin/env python
"""Live smoke test of the provider adapters against the real APIs (NOT part of the test suite).

For each provider whose key is set in the environment (``ANTHROPIC_API_KEY``, ``GEMINI_API_KEY`` or
``GOOGLE_API_KEY``, ``OPENAI_API_KEY``, ``DEEPSEEK_API_KEY``), one tiny conversation on a cheap model:
the model is asked to call an ``add`` tool, gets the result back (so reasoning replay, tool-call ids and
result ordering go through the real API), and answers. Providers without a key are skipped with a
clear message. ``--plain`` makes it a single generation without tools.

    python scripts/live_smoke.py
    python scripts/live_smoke.py --model gemini-3-pro-preview --model o4-mini
    python scripts/live_smoke.py --plain

Exit status: 0 when every tried provider answered, 1 otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time

from expert_jobs.domain.errors import ProviderError, ProviderKeyMissing, UnknownModel
from expert_jobs.domain.messages import (
    AssistantMessage,
    Message,
    ToolCall,
    ToolResult,
    ToolResultsMessage,
    UserMessage,
)
from expert_jobs.domain.usage import ZERO_USAGE
from expert_jobs.ports.provider import GenerationRequest, ToolDeclaration
from expert_jobs.providers.registry import ProviderRegistry

DEFAULT_MODELS = ("claude-haiku-4-5", "gemini-2.5-flash", "gpt-5-nano", "deepseek-chat")

ADD = ToolDeclaration(
    "add",
    "Add two integers and return the sum.",
    {
        "type": "object",
        "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
        "required": ["a", "b"],
    },
)
SYSTEM = "You are a terse assistant. Use the tools you are given instead of computing yourself."


async def smoke(registry: ProviderRegistry, model: str, *, plain: bool) -> str:
    """Run the conversation on ``model``; the final answer and the summed usage, as one line."""
    provider = registry.resolve(model)
    tools = () if plain else (ADD,)
    question = "Say hello in three words." if plain else "What is 2 + 3? Use the add tool."
    history: list[Message] = [UserMessage.text(question)]
    usage = ZERO_USAGE
    for _ in range(4):
        response = await provider.generate(
            GenerationRequest(model, SYSTEM, tuple(history), tools, temperature=0.0, timeout=120.0)
        )
        usage = usage + response.usage
        answer = AssistantMessage(response.parts, response.provider, response.model)
        history.append(answer)
        if not answer.tool_calls:
            return f"{answer.text.strip()!r} usage={usage.to_wire()}"
        history.append(ToolResultsMessage(tuple(_run(call) for call in answer.tool_calls)))
    return f"no final answer after 4 generations; usage={usage.to_wire()}"


def _run(call: ToolCall) -> ToolResult:
    try:
        return ToolResult(call.id, call.name, str(int(call.arguments["a"]) + int(call.arguments["b"])))
    except (KeyError, TypeError, ValueError) as exc:
        return ToolResult(call.id, call.name, f"bad arguments: {exc}", True)


async def main(argv: list[str]) -> int:
    """Smoke-test each model; print one line per model."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", action="append", help="a model id to try (repeatable)")
    parser.add_argument("--plain", action="store_true", help="one generation without tools")
    args = parser.parse_args(argv)
    registry = ProviderRegistry()
    failures = 0
    for model in args.model or DEFAULT_MODELS:
        try:
            registry.check_key(model)
        except ProviderKeyMissing as exc:
            print(f"SKIP {model}: {exc}")
            continue
        except UnknownModel as exc:
            print(f"FAIL {model}: {exc}")
            failures += 1
            continue
        started = time.monotonic()
        try:
            line = await smoke(registry, model, plain=args.plain)
        except ImportError as exc:
            print(f"SKIP {model}: {exc}")
            continue
        except ProviderError as exc:
            print(f"FAIL {model}: {exc.kind} (retryable={exc.retryable}): {exc}")
            failures += 1
            continue
        print(f"OK   {model} in {time.monotonic() - started:.1f}s: {line}")
    await registry.aclose()
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1:])))
