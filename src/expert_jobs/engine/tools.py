"""Python function tools: a JSON schema from type hints and docstrings, validated arguments, and
every failure turned into an error result for the model (never a crashed job)."""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
import json
import math
import re
from collections.abc import Callable, Mapping
from concurrent.futures import Executor
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, NamedTuple, NotRequired, get_type_hints, overload

import docstring_parser
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, create_model, with_config
from typing_extensions import TypedDict

from expert_jobs.domain.errors import UsageError
from expert_jobs.domain.wire import validation_reason
from expert_jobs.engine.threads import ToolThreads
from expert_jobs.engine.watchdog import deadline_clock
from expert_jobs.ports.provider import ToolDeclaration

if TYPE_CHECKING:
    from expert_jobs.engine.watchdog import Watchdog

__all__ = ["Tool", "ToolOutcome", "Toolset", "clip_result", "tool"]

_NO_LIMIT = math.inf
_ASYNC, _THREAD, _INLINE = "async", "thread", "inline"

ToolOutcome = tuple[str, bool]
"""``(content, is_error)``: what goes back to the model."""


def _parse_docstring(doc: str | None) -> tuple[str, dict[str, str]]:
    """The description (summary and any paragraphs before the first section) and per-parameter
    descriptions of a docstring in Google (``Args:``), NumPy (``Parameters`` / ``----------``) or
    Sphinx (``:param x:``) style, read by ``docstring_parser``. Parameter descriptions are put on
    one line; a docstring it cannot read is the description as it stands, with no parameters."""
    if not doc:
        return "", {}
    text = inspect.cleandoc(doc)
    try:
        parsed = docstring_parser.parse(text)
    except docstring_parser.ParseError:
        return text.strip(), {}
    summary = "\n\n" if parsed.blank_after_short_description else "\n"
    summary = summary.join(part for part in (parsed.short_description, parsed.long_description) if part)
    params = {
        param.arg_name.lstrip("*"): " ".join(param.description.split())
        for param in parsed.params
        if param.description
    }
    return summary.strip(), params


