"""Expert keys: ``name``, ``name@1.2.3`` or ``name@tag``, with an optional ``@scope/`` prefix."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated

from pydantic import AfterValidator, WithJsonSchema

from expert_jobs.domain.errors import InvalidExpertKey

__all__ = ["EXPERT_KEY_MAX_LENGTH", "EXPERT_KEY_PATTERN", "ExpertKey", "ExpertKeyStr", "parse_expert_key"]

EXPERT_KEY_MAX_LENGTH = 511
EXPERT_KEY_PATTERN = re.compile(
    r"^((?:@[a-z0-9][a-z0-9_.-]*\/)?[a-z0-9][a-z0-9_.-]*)"
    r"(?:@((?:0|[1-9]\d*)\.(?:0|[1-9]\d*)\.(?:0|[1-9]\d*)(?:-[\w.-]+)?(?:\+[\w.-]+)?)"
    r"|@([a-z0-9][a-z0-9_.-]*))?$",
    re.ASCII,
)


@dataclass(frozen=True, slots=True)
class ExpertKey:
    """A parsed expert key. ``name`` includes the scope (``@scope/name``) as the pattern's group 1."""

    name: str
    scope: str | None
    version: str | None
    tag: str | None

    @property
    def bare_name(self) -> str:
        """The name without its ``@scope/`` prefix."""
        return self.name.split("/", 1)[1] if self.scope else self.name

    def __str__(self) -> str:
        if self.version is not None:
            return f"{self.name}@{self.version}"
        if self.tag is not None:
            return f"{self.name}@{self.tag}"
        return self.name


def parse_expert_key(key: str) -> ExpertKey:
    """Parse ``key`` or raise :class:`InvalidExpertKey` saying why."""
    if not isinstance(key, str):
        raise InvalidExpertKey(repr(key), "must be a string")
    if len(key) > EXPERT_KEY_MAX_LENGTH:
        raise InvalidExpertKey(key[:40] + "...", f"longer than {EXPERT_KEY_MAX_LENGTH} characters")
    match = EXPERT_KEY_PATTERN.fullmatch(key)
    if match is None:
        raise InvalidExpertKey(key, "expected name, name@x.y.z or name@tag, with an optional @scope/ prefix")
    name, version, tag = match.group(1), match.group(2), match.group(3)
    scope = name[1:].split("/", 1)[0] if name.startswith("@") else None
    return ExpertKey(name=name, scope=scope, version=version, tag=tag)


def _validate_key(value: str) -> str:
    try:
        parse_expert_key(value)
    except InvalidExpertKey as exc:
        raise ValueError(str(exc)) from None
    return value


ExpertKeyStr = Annotated[
    str,
    AfterValidator(_validate_key),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": EXPERT_KEY_PATTERN.pattern,
            "maxLength": EXPERT_KEY_MAX_LENGTH,
            "description": "Unique identifier for an expert version (name@version or name@tag)",
        }
    ),
]
"""A pydantic-validated expert key string."""
