"""The workspace: where a job's ``files`` live (one directory per application), and how they
become message parts (text inline; images and PDFs as file parts).

Every batch of names is bounded before the file system is touched, then checked or read in one
worker thread (:meth:`Workspace.check_async`, :meth:`Workspace.read_parts`), so a request naming
many files never blocks the event loop:

- at most ``max_files`` names per request (default 100);
- each file at most ``max_file_bytes`` (default 1 MiB), all of them together at most
  ``max_total_bytes`` (default 10 MiB): a file's content is inlined into the job's first message,
  which is stored in a checkpoint;
- a name must stay inside the application's directory (no ``..``, no absolute path, no link out),
  exist as a regular file there, and be a name the file system can hold.

Everything refused is a :class:`FileRefused` naming the file (and its index in the batch).
"""

from __future__ import annotations

import asyncio
import errno
import mimetypes
import os
import stat
from collections.abc import Sequence
from pathlib import Path

from expert_jobs.domain.errors import UsageError
from expert_jobs.domain.messages import FilePart, TextPart, UserMessage, UserPart

__all__ = [
    "BINARY_MEDIA_TYPES",
    "DEFAULT_MAX_FILES",
    "DEFAULT_MAX_FILE_BYTES",
    "DEFAULT_MAX_TOTAL_BYTES",
    "FileRefused",
    "Workspace",
]

BINARY_MEDIA_TYPES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp", "application/pdf"})
_BINARY_PROVIDERS = frozenset({"anthropic", "google", "openai"})

DEFAULT_MAX_FILES = 100
"""How many files one request (a start, a follow-up, a branch) may name."""
DEFAULT_MAX_FILE_BYTES = 1 << 20
"""How large (bytes) one file given to a job may be: 1 MiB."""
DEFAULT_MAX_TOTAL_BYTES = 10 << 20
"""How large (bytes) the files of one request may be together: 10 MiB."""

_MISSING = frozenset({errno.ENOENT, errno.ENOTDIR, errno.ELOOP})


class FileRefused(UsageError):
    """A file name that escapes the workspace, does not exist, cannot be given to the model, or
    goes over a limit. ``name`` is the name as given, ``index`` its position in the request's
    ``files`` (``None`` when the whole list is refused, e.g. too many names)."""

    def __init__(self, name: str, why: str, *, index: int | None = None) -> None:
        self.name = name
        self.why = why
        self.index = index
        super().__init__(f"file {name!r}: {why}")


def _size(count: int) -> str:
    """``12`` as ``12 bytes``, ``1536`` as ``1.5 KiB (1536 bytes)``."""
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if count >= scale:
            return f"{count / scale:.3g} {unit} ({count} bytes)"
    return f"{count} bytes"


def _os_reason(exc: OSError) -> str:
    if exc.errno == errno.ENAMETOOLONG:
        return "the name is too long for the file system"
    if exc.errno in _MISSING:
        return "no such file in the workspace"
    return f"cannot be read: {exc.strerror or exc}"


