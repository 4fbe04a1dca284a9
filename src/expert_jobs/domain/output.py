"""Structured output: the shape an expert's final answer must have, and how an answer is checked.

An expert declares its output (``ExpertDefinition.output``) as a Python type pydantic can validate
(a model, a dataclass, ``list[int]``...) or as a JSON schema (a mapping; ``outputJsonSchema`` in
the configuration file). Either becomes an :class:`OutputSpec`: the JSON schema the providers are
asked for, always an object schema, and the check of an answer's text.

Providers' structured modes want an object at the top. A type or schema whose root is not an
object (``list[Item]``, ``int``, an enum) is *wrapped*: the model is asked for
``{"result": <value>}`` and the output is the value under ``result``.

A JSON schema given as such is read as JSON Schema draft 2020-12 and checked by the ``jsonschema``
library: against the draft's metaschema at load (:func:`check_json_schema`), and every answer
against the schema. ``format`` is an annotation (passed to the model, not asserted). References
must point inside the schema: nothing is ever fetched. Schemas are bounded in size and depth
(:data:`MAX_OUTPUT_SCHEMA_CHARS`, :data:`MAX_OUTPUT_SCHEMA_DEPTH`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import islice
from typing import TYPE_CHECKING, Any, Generic, NamedTuple, TypeVar
from urllib.parse import urljoin

from pydantic import ConfigDict, TypeAdapter, ValidationError, create_model
from pydantic_core import core_schema

from expert_jobs.domain.messages import Message, TextPart, UserMessage

if TYPE_CHECKING:
    from pydantic import GetCoreSchemaHandler

    from expert_jobs.domain.job import Job

__all__ = [
    "MAX_OUTPUT_SCHEMA_CHARS",
    "MAX_OUTPUT_SCHEMA_DEPTH",
    "WRAPPER_KEY",
    "JobResult",
    "OutputInvalid",
    "OutputSpec",
    "check_json_schema",
    "invalid_answers_in_a_row",
    "output_json",
    "output_spec",
    "retry_prompt",
    "typed_output",
]

T = TypeVar("T")

MAX_OUTPUT_SCHEMA_CHARS = 100_000
"""The most characters an output schema may take as compact JSON."""
MAX_OUTPUT_SCHEMA_DEPTH = 32
"""The deepest an output schema's subschemas may nest."""
WRAPPER_KEY = "result"
"""The property a non-object output is wrapped under (``{"result": <value>}``)."""
_MAX_REASON_CHARS = 1_000
_MAX_PROBLEM_CHARS = 300
_MAX_REPORTED = 3
_MAX_COUNTED = 100
_DEEPEST_ANSWER = 2 * MAX_OUTPUT_SCHEMA_DEPTH
_NAME = re.compile(r"[^a-zA-Z0-9_-]")
# Keywords whose values are data (an answer's possible values), never schemas holding references.
_DATA_KEYWORDS = frozenset({"enum", "const", "default", "examples"})
# Keywords whose values map names to schemas (a name is not a keyword).
_SCHEMA_MAPS = frozenset({"properties", "patternProperties", "$defs", "definitions", "dependentSchemas"})
# Keywords whose schemas apply to the value their schema applies to (a loop through them never ends).
_IN_PLACE = ("allOf", "anyOf", "oneOf", "not", "if", "then", "else", "dependentSchemas")
# What stays at the root when a non-object schema is wrapped, so its references keep their targets.
_ROOT_KEYWORDS = ("$id", "$schema", "$defs", "definitions")


class OutputInvalid(ValueError):
    """An answer that is not valid output: not JSON, or JSON that does not match the schema. The
    message says what is wrong, concisely (at most a few problems, each with where it is)."""


# ---------------------------------------------------------------------------------------------
# the spec


