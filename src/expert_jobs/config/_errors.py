"""``ConfigError``: a configuration file that cannot be used, with every problem named by its key."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from expert_jobs.domain.errors import UsageError

__all__ = ["ConfigError", "ConfigProblem"]

ConfigProblem = tuple[str, str]
"""``(key, message)``: the dotted key of the TOML file (``experts."analyst".instruction``) and why."""


class ConfigError(UsageError):
    """The configuration file is unreadable, not TOML, or does not validate.

    ``source`` is the file (``None`` for a configuration given as data), ``problems`` the
    ``(key, message)`` pairs found. The message is one line naming the file and every problem.
    """

    def __init__(self, source: Path | str | None, problems: Sequence[ConfigProblem]) -> None:
        self.source = None if source is None else Path(source)
        self.problems: tuple[ConfigProblem, ...] = tuple(problems)
        where = str(source) if source is not None else "configuration"
        parts = [f"{key}: {message}" if key else message for key, message in self.problems]
        if len(parts) == 1:
            text = f"{where}: {parts[0]}"
        else:
            text = f"{where}: {len(parts)} problems: " + "; ".join(parts)
        super().__init__(text)