class Workspace:
    """Files of each application under ``root/<applicationId>/``, with the limits above.

    ``max_files``, ``max_file_bytes`` and ``max_total_bytes`` bound what one request may give
    (see the module docstring); each must be >= 1.
    """

    def __init__(
        self,
        root: str | Path,
        *,
        max_files: int = DEFAULT_MAX_FILES,
        max_file_bytes: int = DEFAULT_MAX_FILE_BYTES,
        max_total_bytes: int = DEFAULT_MAX_TOTAL_BYTES,
    ) -> None:
        for name, value in (
            ("max_files", max_files),
            ("max_file_bytes", max_file_bytes),
            ("max_total_bytes", max_total_bytes),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise UsageError(f"Workspace {root}: {name} must be a whole number >= 1, got {value!r}")
        self.root = Path(root)
        self.max_files = max_files
        self.max_file_bytes = max_file_bytes
        self.max_total_bytes = max_total_bytes

    def resolve(self, application_id: str, name: str, *, index: int | None = None) -> Path:
        """The path of ``name`` for the application; refuses names that leave its directory."""
        if not name or "\x00" in name:
            raise FileRefused(name, "empty or invalid name", index=index)
        relative = Path(name)
        if relative.is_absolute() or name.startswith(("/", "\\")):
            raise FileRefused(name, "absolute paths are not allowed", index=index)
        if ".." in relative.parts:
            raise FileRefused(name, "'..' is not allowed", index=index)
        try:
            base = (self.root / application_id).resolve()
            target = (base / relative).resolve()
        except OSError as exc:
            raise FileRefused(name, _os_reason(exc), index=index) from exc
        except RuntimeError as exc:  # a symlink loop (Python < 3.13)
            raise FileRefused(name, "the path is a symbolic link loop", index=index) from exc
        except ValueError as exc:  # a name the file system encoding cannot spell (a lone surrogate)
            raise FileRefused(name, "empty or invalid name", index=index) from exc
        if not target.is_relative_to(base):
            raise FileRefused(name, "the path leads out of the workspace", index=index)
        return target

    def check_count(self, names: Sequence[str]) -> None:
        """Refuse more than ``max_files`` names (cheap: nothing is touched)."""
        if len(names) > self.max_files:
            raise FileRefused(
                names[self.max_files],
                f"at most {self.max_files} files may be given, got {len(names)}",
                index=self.max_files,
            )

    def check(self, application_id: str, names: Sequence[str], provider: str) -> None:
        """Refuse at once what :meth:`read_parts` would refuse later: too many names, a name that
        escapes, is missing or too long, a media type the provider cannot take, a file or a batch
        over its size limit. Blocking: in async code use :meth:`check_async`."""
        self.check_count(names)
        total = 0
        for index, name in enumerate(names):
            path = self.resolve(application_id, name, index=index)
            try:
                info = path.stat()
            except OSError as exc:
                raise FileRefused(name, _os_reason(exc), index=index) from exc
            if not stat.S_ISREG(info.st_mode):
                raise FileRefused(name, "no such file in the workspace", index=index)
            media_type = _media_type(path)
            if media_type in BINARY_MEDIA_TYPES and provider not in _BINARY_PROVIDERS:
                raise FileRefused(
                    name, f"{media_type} files are not supported by {provider} models", index=index
                )
            total = self._count_bytes(name, index, info.st_size, total)

    async def check_async(self, application_id: str, names: Sequence[str], provider: str) -> None:
        """:meth:`check` in one worker thread for the whole batch (the count is checked first,
        on the caller's thread, so a huge list never reaches the file system)."""
        self.check_count(names)
        if names:
            await asyncio.to_thread(self.check, application_id, tuple(names), provider)

    def _count_bytes(self, name: str, index: int, size: int, total: int) -> int:
        if size > self.max_file_bytes:
            raise FileRefused(
                name,
                f"the file holds {_size(size)}; a file may hold at most {_size(self.max_file_bytes)}",
                index=index,
            )
        total += size
        if total > self.max_total_bytes:
            raise FileRefused(
                name,
                f"the files up to this one hold {_size(total)}; the files of a request may hold"
                f" at most {_size(self.max_total_bytes)} together",
                index=index,
            )
        return total

    async def read_parts(self, application_id: str, names: tuple[str, ...]) -> list[UserPart]:
        """Message parts for the files, read off the event loop (limits checked again: a file may
        have grown since the job was started)."""
        self.check_count(names)
        return await asyncio.to_thread(self._read_parts, application_id, names)

    def _read_parts(self, application_id: str, names: tuple[str, ...]) -> list[UserPart]:
        parts: list[UserPart] = []
        total = 0
        for index, name in enumerate(names):
            path = self.resolve(application_id, name, index=index)
            data = self._read_bytes(path, name, index)
            total = self._count_bytes(name, index, len(data), total)
            media_type = _media_type(path)
            if media_type in BINARY_MEDIA_TYPES:
                parts.append(FilePart(name, media_type, data))
            else:
                text = data.decode("utf-8", errors="replace")
                parts.append(TextPart(f'<file name="{name}">\n{text}\n</file>'))
        return parts

    def _read_bytes(self, path: Path, name: str, index: int) -> bytes:
        """At most ``max_file_bytes + 1`` bytes of a regular file (never blocks on a FIFO)."""
        try:
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
        except OSError as exc:
            raise FileRefused(name, _os_reason(exc), index=index) from exc
        try:
            with os.fdopen(fd, "rb") as handle:
                if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
                    raise FileRefused(name, "no such file in the workspace", index=index)
                return handle.read(self.max_file_bytes + 1)
        except OSError as exc:
            raise FileRefused(name, _os_reason(exc), index=index) from exc


def _media_type(path: Path) -> str:
    guessed, _ = mimetypes.guess_type(path.name)
    return guessed or "text/plain"


async def user_message(
    query: str | None, files: tuple[str, ...], application_id: str, workspace: Workspace | None
) -> UserMessage:
    """The message that starts (or follows up) a run: the query, then the files."""
    parts: list[UserPart] = []
    if query:
        parts.append(TextPart(query))
    if files:
        if workspace is None:
            raise FileRefused(files[0], "this runtime has no workspace configured")
        parts.extend(await workspace.read_parts(application_id, files))
    return UserMessage(tuple(parts))
