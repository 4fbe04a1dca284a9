"""The base of every configuration model (camelCase keys, unknown keys refused with a suggestion)
and the rendering of pydantic errors as ``(dotted TOML key, message)`` problems."""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError, model_validator
from pydantic.alias_generators import to_camel
from pydantic_core import PydanticCustomError

from expert_jobs.config._errors import ConfigProblem

__all__ = ["NAMED_TABLES", "ConfigModel", "format_key", "problems_of"]

NAMED_TABLES = frozenset(
    {"experts", "applications", "skills", "tools", "scripts", "providerKeys", "baseUrls"}
)
"""Tables whose keys are names the user chose (shown quoted in error messages)."""

_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")
# pydantic names the member of a (non-discriminated) union that failed in the error location:
# ``float``, ``constrained-int``, ``literal['low','high']``, ``function-after[...]``...
_UNION_MEMBER = re.compile(r"^(constrained-)?(int|float|str|bool|none|bytes)$|^[a-z-]+\[.*\]$")


class ConfigModel(BaseModel):
    """A table of the configuration file: keys are camelCase, unknown keys are an error."""

    model_config = ConfigDict(frozen=True, extra="forbid", alias_generator=to_camel, populate_by_name=False)

    # The pydantic plugin reports generated aliases here; these models are only ever made by
    # validating TOML data (camelCase keys), never by calling them with keywords.
    @model_validator(mode="before")  # type: ignore[pydantic-alias]
    @classmethod
    def _known_keys(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        allowed = [field.alias or name for name, field in cls.model_fields.items()]
        unknown = [key for key in data if key not in allowed]
        if unknown:
            described = []
            for key in unknown:
                close = difflib.get_close_matches(str(key), allowed, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                described.append(f"{key!r}{hint}")
            raise PydanticCustomError(
                "unknown_key",
                "unknown key{s} {keys}; allowed: {allowed}",
                {
                    "s": "s" if len(unknown) > 1 else "",
                    "keys": ", ".join(described),
                    "allowed": ", ".join(sorted(allowed)),
                },
            )
        return data


def format_key(loc: Sequence[str | int]) -> str:
    """A pydantic error location as a dotted TOML key: ``experts."analyst".skills."data".module``."""
    out = ""
    previous: str | int | None = None
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part == "[key]":
            out += " (the name)"
        else:
            text = part if _BARE_KEY.fullmatch(part) and previous not in NAMED_TABLES else f'"{part}"'
            out += f".{text}" if out else text
        previous = part
    return out


def _message(error: Any) -> str:
    message = str(error["msg"])
    for prefix in ("Value error, ", "Assertion failed, "):
        if message.startswith(prefix):
            message = message[len(prefix) :]
    if error["type"] == "missing":
        return "missing (this key is required)"
    return message


def problems_of(exc: ValidationError, *, union_tags: frozenset[str] = frozenset()) -> list[ConfigProblem]:
    """Each error of ``exc`` as ``(key, message)``.

    pydantic puts the tag of a tagged union into the location (``skills."data".pythonSkill.module``);
    a part in ``union_tags`` right after a named skill is dropped.
    A part naming the member of a plain union (``reasoningBudget.constrained-int``) is dropped
    too, and the messages of one key are joined with "or" (the value matched none of the members).
    """
    merged: dict[str, list[str]] = {}
    for error in exc.errors(include_url=False):
        raw = list(error["loc"])
        loc = [
            part
            for index, part in enumerate(raw)
            if not (part in union_tags and index >= 2 and raw[index - 2] == "skills")
            and not _is_union_member(raw, index)
        ]
        messages = merged.setdefault(format_key(loc), [])
        message = _message(error)
        if message not in messages:
            messages.append(message)
    return [(key, _either(messages)) for key, messages in merged.items()]


def _either(messages: list[str]) -> str:
    """``Input should be A`` and ``Input should be B`` as ``Input should be A; or B``."""
    rest = [m.removeprefix("Input should be ") for m in messages[1:]]
    return "; or ".join([messages[0], *rest])


def _is_union_member(loc: Sequence[str | int], index: int) -> bool:
    part = loc[index]
    if not isinstance(part, str) or index == 0 or loc[index - 1] in NAMED_TABLES:
        return False  # a key of the file, or a name the user chose
    return _UNION_MEMBER.fullmatch(part) is not None
