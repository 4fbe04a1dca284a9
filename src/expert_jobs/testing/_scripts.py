"""Hypothesis strategies for what a model might do to *your* expert: scripts of turns for the
:class:`~expert_jobs.ScriptedProvider` (text replies, tool calls to the expert's own tools with
arguments valid against their JSON schemas, thinking, failures of every kind, delays), and helpers
to run a job to rest and read its runs' histories when stating invariants.

::

    runtime = make_my_runtime()                       # your experts and tools
    @given(scripts_for(runtime, "calculator@1.0.0"))
    def test_whatever_the_model_does(scripts): ...     # ScriptedProvider(scripts)
"""

from __future__ import annotations

import math
import re
from collections.abc import Collection, Iterable, Mapping, Sequence
from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING, Any

from hypothesis import strategies as st
from hypothesis.strategies import SearchStrategy
from pydantic_core import to_jsonable_python

from expert_jobs.domain.errors import PROVIDER_ERROR_KINDS, ProviderError, UsageError
from expert_jobs.domain.messages import Message
from expert_jobs.domain.output import WRAPPER_KEY, OutputInvalid, OutputSpec, output_json, output_spec
from expert_jobs.domain.status import JobStatus
from expert_jobs.domain.usage import Usage
from expert_jobs.ports.provider import ToolDeclaration
from expert_jobs.providers.scripted import Call, Fail, Reply, ToolCalls, Turn

if TYPE_CHECKING:
    from expert_jobs.domain.experts import ExpertDefinition
    from expert_jobs.domain.job import Job
    from expert_jobs.engine.runtime import Runtime

__all__ = [
    "FAILURE_KINDS",
    "NON_RETRYABLE_KINDS",
    "RETRYABLE_KINDS",
    "arguments_for",
    "invalid_answers",
    "run_histories",
    "run_until_settled",
    "scripts_for",
    "turns_for",
    "valid_answers",
]

RETRYABLE_KINDS: tuple[str, ...] = tuple(sorted(ProviderError.RETRYABLE_KINDS))
"""Failure kinds the engine retries (up to the job's ``maxRetries`` in a row)."""
NON_RETRYABLE_KINDS: tuple[str, ...] = tuple(sorted(set(PROVIDER_ERROR_KINDS) - set(RETRYABLE_KINDS)))
"""Failure kinds that fail the run at once."""
FAILURE_KINDS: tuple[str, ...] = RETRYABLE_KINDS + NON_RETRYABLE_KINDS
"""Every failure kind a provider reports."""

_MAX_COLLECTION = 4
"""Arrays and maps drawn for tool arguments have at most this many items beyond their minimum."""
_MAX_TEXT = 24
"""Strings drawn for tool arguments have at most this many characters beyond their minimum."""
_MAX_DEPTH = 8
"""``$ref`` chains and nested schemas deeper than this are refused (a recursive schema)."""

# Printable text only: no control characters (PostgreSQL refuses NUL) and no lone surrogates.
_CHARACTERS = st.characters(blacklist_categories=("Cs", "Cc"))


def _text(min_size: int = 0, max_size: int = _MAX_TEXT) -> SearchStrategy[str]:
    return st.text(_CHARACTERS, min_size=min_size, max_size=max_size)


# --------------------------------------------------------------------------- JSON schema values


