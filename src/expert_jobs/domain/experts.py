"""Expert definitions (pure data) and the registry that resolves an expert key to one."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from functools import cached_property
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from expert_jobs.domain.expert_key import ExpertKey, ExpertKeyStr, parse_expert_key
from expert_jobs.domain.output import OutputSpec

__all__ = ["ExpertDefinition", "ExpertRegistry", "InteractiveToolSpec"]

_TOOL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_-]{0,63}$", re.ASCII)


def _check_tool_name(name: str) -> str:
    if not _TOOL_NAME.fullmatch(name):
        raise ValueError(f"tool name {name!r} must match {_TOOL_NAME.pattern}")
    return name


_OTHER_SCHEMA_NAMES = ("inputSchema", "inputJsonSchema", "input_json_schema")
"""What an interactive tool's schema is called elsewhere (the configuration file says
``inputJsonSchema``); in Python it is ``input_schema`` only."""


class InteractiveToolSpec(BaseModel):
    """A tool answered by a person or a client: the job pauses until the answer arrives.

    ``input_schema`` is the JSON schema of the call's arguments (an object schema; default: no
    arguments). That is its one name in Python, as a keyword or a mapping key; ``inputSchema`` and
    ``inputJsonSchema`` (the configuration file's name for it) are refused with a hint.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    description: str = Field("", max_length=2048)
    input_schema: dict[str, Any] = Field(default_factory=lambda: {"type": "object", "properties": {}})

    _name = field_validator("name")(_check_tool_name)

    @model_validator(mode="before")
    @classmethod
    def _one_schema_name(cls, data: Any) -> Any:
        if isinstance(data, Mapping):
            for other in _OTHER_SCHEMA_NAMES:
                if other in data:
                    raise ValueError(
                        f"an interactive tool's schema is called input_schema in Python, not {other!r}"
                        " (inputJsonSchema is its name in a configuration file): use input_schema"
                    )
        return data

    @field_validator("input_schema")
    @classmethod
    def _object_schema(cls, value: dict[str, Any]) -> dict[str, Any]:
        if value.get("type", "object") != "object":
            raise ValueError(f"the input schema's type must be 'object', got {value.get('type')!r}")
        return value


class ExpertDefinition(BaseModel):
    """An expert: a key, an instruction, tools, interactive tools and delegates.

    ``tools`` names Python tools registered with the runtime; ``delegates`` are expert keys of
    other experts, exposed to the model as tools taking ``{query}``. ``tool_timeout`` is the most
    seconds one call of the expert's tools may take when the tool does not set its own timeout
    (``None``: the runtime's ``tool_timeout``; ``math.inf``: no limit).

    ``output`` is the shape of the expert's final answer, if it has one: a type pydantic can
    validate (a model, ``list[Item]``...) or a JSON schema (a mapping; ``outputJsonSchema`` in a
    configuration file), held as an :class:`~expert_jobs.domain.output.OutputSpec` (see that
    module for wrapping and the keywords a JSON schema may use).
    """

    model_config = ConfigDict(frozen=True, populate_by_name=True, extra="forbid")

    key: ExpertKeyStr
    instruction: str = Field(min_length=1, max_length=20_480)
    description: str = Field("", max_length=2048)
    tags: tuple[str, ...] = ()
    tools: tuple[str, ...] = ()
    interactive_tools: tuple[InteractiveToolSpec, ...] = Field((), alias="interactiveTools")
    delegates: tuple[ExpertKeyStr, ...] = ()
    tool_timeout: float | None = Field(None, gt=0, alias="toolTimeout")
    output: OutputSpec | None = None

    @model_validator(mode="after")
    def _distinct_tool_names(self) -> ExpertDefinition:
        names = [
            *self.tools,
            *(t.name for t in self.interactive_tools),
            *(_delegate_tool_name(d) for d in self.delegates),
        ]
        for name in self.tools:
            _check_tool_name(name)
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(
                f"tool names must be distinct across tools, interactive tools and delegates: {duplicates}"
            )
        return self

    @property
    def parsed_key(self) -> ExpertKey:
        """The key, parsed."""
        return parse_expert_key(self.key)

    @property
    def name(self) -> str:
        """The expert's name (with its scope)."""
        return self.parsed_key.name

    @property
    def version(self) -> str | None:
        """The semver version of the key, if it has one."""
        return self.parsed_key.version

    def digest(self) -> dict[str, Any]:
        """The compact form a job carries in its ``expert`` field (computed once; do not mutate)."""
        return self._digest

    @cached_property
    def _digest(self) -> dict[str, Any]:
        key = self.parsed_key
        return {
            "key": self.key,
            "name": key.name,
            "version": key.version,
            "description": self.description,
            "tags": list(self.tags),
            "tools": list(self.tools),
            "interactiveTools": [t.name for t in self.interactive_tools],
            "delegates": list(self.delegates),
        }


def _delegate_tool_name(key: str) -> str:
    """The tool name a delegate is exposed under: its bare name, made tool-safe."""
    bare = parse_expert_key(key).bare_name
    return re.sub(r"[^a-zA-Z0-9_-]", "_", bare)[:64]


delegate_tool_name = _delegate_tool_name


def _semver_key(version: str) -> tuple[int, int, int, int, tuple[tuple[int, int, str], ...]]:
    core = version.split("+", 1)[0]
    main, _, pre = core.partition("-")
    major, minor, patch = (int(x) for x in main.split("."))
    # A release sorts after its pre-releases; pre-release identifiers compare one by one, numeric
    # ones as numbers and before alphanumeric ones (SemVer 2.0, item 11: rc.9 < rc.10).
    identifiers = tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in pre.split(".")) if pre else ()
    return (major, minor, patch, 0 if pre else 1, identifiers)


class ExpertRegistry:
    """Resolves expert keys: an exact ``name@version``, a ``name@tag``, or a bare name (the
    ``latest`` tag if some version carries it, else the highest version)."""

    def __init__(self, experts: Iterable[ExpertDefinition] = ()) -> None:
        self._by_key: dict[str, ExpertDefinition] = {}
        self._by_name: dict[str, list[ExpertDefinition]] = {}
        for expert in experts:
            self.add(expert)

    def add(self, expert: ExpertDefinition) -> None:
        """Register an expert (replacing one with the same key)."""
        old = self._by_key.get(expert.key)
        versions = self._by_name.setdefault(expert.name, [])
        if old is not None:
            versions.remove(old)
        self._by_key[expert.key] = expert
        versions.append(expert)

    def get(self, key: str) -> ExpertDefinition | None:
        """The expert ``key`` names, or ``None``."""
        exact = self._by_key.get(key)
        if exact is not None:
            return exact
        parsed = parse_expert_key(key)
        candidates = self._by_name.get(parsed.name, [])
        if not candidates:
            return None
        if parsed.version is not None:
            return None
        tag = parsed.tag or "latest"
        tagged = [e for e in candidates if tag in e.tags]
        if tagged:
            return tagged[-1]
        if parsed.tag is not None:
            return None
        unversioned = [e for e in candidates if e.version is None]
        versioned = [e for e in candidates if e.version is not None]
        if versioned:
            return max(versioned, key=lambda e: _semver_key(e.version or "0.0.0"))
        return unversioned[-1]

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self.get(key) is not None

    def __iter__(self) -> Any:
        return iter(self._by_key.values())

    def __len__(self) -> int:
        return len(self._by_key)

    def as_mapping(self) -> Mapping[str, ExpertDefinition]:
        """Experts by exact key."""
        return dict(self._by_key)