class Tool:
    """A tool the model can call, backed by a Python function (async awaited inline, sync run in a
    worker thread). Build one with :func:`tool` or :meth:`Tool.from_function`.

    ``timeout`` is the most seconds one call may take (``math.inf``: no limit); ``None`` leaves it
    to the expert's ``tool_timeout``, then to the runtime's ``RuntimeSettings.tool_timeout``.

    ``blocking=False`` declares a plain (sync) function quick and free of blocking I/O: it then
    runs inline on the event loop, skipping the trip to a thread (≈ 25 µs a call), but while it runs
    every other job waits, and no timeout can interrupt it. :attr:`blocking` tells whether calls
    run in the runtime's tool threads (``False`` for an ``async def`` tool, awaited on the loop).
    """

    __slots__ = (
        "_fn",
        "_is_async",
        "_mode",
        "_validate",
        "blocking",
        "declaration",
        "description",
        "input_schema",
        "name",
        "timeout",
    )

    def __init__(
        self,
        name: str,
        description: str,
        fn: Callable[..., Any],
        args_model: type[BaseModel],
        *,
        timeout: float | None = None,
        blocking: bool = True,
    ) -> None:
        self.name = name
        self.description = description
        self.timeout = check_timeout(timeout, f"tool {name!r}: timeout")
        if not isinstance(blocking, bool):
            raise UsageError(f"tool {name!r}: blocking must be True or False, got {blocking!r}")
        self._fn = fn
        self._is_async = inspect.iscoroutinefunction(fn)
        self.blocking = blocking and not self._is_async
        # How a call runs: _ASYNC awaited on the loop, _THREAD in the tool threads, _INLINE called
        # on the loop (a sync function declared blocking=False).
        self._mode = _ASYNC if self._is_async else _THREAD if blocking else _INLINE
        self._validate = _model_arguments(args_model)
        schema = args_model.model_json_schema()
        schema.pop("title", None)
        for prop in schema.get("properties", {}).values():
            if isinstance(prop, dict):
                prop.pop("title", None)
        self.input_schema: dict[str, Any] = schema
        self.declaration = ToolDeclaration(name, description, schema)

    @classmethod
    def from_function(
        cls,
        fn: Callable[..., Any],
        *,
        name: str | None = None,
        description: str | None = None,
        timeout: float | None = None,
        blocking: bool = True,
    ) -> Tool:
        """Derive name, description and input schema from ``fn``'s signature and docstring
        (``timeout`` and ``blocking``: see :class:`Tool`)."""
        if not callable(fn):
            raise UsageError(f"a tool must be callable, got {fn!r}")
        tool_name = name or getattr(fn, "__name__", None)
        if not tool_name or not re.match(r"^[a-zA-Z_][a-zA-Z0-9_-]{0,63}$", tool_name):
            raise UsageError(f"tool name {tool_name!r} must match ^[a-zA-Z_][a-zA-Z0-9_-]{{0,63}}$")
        summary, param_docs = _parse_docstring(inspect.getdoc(fn))
        try:
            # include_extras: Annotated[int, Field(ge=1)] keeps its bounds (schema and validation).
            hints = get_type_hints(fn, include_extras=True)
        except Exception as exc:
            raise UsageError(f"tool {tool_name!r}: cannot read type hints: {exc}") from exc
        fields: dict[str, Any] = {}
        arguments: dict[str, Any] = {}
        for param in inspect.signature(fn).parameters.values():
            if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
                raise UsageError(
                    f"tool {tool_name!r}: *args/**kwargs parameters cannot be described to a model"
                )
            if param.kind is param.POSITIONAL_ONLY:
                raise UsageError(
                    f"tool {tool_name!r}: positional-only parameter {param.name!r} is not supported"
                )
            annotation = hints.get(param.name, Any)
            default = ... if param.default is param.empty else param.default
            fields[param.name] = (annotation, Field(default, description=param_docs.get(param.name)))
            arguments[param.name] = annotation if default is ... else NotRequired[annotation]
        model = create_model(f"{tool_name}_arguments", __config__=ConfigDict(extra="forbid"), **fields)
        made = cls(
            tool_name,
            description if description is not None else summary,
            fn,
            model,
            timeout=timeout,
            blocking=blocking,
        )
        # The model is the schema; the same rules as a TypedDict validate a call straight to its
        # keyword arguments (no model instance per call: 2.5x faster). An argument left out takes
        # the function's own default, which is the model's.
        typed = with_config(ConfigDict(extra="forbid"))(TypedDict(f"{tool_name}_arguments", arguments))  # type: ignore[operator]
        made._validate = TypeAdapter(typed).validator.validate_python
        return made

    async def call(
        self,
        arguments: Mapping[str, Any],
        limit: float | None = None,
        watchdog: Watchdog | None = None,
        threads: Executor | None = None,
        task: asyncio.Task[Any] | None = None,
    ) -> ToolOutcome:
        """Validate ``arguments`` and run the function; any failure becomes an error outcome.

        A call that takes more than ``limit`` seconds (when given) is abandoned with the outcome
        ``"Tool <name> timed out after <N> s"``; the engine passes the runtime's ``watchdog`` to
        enforce it (else ``asyncio.timeout`` does) and, when it knows it, the current ``task``. A
        sync function runs in ``threads`` (the runtime's bounded pool), else in the event loop's
        default executor; one declared ``blocking=False`` runs inline, where no limit applies
        (nothing can interrupt it). The engine resolves the timeout (the tool's, the expert's,
        the runtime's); a direct call applies only what it is given.
        """
        try:
            parsed = self._validate(arguments)
        except ValidationError as exc:
            return f"Invalid arguments for tool {self.name}: {validation_reason(exc, 'arguments')}", True
        mode = self._mode
        if mode is _INLINE:
            # Declared non-blocking: called right here, no thread, no deadline (it could not be
            # enforced: the loop itself is busy running it).
            try:
                result = self._fn(**parsed)
            except Exception as exc:
                return f"Tool {self.name} failed: {type(exc).__name__}: {exc}", True
            return _render(result), False
        if watchdog is None or limit is None or limit >= _NO_LIMIT:
            if limit is not None and limit < _NO_LIMIT:
                return await self._timed(parsed, limit, threads)
            try:
                if mode is _ASYNC:
                    result = await self._fn(**parsed)
                else:
                    result = await self._in_thread(parsed, threads)
            except Exception as exc:
                return f"Tool {self.name} failed: {type(exc).__name__}: {exc}", True
            return _render(result), False
        # The engine's way, inline (no extra coroutine per call): the watchdog's deadline.
        if task is None:
            task = asyncio.current_task()
            assert task is not None
        # watchdog.arm(task, limit), inline (see engine/watchdog.py)
        deadlines = watchdog.deadlines
        deadlines[task] = deadline_clock() + limit
        if limit < watchdog.shortest or watchdog.watching is not task.get_loop():
            watchdog.watch(task.get_loop(), limit)
        try:
            if mode is _ASYNC:
                result = await self._fn(**parsed)
            else:
                result = await self._in_thread(parsed, threads)
        except asyncio.CancelledError:
            deadlines.pop(task, None)
            if not watchdog.fired(task):
                raise
            task.uncancel()
            return self._timed_out(limit)
        except Exception as exc:
            deadlines.pop(task, None)
            return f"Tool {self.name} failed: {type(exc).__name__}: {exc}", True
        if deadlines.pop(task, None) is None and watchdog.fired(task):
            # The deadline passed but the tool swallowed its cancellation and answered: keep the
            # answer, and take the cancellation back so it does not hit what runs next.
            task.uncancel()
        return (result if type(result) is str else _render(result)), False

    async def _timed(self, parsed: dict[str, Any], limit: float, threads: Executor | None) -> ToolOutcome:
        """A direct call under a deadline, without the engine's watchdog: ``asyncio.timeout``."""
        deadline = asyncio.timeout(limit)
        try:
            async with deadline:
                if self._is_async:
                    result = await self._fn(**parsed)
                else:
                    result = await self._in_thread(parsed, threads)
        except TimeoutError as exc:
            if not deadline.expired():
                return f"Tool {self.name} failed: {type(exc).__name__}: {exc}", True
            return self._timed_out(limit)
        except Exception as exc:
            return f"Tool {self.name} failed: {type(exc).__name__}: {exc}", True
        return _render(result), False

    def _in_thread(self, parsed: dict[str, Any], threads: Executor | None) -> asyncio.Future[Any]:
        """Run the sync function in ``threads`` (with the caller's context variables, as
        ``asyncio.to_thread`` does): the runtime's :class:`ToolThreads` by their lean way, any
        other executor (or the loop's default one, for ``None``) by ``run_in_executor``."""
        if type(threads) is ToolThreads:
            return threads.call_soon(self._fn, parsed)
        call = functools.partial(contextvars.copy_context().run, self._fn, **parsed)
        return asyncio.get_running_loop().run_in_executor(threads, call)

    def _timed_out(self, limit: float) -> ToolOutcome:
        kind = "" if self._is_async else " (its thread is left to finish on its own)"
        return f"Tool {self.name} timed out after {limit:g} s{kind}", True

    def __repr__(self) -> str:
        return f"Tool({self.name!r})"