class _Schemas:
    """Turns a JSON schema (the subset tool schemas use: pydantic's output and hand-written ones)
    into a strategy of values valid against it. ``$ref`` resolves within ``root``."""

    def __init__(self, root: Mapping[str, Any]) -> None:
        self.root = root

    def resolve(self, ref: str) -> Mapping[str, Any]:
        if not ref.startswith("#/"):
            raise UsageError(f"arguments_for: only local $ref are supported, got {ref!r}")
        node: Any = self.root
        for part in ref[2:].split("/"):
            part = part.replace("~1", "/").replace("~0", "~")
            if not isinstance(node, Mapping) or part not in node:
                raise UsageError(f"arguments_for: $ref {ref!r} does not resolve")
            node = node[part]
        if not isinstance(node, Mapping):
            raise UsageError(f"arguments_for: $ref {ref!r} is not a schema")
        return node

    def values(self, schema: Mapping[str, Any] | bool, depth: int = 0) -> SearchStrategy[Any]:
        if depth > _MAX_DEPTH:
            raise UsageError("arguments_for: the schema nests too deeply (a recursive $ref?)")
        if schema is True or schema == {}:
            return self.any_json()
        if schema is False:
            raise UsageError("arguments_for: the schema 'false' has no valid value")
        assert isinstance(schema, Mapping)
        if "$ref" in schema:
            merged = {**self.resolve(str(schema["$ref"])), **{k: v for k, v in schema.items() if k != "$ref"}}
            return self.values(merged, depth + 1)
        if "const" in schema:
            return st.just(schema["const"])
        if "enum" in schema:
            return st.sampled_from(list(schema["enum"]))
        for key in ("anyOf", "oneOf"):
            if schema.get(key):
                rest = {k: v for k, v in schema.items() if k != key}
                options = [{**rest, **option} for option in schema[key]]
                return st.one_of([self.values(option, depth + 1) for option in options])
        if schema.get("allOf"):
            merged = {k: v for k, v in schema.items() if k != "allOf"}
            for part in schema["allOf"]:
                part = self.resolve(part["$ref"]) if "$ref" in part else part
                merged = _merge(merged, part)
            return self.values(merged, depth + 1)
        kind = schema.get("type")
        if kind is None:
            kind = "object" if "properties" in schema else None
        if isinstance(kind, list):
            return st.one_of([self.values({**schema, "type": k}, depth + 1) for k in kind])
        if kind is None:
            return self.any_json()
        return self.typed(str(kind), schema, depth)

    def typed(self, kind: str, schema: Mapping[str, Any], depth: int) -> SearchStrategy[Any]:
        if kind == "object":
            return self.objects(schema, depth)
        if kind == "array":
            return self.arrays(schema, depth)
        if kind == "string":
            return _strings(schema)
        if kind == "integer":
            return _integers(schema)
        if kind == "number":
            return _numbers(schema)
        if kind == "boolean":
            return st.booleans()
        if kind == "null":
            return st.none()
        raise UsageError(f"arguments_for: unknown JSON schema type {kind!r}")

    def objects(self, schema: Mapping[str, Any], depth: int) -> SearchStrategy[dict[str, Any]]:
        properties: Mapping[str, Any] = schema.get("properties") or {}
        required = [name for name in schema.get("required", ()) if name in properties]
        missing = [name for name in schema.get("required", ()) if name not in properties]
        extra = schema.get("additionalProperties", True)
        fixed = {name: self.values(properties[name], depth + 1) for name in required}
        optional = {
            name: self.values(sub, depth + 1) for name, sub in properties.items() if name not in required
        }
        for name in missing:  # required but undescribed: any value the extra schema allows
            fixed[name] = self.values(extra if isinstance(extra, Mapping) else {}, depth + 1)
        made: SearchStrategy[dict[str, Any]] = st.fixed_dictionaries(fixed, optional=optional)
        if isinstance(extra, Mapping) and extra and not properties:
            # a map (``dict[str, int]``): free names, values of the extra schema
            names = _text(1, 12).filter(lambda k: k not in fixed)
            low = max(0, int(schema.get("minProperties", 0)) - len(fixed))
            high = max(low, int(schema.get("maxProperties", low + _MAX_COLLECTION)) - len(fixed))
            free = st.dictionaries(names, self.values(extra, depth + 1), min_size=low, max_size=high)
            made = st.tuples(made, free).map(lambda pair: {**pair[1], **pair[0]})
        return made

    def arrays(self, schema: Mapping[str, Any], depth: int) -> SearchStrategy[list[Any]]:
        prefix = schema.get("prefixItems")
        if prefix:
            return st.tuples(*(self.values(sub, depth + 1) for sub in prefix)).map(list)
        items = schema.get("items", {})
        low = int(schema.get("minItems", 0))
        high = int(schema.get("maxItems", low + _MAX_COLLECTION))
        element = self.values(items, depth + 1)
        if schema.get("uniqueItems"):
            return st.lists(element, min_size=low, max_size=high, unique_by=repr)
        return st.lists(element, min_size=low, max_size=high)

    def any_json(self) -> SearchStrategy[Any]:
        leaves = st.one_of(st.none(), st.booleans(), st.integers(-1000, 1000), _text(0, 12))
        return st.recursive(
            leaves,
            lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_text(1, 8), inner, max_size=3),
            max_leaves=6,
        )


