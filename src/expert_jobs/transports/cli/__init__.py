"""The ``expert-jobs`` command line (typer + rich): run a job in-process with a live view, inspect
jobs and checkpoints, create API keys and serve the HTTP API. See ``docs/cli.md``."""

from expert_jobs.transports.cli._app import (
    EXIT_ANSWER_NEEDED,
    EXIT_INTERRUPTED,
    EXIT_JOB_NOT_COMPLETED,
    EXIT_PROVIDER_KEY,
    EXIT_USAGE,
    app,
    main,
)

__all__ = [
    "EXIT_ANSWER_NEEDED",
    "EXIT_INTERRUPTED",
    "EXIT_JOB_NOT_COMPLETED",
    "EXIT_PROVIDER_KEY",
    "EXIT_USAGE",
    "app",
    "main",
]
