"""Resource ids: 24 characters of ``[a-z0-9]``, the first a letter (cuid2-like)."""

from __future__ import annotations

import re
import secrets
from typing import Annotated

from pydantic import AfterValidator

__all__ = ["ID_LENGTH", "ID_PATTERN", "ResourceId", "is_id", "new_id", "validate_id"]

ID_LENGTH = 24
ID_PATTERN = re.compile(r"^[a-z0-9]{24}$", re.ASCII)
_LETTERS = "abcdefghijklmnopqrstuvwxyz"
_ALPHABET = _LETTERS + "0123456789"
_choice = secrets.choice


def new_id() -> str:
    """A fresh id from the operating system's secure random source (~123 bits of entropy)."""
    # 23 symbols of 36 from one big integer is much cheaper than 23 secrets.choice calls.
    n = secrets.randbits(120)
    tail = []
    for _ in range(ID_LENGTH - 1):
        n, r = divmod(n, 36)
        tail.append(_ALPHABET[r])
    return _choice(_LETTERS) + "".join(tail)


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