def _merge(a: Mapping[str, Any], b: Mapping[str, Any]) -> dict[str, Any]:
    merged = {**a, **b}
    if "properties" in a or "properties" in b:
        merged["properties"] = {**(a.get("properties") or {}), **(b.get("properties") or {})}
    if "required" in a or "required" in b:
        merged["required"] = [*a.get("required", ()), *b.get("required", ())]
    return merged


_FORMATS: Mapping[str, SearchStrategy[str]] = {
    "date-time": st.datetimes(datetime(2000, 1, 1), datetime(2100, 1, 1), timezones=st.just(UTC)).map(
        lambda d: d.isoformat()
    ),
    "date": st.dates(date(2000, 1, 1), date(2100, 1, 1)).map(date.isoformat),
    "time": st.times().map(time.isoformat),
    "duration": st.timedeltas(timedelta(0), timedelta(days=30)).map(lambda d: f"PT{int(d.total_seconds())}S"),
    "uuid": st.uuids().map(str),
    "email": st.from_regex(r"[a-z]{1,8}@[a-z]{1,8}\.(com|org|net)", fullmatch=True),
    "uri": st.from_regex(r"https://[a-z]{1,10}\.(com|org)/[a-z0-9]{0,8}", fullmatch=True),
    "ipv4": st.ip_addresses(v=4).map(str),
}


def _strings(schema: Mapping[str, Any]) -> SearchStrategy[str]:
    low = int(schema.get("minLength", 0))
    high = schema.get("maxLength")
    form = schema.get("format")
    pattern = schema.get("pattern")
    if pattern is not None or form in _FORMATS:
        made = st.from_regex(re.compile(str(pattern))) if pattern is not None else _FORMATS[str(form)]
        if pattern is not None:
            # Python's ``$`` also matches before a final newline; a JSON schema's (and pydantic's,
            # which validates the tool's arguments) only at the very end.
            made = made.filter(lambda s: not s.endswith("\n"))
        if low or high is not None:
            top = math.inf if high is None else int(high)
            made = made.filter(lambda s: low <= len(s) <= top)
        return made
    return _text(low, int(high) if high is not None else low + _MAX_TEXT)


def _bounds(schema: Mapping[str, Any]) -> tuple[float | None, float | None, bool, bool]:
    low, high = schema.get("minimum"), schema.get("maximum")
    exclusive_low = exclusive_high = False
    ex_min, ex_max = schema.get("exclusiveMinimum"), schema.get("exclusiveMaximum")
    if isinstance(ex_min, bool):  # draft 4
        exclusive_low = ex_min
    elif ex_min is not None and (low is None or ex_min >= low):
        low, exclusive_low = ex_min, True
    if isinstance(ex_max, bool):
        exclusive_high = ex_max
    elif ex_max is not None and (high is None or ex_max <= high):
        high, exclusive_high = ex_max, True
    return low, high, exclusive_low, exclusive_high


