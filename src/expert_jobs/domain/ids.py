"""Resource ids: 24 characters of ``[a-z0-9]``, the first a letter (cuid2-like)."""

from __future__ import annotations

import hashlib
import os
import re
from typing import Annotated

from pydantic import AfterValidator, WithJsonSchema

__all__ = [
    "ID_LENGTH",
    "ID_PATTERN",
    "CheckpointIds",
    "ResourceId",
    "checkpoint_id",
    "checkpoint_id_prefix",
    "derived_id",
    "is_id",
    "new_id",
    "prefixed_checkpoint_id",
    "validate_id",
]

ID_LENGTH = 24
ID_PATTERN = re.compile(r"^[a-z0-9]{24}$", re.ASCII)
_LETTERS = "abcdefghijklmnopqrstuvwxyz"
_SYMBOLS = _LETTERS + "0123456789"
# Random bytes become symbols through translation tables; the bytes that would bias the
# distribution (those past the last whole multiple of the alphabet's size) are deleted.
_TO_SYMBOL = bytes(ord(_SYMBOLS[b % 36]) if b < 252 else 0 for b in range(256))
_TO_LETTER = bytes(ord(_LETTERS[b % 26]) if b < 234 else 0 for b in range(256))
_NOT_SYMBOL = bytes(range(252, 256))
_NOT_LETTER = bytes(range(234, 256))
_urandom = os.urandom
_blake2b = hashlib.blake2b


def _encode(raw: bytes) -> str | None:
    """24 unbiased symbols from ``raw`` (the first a letter), or ``None`` if too few bytes survive."""
    letters = raw[:8].translate(_TO_LETTER, _NOT_LETTER)
    symbols = raw[8:].translate(_TO_SYMBOL, _NOT_SYMBOL)
    if not letters or len(symbols) < ID_LENGTH - 1:
        return None
    return (letters[:1] + symbols[: ID_LENGTH - 1]).decode("ascii")


def new_id() -> str:
    """A fresh id from the operating system's secure random source (~118 bits of entropy).

    Uniform symbols: a letter, then 23 of ``[a-z0-9]``, each drawn by rejection from random bytes.
    """
    while True:
        encoded = _encode(_urandom(40))
        if encoded is not None:
            return encoded


def is_id(value: object) -> bool:
    """Whether ``value`` is a string matching the spec's id pattern and length."""
    return isinstance(value, str) and ID_PATTERN.fullmatch(value) is not None


def validate_id(value: str) -> str:
    """Return ``value`` if it is a valid id, else raise ``ValueError`` saying why."""
    if not isinstance(value, str):
        raise ValueError("must be a string")
    if len(value) != ID_LENGTH:
        raise ValueError(f"must be exactly {ID_LENGTH} characters, got {len(value)}")
    if ID_PATTERN.match(value) is None:
        raise ValueError("must match ^[a-z0-9]+$")
    return value


ResourceId = Annotated[
    str,
    AfterValidator(validate_id),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": "^[a-z0-9]+$",
            "minLength": ID_LENGTH,
            "maxLength": ID_LENGTH,
            "description": "A unique identifier for a resource",
        }
    ),
]
"""A pydantic-validated id field (the spec's ``^[a-z0-9]+$``, length 24)."""


def checkpoint_id(job_id: str, seq: int) -> str:
    """The id of a job's ``seq``-th checkpoint: the job id's first 15 symbols, ``c``, then ``seq`` as
    8 hexadecimal digits. Stable (a step repeated after a crash rewrites the same id), unique
    within the job and, through the job id's randomness, across jobs.
    Sequence numbers go up to 2**32 - 1, far beyond any job's steps.
    """
    return prefixed_checkpoint_id(checkpoint_id_prefix(job_id), seq)


class CheckpointIds:
    """:func:`checkpoint_id` for one job, for a writer that makes many of them (the engine writes
    one per step): the job's prefix is cut once, and common sequence numbers are formatted once
    per process."""

    __slots__ = ("_prefix",)

    def __init__(self, job_id: str) -> None:
        self._prefix = checkpoint_id_prefix(job_id)

    def __call__(self, seq: int) -> str:
        """The id of the job's ``seq``-th checkpoint."""
        return prefixed_checkpoint_id(self._prefix, seq)


def checkpoint_id_prefix(job_id: str) -> str:
    """What every checkpoint id of the job ``job_id`` starts with (see :func:`checkpoint_id`)."""
    return job_id[:15] + "c"


def prefixed_checkpoint_id(prefix: str, seq: int) -> str:
    """:func:`checkpoint_id` of the job whose :func:`checkpoint_id_prefix` is ``prefix``: for a
    writer that keeps the prefix (a string, where a :class:`CheckpointIds` is one more object)."""
    if 0 <= seq < _FORMATTED_SEQS:
        return prefix + _SEQ_TEXT[seq]
    if not 0 <= seq <= _MAX_CHECKPOINT_SEQ:
        raise ValueError(f"checkpoint sequence {seq} is outside 0..{_MAX_CHECKPOINT_SEQ}")
    return prefix + format(seq, "08x")


_MAX_CHECKPOINT_SEQ = 0xFFFFFFFF
# Formatting an int is most of an id's cost (~2,000 of 4,000 instructions); most jobs write fewer
# than 256 checkpoints, and 256 short strings are 16 KiB.
_FORMATTED_SEQS = 256
_SEQ_TEXT = tuple(format(seq, "08x") for seq in range(_FORMATTED_SEQS))


def derived_id(*parts: str | int) -> str:
    """A stable id derived from ``parts`` (e.g. a checkpoint's job id and sequence number).

    Same parts, same id: a step repeated after a crash writes the same checkpoint id again.
    """
    if len(parts) == 2 and type(parts[0]) is str and type(parts[1]) is str:
        seed = (parts[0] + "\x1f" + parts[1]).encode()  # the engine's (a job's root run, a child's)
    else:
        seed = "\x1f".join([str(p) for p in parts]).encode()
    while True:
        digest = _blake2b(seed, digest_size=64).digest()
        encoded = _encode(digest)
        if encoded is not None:
            return encoded
        seed = digest