@dataclass(frozen=True, eq=False)
class OutputSpec:
    """An expert's declared output: ``json_schema`` (an object schema: what providers are asked
    for), its ``name``, whether the declared shape was ``wrapped`` under ``"result"``, whether the
    schema meets the strict structured-output rules (``strict``: every object lists all its
    properties as required and allows no others), and ``python_type`` (the declared Python type,
    ``None`` for a JSON schema). Make one with :func:`output_spec`.

    :meth:`parse` checks an answer's text and returns the output as a JSON value (unwrapped).
    Two specs are equal when their name, schema and Python type are.
    """

    name: str
    json_schema: Mapping[str, Any]
    wrapped: bool
    strict: bool
    python_type: Any
    _check: Callable[[str], Any] = field(repr=False)

    def parse(self, text: str) -> Any:
        """The output an answer's ``text`` holds, as a JSON value (the value under ``"result"``
        when wrapped); :class:`OutputInvalid` saying what is wrong when it holds none. A Markdown
        code fence around the JSON is tolerated."""
        return self._check(_unfenced(text))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, OutputSpec):
            return NotImplemented
        return (self.name, self.json_schema, self.python_type) == (
            other.name,
            other.json_schema,
            other.python_type,
        )

    __hash__ = None  # type: ignore[assignment]

    @classmethod
    def __get_pydantic_core_schema__(
        cls, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        """Lets a pydantic model hold one (``ExpertDefinition.output``): a type or a JSON-schema
        mapping is made a spec; it serialises as its JSON schema."""
        return core_schema.no_info_plain_validator_function(
            output_spec,
            serialization=core_schema.plain_serializer_function_ser_schema(
                lambda spec: None if spec is None else dict(spec.json_schema)
            ),
        )


def output_spec(value: Any, name: str | None = None) -> OutputSpec | None:
    """The :class:`OutputSpec` of ``value``: ``None`` (no output schema), an ``OutputSpec``, a JSON
    schema (a mapping), or a type pydantic can validate. ``name`` (default: the type's name, or
    ``"output"``) is cut to the characters providers take. Raises ``ValueError`` saying why a
    value cannot be an output schema."""
    if value is None or isinstance(value, OutputSpec):
        return value
    if isinstance(value, Mapping):
        return _from_json_schema(value, name or "output")
    if isinstance(value, str | bytes | int | float | bool | Sequence):
        raise ValueError(
            "an output schema is a type (a pydantic model, list[int]...) or a JSON schema mapping, "
            f"got {value!r}"
        )
    return _from_type(value, name or getattr(value, "__name__", None) or "output")


def _clean_name(name: str) -> str:
    return _NAME.sub("_", name)[:64] or "output"


def _from_type(tp: Any, name: str) -> OutputSpec:
    try:
        adapter: TypeAdapter[Any] = TypeAdapter(tp)
        schema = _inline_root_ref(adapter.json_schema())
    except Exception as exc:  # pydantic raises several kinds for a type it cannot describe
        raise ValueError(f"{tp!r} cannot be an output type: {exc}") from None
    wrapped = schema.get("type") != "object"
    outer = adapter
    if wrapped:
        # The keyword is WRAPPER_KEY's value (a literal keyword: create_model's typing wants one).
        model = create_model("Output", __config__=ConfigDict(extra="forbid"), result=(tp, ...))
        outer = TypeAdapter(model)
        schema = outer.json_schema()
    schema = _closed_objects(schema)
    _check_bounds(schema)

    def check(text: str) -> Any:
        try:
            made = outer.validate_json(text)
        except ValidationError as exc:
            raise OutputInvalid(_pydantic_reason(exc, wrapped)) from None
        if wrapped:
            made = getattr(made, WRAPPER_KEY)
        return adapter.dump_python(made, mode="json")

    return OutputSpec(_clean_name(name), schema, wrapped, _is_strict(schema), tp, check)


def _from_json_schema(given: Mapping[str, Any], name: str) -> OutputSpec:
    try:
        schema: dict[str, Any] = json.loads(json.dumps(given))  # a private, plain copy
    except RecursionError:
        raise ValueError(f"the output schema nests deeper than {MAX_OUTPUT_SCHEMA_DEPTH} levels") from None
    except (TypeError, ValueError) as exc:
        raise ValueError(f"an output schema must be JSON data: {exc}") from None
    check_json_schema(schema)
    wrapped = schema.get("type") != "object"
    if wrapped:
        schema = _wrap(schema)
    from jsonschema import Draft202012Validator  # type: ignore[import-untyped]  # see check_json_schema
    from referencing import Registry

    # An empty registry: a reference outside the schema is never retrieved (none passes the check).
    validator = Draft202012Validator(schema, registry=Registry())

    def check(text: str) -> Any:
        try:
            value = json.loads(text)
        except (ValueError, RecursionError) as exc:
            raise OutputInvalid(f"the answer is not JSON: {_short(str(exc))}") from None
        # Bounded so that the library's recursion (several Python calls a level) stays well inside
        # the interpreter's limit; a loop of references is refused at load.
        levels = _depth(value)
        if levels > _DEEPEST_ANSWER:
            raise OutputInvalid(f"$: nests {levels} levels deep, over {_DEEPEST_ANSWER}")
        try:
            problems = list(islice(validator.iter_errors(value), _MAX_COUNTED + 1))
        except RecursionError:
            raise OutputInvalid(f"$: nests too deeply to be checked ({levels} levels)") from None
        if problems:
            raise OutputInvalid(_schema_reason(problems, wrapped))
        return value[WRAPPER_KEY] if wrapped else value

    return OutputSpec(_clean_name(name), schema, wrapped, _is_strict(schema), None, check)


def _wrap(schema: dict[str, Any]) -> dict[str, Any]:
    """``{"result": <schema>}`` as an object schema, the root's identity and definitions kept at the
    root. Refused (``ValueError``) when a reference would then point elsewhere: to the root
    (``#``) or into it (``#/items``)."""
    inner = {key: value for key, value in schema.items() if key not in _ROOT_KEYWORDS}
    outer: dict[str, Any] = {
        "type": "object",
        "properties": {WRAPPER_KEY: inner},
        "required": [WRAPPER_KEY],
        "additionalProperties": False,
    }
    outer.update((key, schema[key]) for key in _ROOT_KEYWORDS if key in schema)
    references = list(_references(schema))
    addresses = [ref.address for ref in references]
    before, after = _targets(schema, addresses), _targets(outer, addresses)
    for (place, written, _, _), old, new in zip(references, before, after, strict=True):
        if new is not old:
            raise _fail(
                place,
                f"{written!r}: a schema whose root is not an object is wrapped as "
                f'{{"{WRAPPER_KEY}": ...}}, so it cannot refer to its root or into it; '
                "put the part referred to under $defs",
            )
    return outer


def _inline_root_ref(schema: dict[str, Any]) -> dict[str, Any]:
    """``{"$ref": "#/$defs/X", "$defs": ...}`` (pydantic's form of a recursive model) as X itself,
    its definitions kept, so an object model is not wrapped."""
    ref = schema.get("$ref")
    defs = schema.get("$defs")
    if set(schema) == {"$ref", "$defs"} and isinstance(ref, str) and ref.startswith("#/$defs/"):
        target = defs.get(ref.removeprefix("#/$defs/")) if isinstance(defs, dict) else None
        if isinstance(target, dict) and target.get("type") == "object":
            return {**target, "$defs": defs}
    return schema


def _closed_objects(schema: Any) -> Any:
    """A copy where every object schema listing properties allows no others (what the strict
    structured-output modes need; pydantic ignores unknown keys anyway unless told otherwise)."""
    if isinstance(schema, list):
        return [_closed_objects(each) for each in schema]
    if not isinstance(schema, dict):
        return schema
    made = {key: _closed_objects(value) for key, value in schema.items()}
    if "properties" in made and "additionalProperties" not in made and made.get("type") == "object":
        made["additionalProperties"] = False
    return made


def _is_strict(schema: Any) -> bool:
    """Whether every object schema inside lists all its properties as required and allows no
    others (the rule OpenAI's strict mode, among others, enforces)."""
    if isinstance(schema, list):
        return all(_is_strict(each) for each in schema)
    if not isinstance(schema, dict):
        return True
    if schema.get("type") == "object":
        properties = schema.get("properties", {})
        if schema.get("additionalProperties") is not False:
            return False
        if not isinstance(properties, dict) or set(schema.get("required", ())) != set(properties):
            return False
    return all(
        _is_strict(value)
        for key, value in schema.items()
        if key not in ("enum", "const", "default", "examples", "required")
    )


def _check_bounds(schema: Any) -> None:
    size = len(json.dumps(schema, separators=(",", ":")))
    if size > MAX_OUTPUT_SCHEMA_CHARS:
        raise ValueError(f"the output schema takes {size} characters, over {MAX_OUTPUT_SCHEMA_CHARS}")
    if _depth(schema) > MAX_OUTPUT_SCHEMA_DEPTH * 2:
        raise ValueError(f"the output schema nests deeper than {MAX_OUTPUT_SCHEMA_DEPTH} levels")


def _depth(value: Any) -> int:
    deepest = 0
    todo = [(value, 1)]
    while todo:
        each, level = todo.pop()
        deepest = max(deepest, level)
        if isinstance(each, dict):
            todo.extend((v, level + 1) for v in each.values())
        elif isinstance(each, list):
            todo.extend((v, level + 1) for v in each)
    return deepest


# ---------------------------------------------------------------------------------------------


# ---------------------------------------------------------------------------------------------
# checking a JSON schema given as such


def check_json_schema(schema: Any) -> None:
    """Refuse (``ValueError`` naming the place, e.g. ``/properties/price/minimum: ...``) a JSON
    schema that is not an object, is too big or deep, is not a valid JSON Schema (draft 2020-12,
    checked by ``jsonschema`` against the draft's metaschema, ``pattern`` regular expressions
    included), has a ``$ref``/``$dynamicRef`` that does not point inside the schema (a
    definition, an anchor, an embedded ``$id``: remote references are refused, never fetched), or
    has references that loop without going into the answer."""
    if not isinstance(schema, dict):
        raise ValueError(f"an output schema must be a JSON object, got {type(schema).__name__}")
    _check_bounds(schema)
    if _nesting(schema) > MAX_OUTPUT_SCHEMA_DEPTH:
        raise ValueError(f"the output schema's subschemas nest deeper than {MAX_OUTPUT_SCHEMA_DEPTH} levels")
    # Imported here: jsonschema takes a noticeable part of the package's import time, and only a
    # schema given as JSON needs it.
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import SchemaError  # type: ignore[import-untyped]

    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        raise _fail(_pointer(exc.absolute_path), _short(exc.message, _MAX_PROBLEM_CHARS)) from None
    except RecursionError:
        raise ValueError(f"the output schema nests deeper than {MAX_OUTPUT_SCHEMA_DEPTH} levels") from None
    references = list(_references(schema))
    targets = _targets(schema, [ref.address for ref in references])
    for (place, written, _, _), target in zip(references, targets, strict=True):
        if target is None:
            raise _fail(
                place,
                f"{written!r} points to nothing in the schema"
                if written.startswith("#")
                else f"{written!r} is not inside the schema (remote references are not fetched)",
            )
    looping = _loop(references, targets)
    if looping is not None:
        raise _fail(
            looping.place,
            f"{looping.written!r} closes a loop that never goes into the answer: the schema's "
            "references loop",
        )


def _loop(references: Sequence[_Reference], targets: Sequence[Any]) -> _Reference | None:
    """A reference that leads back to itself through references and in-place keywords only
    (``allOf``, ``not``, ``if``...): checking any value there would never end. ``None`` if none."""
    follows: dict[int, list[Any]] = {}
    held: dict[int, _Reference] = {}
    for reference, target in zip(references, targets, strict=True):
        follows.setdefault(id(reference.holder), []).append(target)
        held.setdefault(id(reference.holder), reference)

    def after(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
        found = list(follows.get(id(node), ()))
        for key in _IN_PLACE:
            value = node.get(key)
            if isinstance(value, list):
                found.extend(value)
            elif isinstance(value, dict) and key == "dependentSchemas":
                found.extend(value.values())
            else:
                found.append(value)
        return (each for each in found if isinstance(each, dict))

    done: set[int] = set()
    for start in references:
        if id(start.holder) in done:
            continue
        path: list[tuple[dict[str, Any], Iterator[dict[str, Any]]]] = [(start.holder, after(start.holder))]
        on_path = {id(start.holder)}
        while path:
            node, nexts = path[-1]
            child = next(nexts, None)
            if child is None:
                path.pop()
                on_path.discard(id(node))
                done.add(id(node))
            elif id(child) in on_path:
                closing: _Reference = held.get(id(node), start)
                return closing
            elif id(child) not in done:
                path.append((child, after(child)))
                on_path.add(id(child))
    return None


def _nesting(schema: Any) -> int:
    """How deep subschemas nest: a value of a keyword is one level below its schema (the names of
    a name-to-schema map and the items of a list add no level; data keywords are not searched)."""
    deepest = 0
    todo = [(schema, 1)]
    while todo:
        each, level = todo.pop()
        if isinstance(each, list):
            todo.extend((value, level) for value in each)
        elif isinstance(each, dict):
            deepest = max(deepest, level)
            for key, value in each.items():
                if key in _SCHEMA_MAPS and isinstance(value, dict):
                    todo.extend((named, level + 1) for named in value.values())
                elif key not in _DATA_KEYWORDS:
                    todo.append((value, level + 1))
    return deepest


def _fail(path: str, why: str) -> ValueError:
    return ValueError(f"{path or '/'}: {why}")


def _pointer(parts: Any) -> str:
    """A JSON pointer (``/properties/a~1b/type``) of a path's parts."""
    return "".join("/" + str(part).replace("~", "~0").replace("/", "~1") for part in parts)


def _targets(schema: dict[str, Any], refs: Sequence[str]) -> list[Any]:
    """What each reference (absolute, or relative to the root) points to within ``schema`` alone,
    ``None`` for nothing: the registry is empty, so nothing is retrieved."""
    from referencing import Registry
    from referencing.exceptions import Unresolvable
    from referencing.jsonschema import DRAFT202012

    resolver = Registry().resolver_with_root(DRAFT202012.create_resource(schema))
    found = []
    for ref in refs:
        try:
            found.append(resolver.lookup(ref).contents)
        except Unresolvable:
            found.append(None)
    return found


class _Reference(NamedTuple):
    """A ``$ref``/``$dynamicRef`` of a schema: its ``place`` (a JSON pointer), the reference as
    ``written``, its ``address`` (resolved against the ``$id`` it is under) and the schema
    ``holder`` it is a keyword of."""

    place: str
    written: str
    address: str
    holder: dict[str, Any]


def _references(schema: Any, base: str = "", place: str = "") -> Iterator[_Reference]:
    """Each reference in ``schema``. Over-approximate on purpose: any mapping outside data
    keywords is searched, whatever keyword holds it."""
    if isinstance(schema, list):
        for index, each in enumerate(schema):
            yield from _references(each, base, f"{place}/{index}")
        return
    if not isinstance(schema, dict):
        return
    if isinstance(schema.get("$id"), str):
        base = urljoin(base, schema["$id"])
    for key, value in schema.items():
        where = f"{place}{_pointer([key])}"
        if key in ("$ref", "$dynamicRef") and isinstance(value, str):
            yield _Reference(where, value, urljoin(base, value), schema)
        elif key in _SCHEMA_MAPS and isinstance(value, dict):
            for name, each in value.items():
                yield from _references(each, base, f"{where}{_pointer([name])}")
        elif key not in _DATA_KEYWORDS:
            yield from _references(value, base, where)


# ---------------------------------------------------------------------------------------------
# answers, retry prompts and typed results


_FENCE = re.compile(r"\A\s*```[a-zA-Z]*\s*\n(.*)\n\s*```\s*\Z", re.DOTALL)


def _unfenced(text: str) -> str:
    match = _FENCE.match(text)
    return match.group(1) if match else text


def _short(text: str, most: int = _MAX_REASON_CHARS) -> str:
    return text if len(text) <= most else text[: most - 1] + "…"


def _json_path(parts: Sequence[Any], wrapped: bool) -> str:
    """``$.items[0].name`` of a path's parts; the wrapper's ``result`` left out when ``wrapped``."""
    parts = list(parts)
    if wrapped and parts[:1] == [WRAPPER_KEY]:
        parts = parts[1:]
    return "$" + "".join(
        f"[{part}]"
        if isinstance(part, int)
        else f".{part}"
        if str(part).isidentifier()
        else f"[{json.dumps(str(part))}]"
        for part in parts
    )


def _by_place(parts: Sequence[Any]) -> tuple[int, list[tuple[int, int, str]]]:
    """A sort key: shallower places first, then in index and name order."""
    return len(parts), [(0, p, "") if isinstance(p, int) else (1, 0, str(p)) for p in parts]


def _schema_reason(problems: list[Any], wrapped: bool) -> str:
    """At most a few of ``jsonschema``'s errors, the broadest first, each with its place, and how
    many more there are."""
    problems.sort(key=lambda error: _by_place(error.absolute_path))
    shown = [
        f"{_json_path(error.absolute_path, wrapped)}: {_short(error.message, _MAX_PROBLEM_CHARS)}"
        for error in problems[:_MAX_REPORTED]
    ]
    if len(problems) > _MAX_COUNTED:
        more = f" (and over {_MAX_COUNTED - len(shown)} more)"
    elif len(problems) > len(shown):
        more = f" (and {len(problems) - len(shown)} more)"
    else:
        more = ""
    return _short("; ".join(shown) + more)


def _pydantic_reason(error: ValidationError, wrapped: bool) -> str:
    problems = [
        f"{_json_path(each.get('loc', ()), wrapped)}: {each.get('msg', 'invalid')}"
        for each in error.errors(include_url=False, include_context=False)[:_MAX_REPORTED]
    ]
    count = error.error_count()
    more = f" (and {count - len(problems)} more)" if count > len(problems) else ""
    return _short("; ".join(problems) + more)


_RETRY_OPENING = "Your answer is not valid output: "


def retry_prompt(spec: OutputSpec, reason: str) -> str:
    """The user message that sends an invalid answer back to the model: what was wrong, and what
    to answer instead."""
    return f"{_RETRY_OPENING}{reason}{_retry_closing(spec)}"


def _retry_closing(spec: OutputSpec) -> str:
    shape = f'a JSON object {{"{WRAPPER_KEY}": ...}}' if spec.wrapped else "a JSON object"
    return f". Answer again with only {shape} that matches the required schema {spec.name!r}."


def invalid_answers_in_a_row(messages: Sequence[Message], spec: OutputSpec) -> int:
    """The invalid answers a run's history shows since its query (or since its last valid answer,
    which a continue's query follows): the :func:`retry_prompt` user messages after its last other
    user message. What a run restored after a pause or a re-claim counts on from."""
    closing = _retry_closing(spec)
    count = 0
    for message in reversed(messages):
        if type(message) is UserMessage:
            parts = message.parts
            if not (len(parts) == 1 and type(parts[0]) is TextPart):
                break
            text = parts[0].text
            if not (text.startswith(_RETRY_OPENING) and text.endswith(closing)):
                break
            count += 1
    return count


def output_json(value: Any) -> str:
    """An output value as compact JSON text (what a delegate hands its parent)."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


_ADAPTERS: dict[Any, TypeAdapter[Any]] = {}
_MAX_ADAPTERS = 256


def typed_output(value: Any, tp: type[T]) -> T:
    """The JSON value ``value`` (a job's output) read as ``tp``, validated by pydantic in JSON
    mode (so a ``datetime`` comes back from its string); ``pydantic.ValidationError`` when it is
    not one. An instance of ``tp`` is returned as is."""
    if isinstance(tp, type) and isinstance(value, tp) and not isinstance(value, dict | list):
        return value
    try:
        adapter = _ADAPTERS.get(tp)
    except TypeError:  # an unhashable type form
        adapter = None
    if adapter is None:
        adapter = TypeAdapter(tp)
        try:
            if len(_ADAPTERS) >= _MAX_ADAPTERS:
                _ADAPTERS.clear()
            _ADAPTERS[tp] = adapter
        except TypeError:
            pass
    made: T = adapter.validate_json(output_json(value))
    return made


@dataclass(frozen=True, slots=True)
class JobResult(Generic[T]):
    """A job and its output read as ``T`` (``Runtime.run(..., output=T)``, ``Runtime.result``):
    ``output`` is ``None`` unless the job completed with an output."""

    job: Job
    output: T | None