def _integers(schema: Mapping[str, Any]) -> SearchStrategy[int]:
    low, high, ex_low, ex_high = _bounds(schema)
    lo = None if low is None else (math.floor(low) + 1 if ex_low or low != math.floor(low) else int(low))
    hi = None if high is None else (math.ceil(high) - 1 if ex_high or high != math.ceil(high) else int(high))
    if lo is None and hi is None:
        lo, hi = -(10**6), 10**6
    step = schema.get("multipleOf")
    made = st.integers(lo, hi)
    if isinstance(step, int) and step > 0:
        first = None if lo is None else -(-lo // step)
        last = None if hi is None else hi // step
        made = st.integers(first, last).map(lambda n: n * step)
    return made


def _numbers(schema: Mapping[str, Any]) -> SearchStrategy[float]:
    low, high, ex_low, ex_high = _bounds(schema)
    if low is None and high is None:
        low, high = -1e6, 1e6
    return st.floats(
        low, high, exclude_min=ex_low and low is not None, exclude_max=ex_high and high is not None,
        allow_nan=False, allow_infinity=False,
    )  # fmt: skip


def arguments_for(schema: Mapping[str, Any]) -> SearchStrategy[Any]:
    """Values valid against the JSON schema ``schema`` — a tool's input schema gives argument
    objects the tool accepts.

    Covers what tool schemas use: ``type`` (one or a list), ``properties``/``required``/
    ``additionalProperties``, ``items``/``prefixItems``/``minItems``/``maxItems``/``uniqueItems``,
    ``enum``, ``const``, ``anyOf``/``oneOf``/``allOf``, local ``$ref`` (pydantic's ``$defs``), string
    ``minLength``/``maxLength``/``pattern`` and the usual ``format``s (``date-time``, ``date``,
    ``time``, ``uuid``, ``email``, ``uri``...), number bounds (inclusive and exclusive) and integer
    ``multipleOf``. Optional properties are present or not. Strings are printable (no control
    characters). Raises :class:`~expert_jobs.UsageError` for a schema it cannot satisfy.
    """
    return _Schemas(schema).values(schema)


# --------------------------------------------------------------------------- turns and scripts


def _usages(max_tokens: int) -> SearchStrategy[Usage]:
    @st.composite
    def usage(draw: st.DrawFn) -> Usage:
        inputs = draw(st.integers(0, max_tokens))
        outputs = draw(st.integers(0, max_tokens))
        return Usage.of(inputs, outputs, reasoning=draw(st.integers(0, outputs)))

    return usage()


def _declared(tools: Iterable[Any]) -> list[ToolDeclaration]:
    found: list[ToolDeclaration] = []
    for each in tools:
        if isinstance(each, ToolDeclaration):
            found.append(each)
        elif hasattr(each, "declaration") and isinstance(each.declaration, ToolDeclaration):
            found.append(each.declaration)  # a Tool
        elif hasattr(each, "input_schema") and hasattr(each, "name"):
            found.append(ToolDeclaration(each.name, getattr(each, "description", ""), each.input_schema))
        elif isinstance(each, tuple) and len(each) == 2:
            found.append(ToolDeclaration(str(each[0]), "", each[1]))
        else:
            raise UsageError(
                f"turns_for: {each!r} is not a ToolDeclaration, a Tool, an InteractiveToolSpec "
                "or a (name, input schema) pair"
            )
    return found


def _invalid_arguments(schema: Mapping[str, Any]) -> dict[str, Any] | None:
    """Arguments the schema refuses (a required property missing, or one of the wrong type), or
    ``None`` when no simple violation exists."""
    properties: Mapping[str, Any] = schema.get("properties") or {}
    required = [name for name in schema.get("required", ()) if name in properties]
    if required:
        return {}
    for name, sub in properties.items():
        kind = sub.get("type") if isinstance(sub, Mapping) else None
        if kind in ("integer", "number", "boolean", "array", "object"):
            return {name: "not a " + str(kind)}
        if kind == "string":
            return {name: 12345}
    return None


@st.composite
def _calls(
    draw: st.DrawFn, tools: Sequence[ToolDeclaration], max_calls: int, invalid_calls: bool
) -> tuple[Call, ...]:
    count = draw(st.integers(1, max_calls), label="calls")
    calls: list[Call] = []
    for _ in range(count):
        if invalid_calls and draw(st.integers(0, 5), label="mistake") == 0:
            if not tools or draw(st.booleans()):
                calls.append(Call("no_such_tool", {"x": 1}))
                continue
            tool = draw(st.sampled_from(tools))
            wrong = _invalid_arguments(tool.input_schema)
            if wrong is not None:
                calls.append(Call(tool.name, wrong))
                continue
        if not tools:
            calls.append(Call("no_such_tool", {}))
            continue
        tool = draw(st.sampled_from(tools), label="tool")
        calls.append(Call(tool.name, draw(arguments_for(tool.input_schema), label=tool.name)))
    return tuple(calls)


_NOT_OF_THE_SCHEMA = ("[]", "42", '"an answer"', "null", "true", "[1, 2]")
"""JSON texts no output schema accepts (an output schema's root is always an object)."""


def _fenced(text: str) -> SearchStrategy[str]:
    """``text``, or ``text`` in a Markdown code fence (which models add and the check tolerates)."""
    return st.sampled_from([text, f"```json\n{text}\n```"])


def valid_answers(output: Any, values: SearchStrategy[Any] | None = None) -> SearchStrategy[str]:
    """Answer texts that are valid output for ``output`` (an :class:`~expert_jobs.OutputSpec`, a
    type pydantic validates or a JSON schema mapping): JSON of a value drawn from ``values`` (your
    strategy of outputs: pydantic models, dataclasses or JSON values of the declared shape), or by
    default from :func:`arguments_for` of the spec's schema; wrapped as ``{"result": ...}`` when the
    spec is; now and then in a Markdown code fence. Values the spec refuses (a ``values`` strategy
    off the declared shape, a schema :func:`arguments_for` reads more loosely than pydantic) are
    filtered out."""
    spec = _spec_of(output, "valid_answers")
    if values is None:
        texts = arguments_for(spec.json_schema).map(output_json)
    else:
        made = values.map(to_jsonable_python)
        texts = made.map(lambda v: output_json({WRAPPER_KEY: v} if spec.wrapped else v))
    return texts.filter(lambda text: _is_valid(spec, text)).flatmap(_fenced)


def invalid_answers(output: Any) -> SearchStrategy[str]:
    """Answer texts that are not valid output for ``output`` (see :func:`valid_answers`): prose
    (not JSON), a JSON value of the wrong type (an array, a number, a string, ``null``...), or a
    valid answer cut short. Each is refused by the spec, so each is one invalid answer."""
    spec = _spec_of(output, "invalid_answers")
    prose = _text(1, 40).map(lambda words: "Here is the answer: " + words)
    cut = arguments_for(spec.json_schema).map(lambda v: output_json(v)[:-1])
    return st.one_of(prose, st.sampled_from(_NOT_OF_THE_SCHEMA), cut)


def _spec_of(output: Any, where: str) -> OutputSpec:
    try:
        spec = output_spec(output)
    except ValueError as exc:
        raise UsageError(f"{where}: {output!r} is not an output schema: {exc}") from exc
    if spec is None:
        raise UsageError(f"{where}: an output schema is required, got None")
    return spec


def _is_valid(spec: OutputSpec, text: str) -> bool:
    try:
        spec.parse(text)
    except OutputInvalid:
        return False
    return True


def turns_for(
    tools: Iterable[Any],
    *,
    min_turns: int = 0,
    max_turns: int = 6,
    max_calls: int = 3,
    thinking: bool = True,
    failures: bool | Collection[str] = True,
    delays: float = 0.0,
    invalid_calls: bool = False,
    final: bool = True,
    max_tokens: int = 2_000,
    broken_streams: bool = True,
    output: Any = None,
    outputs: SearchStrategy[Any] | None = None,
    invalid_outputs: bool = True,
) -> SearchStrategy[list[Turn]]:
    """Scripts for one expert: lists of turns a :class:`~expert_jobs.ScriptedProvider` plays.

    ``tools`` are what the model may call (``ToolDeclaration``\\s, ``Tool``\\s, interactive tool
    specs or ``(name, input_schema)`` pairs). Between ``min_turns`` and ``max_turns`` turns come
    first, each a :class:`~expert_jobs.ToolCalls` (1..``max_calls`` calls with schema-valid
    arguments, now and then text and, with ``thinking``, thinking) or a
    :class:`~expert_jobs.providers.scripted.Fail` of a kind in ``failures`` (``True``: every kind
    of :data:`FAILURE_KINDS`, retryable or not; ``False``: none), sometimes with a ``Retry-After``
    and usage; then, with ``final`` (the default), a :class:`~expert_jobs.Reply` so the run can end
    with an answer. ``delays`` > 0 gives turns a delay up to that many seconds (serve them with
    ``ScriptedProvider(..., sleep=clock.sleep)`` and a :class:`~expert_jobs.FakeClock`).
    ``invalid_calls`` mixes in the mistakes models make: unknown tools, missing or mistyped
    arguments. Every turn reports a usage of at most ``max_tokens`` input and output tokens.

    ``broken_streams`` (the default) gives some failures a ``partial=`` reply or tool-call turn: a
    stream that breaks mid-way after some deltas (``generate`` just fails).

    ``output`` (an :class:`~expert_jobs.OutputSpec`, a type pydantic validates or a JSON schema) is
    the expert's output schema: the final reply is then a valid answer (:func:`valid_answers`, of
    ``outputs`` if given), and with ``invalid_outputs`` (the default) replies that are not valid
    output (:func:`invalid_answers`) come among the first turns: the engine sends each back to the
    model, and more than ``maxRetries`` of them in a row fail the job (``invalid_output``).
    """
    declared = _declared(tools)
    if not 0 <= min_turns <= max_turns:
        raise UsageError(f"turns_for: need 0 <= min_turns <= max_turns, got {min_turns}, {max_turns}")
    if max_calls < 1:
        raise UsageError(f"turns_for: max_calls must be >= 1, got {max_calls}")
    if delays < 0:
        raise UsageError(f"turns_for: delays must be >= 0, got {delays}")
    kinds = tuple(FAILURE_KINDS if failures is True else () if failures is False else failures)
    unknown = [k for k in kinds if k not in FAILURE_KINDS]
    if unknown:
        raise UsageError(f"turns_for: unknown failure kinds {unknown}; known: {', '.join(FAILURE_KINDS)}")
    if outputs is not None and output is None:
        raise UsageError("turns_for: outputs= needs output=, the schema they are valid for")
    spec = None if output is None else _spec_of(output, "turns_for")
    usage = _usages(max_tokens)
    words = _text(1, 40)
    maybe_thinking = st.none() | words if thinking else st.none()
    delay = st.just(0.0) | st.floats(0, delays) if delays > 0 else st.just(0.0)
    calls = st.builds(
        ToolCalls,
        _calls(tuple(declared), max_calls, invalid_calls),
        text=st.none() | words,
        usage=usage,
        thinking=maybe_thinking,
        delay=delay,
    )
    options: list[SearchStrategy[Turn]] = []
    if declared:
        options.append(calls)
    if kinds:
        broken: SearchStrategy[Reply | ToolCalls | None] = st.none()
        if broken_streams:
            partials: list[SearchStrategy[Reply | ToolCalls]] = [
                st.builds(Reply, words, usage=usage, thinking=maybe_thinking)
            ]
            if declared:
                partials.append(calls)
            broken = st.none() | st.one_of(partials)
        fail_options: dict[str, SearchStrategy[Any]] = {
            "message": words,
            "retry_after": st.none() | st.floats(0, 5),
            "usage": st.none() | usage,
            "delay": delay,
        }
        if broken_streams:  # only then, so scripts without it draw as they always did
            fail_options["partial"] = broken
        options.append(st.builds(Fail, st.sampled_from(kinds), **fail_options))
    if invalid_calls and not declared:
        options.append(st.builds(ToolCalls, _calls((), 1, True), usage=usage))
    answers = words if spec is None else valid_answers(spec, outputs)
    if spec is not None and invalid_outputs:
        options.append(
            st.builds(Reply, invalid_answers(spec), usage=usage, thinking=maybe_thinking, delay=delay)
        )
    ending = st.builds(Reply, answers, usage=usage, thinking=maybe_thinking, delay=delay)
    if not options:
        return st.lists(ending, min_size=1, max_size=1) if final else st.just([])
    body = st.lists(st.one_of(options), min_size=min_turns, max_size=max_turns)
    if not final:
        return body
    return st.tuples(body, ending).map(lambda pair: [*pair[0], pair[1]])


def _expert_of(runtime: Runtime, expert: str | ExpertDefinition | None) -> ExpertDefinition:
    if expert is None:
        known = runtime.experts.as_mapping()
        if len(known) != 1:
            keys = ", ".join(sorted(known)) or "none"
            raise UsageError(f"scripts_for: name the expert; the runtime has {len(known)} ({keys})")
        return next(iter(known.values()))
    if isinstance(expert, str):
        return runtime.resolve_expert(expert)
    return expert


def scripts_for(
    runtime: Runtime,
    expert: str | ExpertDefinition | None = None,
    *,
    outputs: SearchStrategy[Any] | Mapping[str, SearchStrategy[Any]] | None = None,
    **options: Any,
) -> SearchStrategy[dict[str, list[Turn]]]:
    """Scripts for a job of ``expert`` on ``runtime``: ``{expert key: turns}`` for the expert and
    every delegate it can reach, ready for ``ScriptedProvider(scripts)``.

    The expert's turns call its function tools, its interactive tools and its delegates (with a
    ``query``); each delegate's call its own tools and delegates (delegates have no interactive
    tools). ``options`` are :func:`turns_for`'s (``max_turns``, ``failures``, ``delays``,
    ``invalid_calls``, ``broken_streams``, ``invalid_outputs``...). An expert with an output schema
    (its definition's ``output``) ends on a valid answer and may give invalid ones before it;
    ``outputs`` draws its valid outputs: a strategy (for ``expert``) or a mapping from expert key to
    strategy. The runtime is only read; run each example on a fresh one.
    """
    if "output" in options:
        raise UsageError("scripts_for: each expert's output schema comes from its definition; drop output=")
    root = _expert_of(runtime, expert)
    order: list[tuple[ExpertDefinition, bool]] = [(root, True)]
    seen = {root.key}
    index = 0
    while index < len(order):
        current, _ = order[index]
        index += 1
        for key in current.delegates:
            delegate = runtime.resolve_expert(key)
            if delegate.key not in seen:
                seen.add(delegate.key)
                order.append((delegate, False))
    chosen: Mapping[str, SearchStrategy[Any]]
    if outputs is None:
        chosen = {}
    elif isinstance(outputs, SearchStrategy):
        chosen = {root.key: outputs}
    else:
        chosen = outputs
    for key in chosen:
        if key not in seen:
            raise UsageError(f"scripts_for: outputs for {key!r}, not an expert of this job")
        if next(each for each, _ in order if each.key == key).output is None:
            raise UsageError(f"scripts_for: outputs for {key!r}, which declares no output schema")
    parts = {
        each.key: turns_for(
            runtime.toolset(each, root=is_root).declarations,
            output=each.output,
            outputs=chosen.get(each.key),
            **options,
        )
        for each, is_root in order
    }
    return st.fixed_dictionaries(parts)


# --------------------------------------------------------------------------- running and reading

_SETTLED = frozenset(
    {
        JobStatus.COMPLETED,
        JobStatus.FAILED,
        JobStatus.EXCEEDED_MAX_STEPS,
        JobStatus.CANCELED,
        JobStatus.EXPIRED,
    }
)


async def run_until_settled(
    runtime: Runtime, job: Job | str, *, answer: str = "yes", max_answers: int = 100
) -> Job:
    """Drive the job here until it stops: a queued job is run; each pending interactive call is
    answered with ``answer`` (``continue_job(..., interactive=True)``) and the job run on. Returns
    the job in a final status (completed, failed, exceededMaxSteps, canceled, expired). Raises
    ``AssertionError`` when it is still paused after ``max_answers`` answers."""
    job_id = job if isinstance(job, str) else job.id
    current = await runtime.get(job_id)
    answers = 0
    while True:
        if current.status is JobStatus.QUEUED:
            current = await runtime.drive(job_id)
        if current.status in _SETTLED:
            return current
        if current.status is not JobStatus.REQUEST_INTERACTIVE_TOOL_RESULT:
            raise AssertionError(f"job {job_id} stopped in {current.status.value}, not a final status")
        if answers >= max_answers:
            raise AssertionError(f"job {job_id} is still {current.status.value} after {answers} answers")
        current = await runtime.continue_job(job_id, answer, interactive=True)
        answers += 1


async def run_histories(runtime: Runtime, job: Job | str) -> dict[str, list[Message]]:
    """Every run of the job (its own and its delegates') -> that run's messages in order, read
    from the store's checkpoints: what the model saw and said, with every tool result."""
    job_id = job if isinstance(job, str) else job.id
    checkpoints, total = await runtime.store.list_checkpoints(job_id, take=1_000_000)
    if total > len(checkpoints):  # pragma: no cover - a store that pages smaller
        raise AssertionError(f"job {job_id}: read {len(checkpoints)} of {total} checkpoints")
    runs: dict[str, list[Message]] = {}
    for checkpoint in checkpoints:
        runs.setdefault(checkpoint.run_id, []).extend(checkpoint.new_messages)
    return runs
