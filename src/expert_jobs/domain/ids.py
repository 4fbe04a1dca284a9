"""Resource ids: 24 characters of ``[a-z0-9]``, the first a letter (cuid2-like)."""

from __future__ import annotations

import base64
import hashlib
import os
import re
from typing import Annotated

from pydantic import AfterValidator

__all__ = ["ID_LENGTH", "ID_PATTERN", "ResourceId", "derived_id", "is_id", "new_id", "validate_id"]

ID_LENGTH = 24
ID_PATTERN = re.compile(r"^[a-z0-9]{24}$", re.ASCII)
_LETTERS = "abcdefghijklmnopqrstuvwxyz"
_b32 = base64.b32encode
_urandom = os.urandom


def new_id() -> str:
    """A fresh id from the operating system's secure random source (~119 bits of entropy).

    15 random bytes are exactly 24 base32 symbols (``a-z2-7``, lower-cased); the first symbol is
    replaced by a letter chosen by a 16th random byte so every id starts with one.
    """
    raw = _urandom(16)
    return _LETTERS[raw[0] % 26] + _b32(raw[1:]).decode("ascii")[1:].lower()


def is_id(value: object) -> bool:
    """Whether ``value`` is a string matching the spec's id pattern and length."""
    return isinstance(value, str) and ID_PATTERN.match(value) is not None


def validate_id(value: str) -> str:
    """Return ``value`` if it is a valid id, else raise ``ValueError`` saying why."""
    if not isinstance(value, str):
        raise ValueError("must be a string")
    if len(value) != ID_LENGTH:
        raise ValueError(f"must be exactly {ID_LENGTH} characters, got {len(value)}")
    if ID_PATTERN.match(value) is None:
        raise ValueError("must match ^[a-z0-9]+$")
    return value


ResourceId = Annotated[str, AfterValidator(validate_id)]
"""A pydantic-validated id field (the spec's ``^[a-z0-9]+$``, length 24)."""


def derived_id(*parts: str | int) -> str:
    """A stable id derived from ``parts`` (e.g. a checkpoint's job id and sequence number).

    Same parts, same id: a step repeated after a crash writes the same checkpoint id again.
    """
    digest = hashlib.blake2b("\x1f".join(map(str, parts)).encode(), digest_size=16).digest()
    return _LETTERS[digest[0] % 26] + _b32(digest[1:]).decode("ascii")[1:].lower()
