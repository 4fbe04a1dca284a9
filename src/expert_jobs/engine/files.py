"""The workspace: where a job's ``files`` live (one directory per application), and how they
become message parts (text inline; images and PDFs as file parts)."""

from __future__ import annotations

import asyncio
import mimetypes
from pathlib import Path

from expert_jobs.domain.errors import UsageError
from expert_jobs.domain.messages import FilePart, TextPart, UserMessage, UserPart

__all__ = ["BINARY_MEDIA_TYPES", "FileRefused", "Workspace"]

BINARY_MEDIA_TYPES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp", "application/pdf"})
_BINARY_PROVIDERS = frozenset({"anthropic", "google", "openai"})


class FileRefused(UsageError):
    """A file name that escapes the workspace, does not exist, or cannot be given to the model."""

    def __init__(self, name: str, why: str) -> None:
        self.name = name
        self.why = why
        super().__init__(f"file {name!r}: {why}")


class Workspace:
    """Files of each application under ``root/<applicationId>/``."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def resolve(self, application_id: str, name: str) -> Path:
        """The path of ``name`` for the application; refuses names that leave its directory."""
        if not name or "\x00" in name:
            raise FileRefused(name, "empty or invalid name")
        relative = Path(name)
        if relative.is_absolute() or name.startswith(("/", "\\")):
            raise FileRefused(name, "absolute paths are not allowed")
        if ".." in relative.parts:
            raise FileRefused(name, "'..' is not allowed")
        base = (self.root / application_id).resolve()
        target = (base / relative).resolve()
        if not target.is_relative_to(base):
            raise FileRefused(name, "the path leads out of the workspace")
        return target

    def check(self, application_id: str, names: tuple[str, ...], provider: str) -> None:
        """Refuse at once what :meth:`read_parts` would refuse later (missing, escaping, unsupported)."""
        for name in names:
            path = self.resolve(application_id, name)
            if not path.is_file():
                raise FileRefused(name, "no such file in the workspace")
            media_type = _media_type(path)
            if media_type in BINARY_MEDIA_TYPES and provider not in _BINARY_PROVIDERS:
                raise FileRefused(name, f"{media_type} files are not supported by {provider} models")

    async def read_parts(self, application_id: str, names: tuple[str, ...]) -> list[UserPart]:
        """Message parts for the files, read off the event loop."""
        return await asyncio.to_thread(self._read_parts, application_id, names)

    def _read_parts(self, application_id: str, names: tuple[str, ...]) -> list[UserPart]:
        parts: list[UserPart] = []
        for name in names:
            path = self.resolve(application_id, name)
            try:
                data = path.read_bytes()
            except OSError as exc:
                raise FileRefused(name, f"cannot be read: {exc.strerror}") from exc
            media_type = _media_type(path)
            if media_type in BINARY_MEDIA_TYPES:
                parts.append(FilePart(name, media_type, data))
            else:
                text = data.decode("utf-8", errors="replace")
                parts.append(TextPart(f'<file name="{name}">\n{text}\n</file>'))
        return parts


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