def _model_arguments(args_model: type[BaseModel]) -> Callable[[Any], dict[str, Any]]:
    """Validate a call's arguments with ``args_model`` (its validators included) into keyword
    arguments."""
    validate = args_model.__pydantic_validator__.validate_python

    def validated(arguments: Any) -> dict[str, Any]:
        return dict(validate(arguments).__dict__)

    return validated


def check_timeout(timeout: float | None, what: str) -> float | None:
    """``timeout`` if it is ``None`` or a number of seconds > 0 (``math.inf``: no limit), else
    :class:`UsageError` naming ``what``."""
    if timeout is None:
        return None
    if (
        isinstance(timeout, bool)
        or not isinstance(timeout, int | float)
        or math.isnan(timeout)
        or timeout <= 0
    ):
        raise UsageError(f"{what} must be a number of seconds > 0 (math.inf: no limit), got {timeout!r}")
    return float(timeout)


def clip_result(content: str, limit: int) -> str:
    """``content`` cut to ``limit`` characters, with a marker saying how much was cut (the
    caller checks ``len(content) > limit`` first: the common result passes untouched)."""
    cut = len(content) - limit
    return (
        f"{content[:limit]}\n[expert-jobs: tool result truncated: {cut:,} of {len(content):,} characters "
        f"cut; the limit is {limit:,} (max_tool_result_chars)]"
    )


def _render(result: Any) -> str:
    if isinstance(result, str):
        return result
    if result is None:
        return ""
    if isinstance(result, BaseModel):
        return result.model_dump_json()
    try:
        return json.dumps(result, default=str, ensure_ascii=False)
    except (TypeError, ValueError):
        return str(result)


@overload
def tool(fn: Callable[..., Any], /) -> Tool: ...


@overload
def tool(
    fn: Callable[..., Any],
    /,
    *,
    name: str | None = None,
    description: str | None = None,
    timeout: float | None = None,
    blocking: bool = True,
) -> Tool: ...


@overload
def tool(
    *,
    name: str | None = None,
    description: str | None = None,
    timeout: float | None = None,
    blocking: bool = True,
) -> Callable[[Callable[..., Any]], Tool]: ...


def tool(
    fn: Callable[..., Any] | None = None,
    /,
    *,
    name: str | None = None,
    description: str | None = None,
    timeout: float | None = None,
    blocking: bool = True,
) -> Tool | Callable[[Callable[..., Any]], Tool]:
    """Make a :class:`Tool` of a function; use bare (``@tool``) or with options
    (``@tool(name=..., timeout=..., blocking=False)``; ``timeout`` in seconds, ``blocking=False``
    runs a quick plain function inline on the event loop: see :class:`Tool`)."""
    if fn is not None:
        return Tool.from_function(fn, name=name, description=description, timeout=timeout, blocking=blocking)

    def decorate(inner: Callable[..., Any]) -> Tool:
        return Tool.from_function(
            inner, name=name, description=description, timeout=timeout, blocking=blocking
        )

    return decorate


class Toolset(NamedTuple):
    """What a run of one expert offers its model, built once per expert (runs share it)."""

    declarations: tuple[ToolDeclaration, ...]
    """Every tool the model may call: function tools, then interactive tools, then delegates."""
    functions: frozenset[str]
    """The names of the expert's function tools (run by the engine)."""
    interactive: frozenset[str]
    """The names of the interactive tools (root runs only; answered by a person or client)."""
    delegates: dict[str, str]
    """Delegate tool name -> the delegate expert's key."""
    callables: Mapping[str, tuple[Tool, float | None]] = MappingProxyType({})
    """The function tools by name, each with its timeout: the tool's own, else the expert's
    ``tool_timeout`` (``None``: neither says, the runtime's default applies)."""
