"""The ``expert-jobs`` commands (typer): ``run``, ``jobs list|show|checkpoints``, ``keys create``,
``serve`` and ``--version``. Described with examples in ``docs/cli.md``.

Output: JSON results go to stdout; the live view, tables' notes, prompts and errors go to stderr.
Exit codes: 0 a completed job (or a command that worked); 1 a job that ended otherwise (failed,
exceededMaxSteps, canceled, expired); 2 a usage or configuration error; 3 a job left waiting for an
answer that could not be had; 4 no API key for the model's provider (nothing written); 130 a job
canceled by Ctrl-C.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from typer.core import TyperGroup

from expert_jobs.config import (
    Config,
    build_runtime,
    build_store,
    expert_key_of,
    find_config,
    load_config,
    parse_config,
    with_store,
)
from expert_jobs.domain.checkpoint import Checkpoint
from expert_jobs.domain.errors import CannotContinue, ExpertJobsError, JobNotFound, UsageError
from expert_jobs.domain.ids import is_id
from expert_jobs.domain.job import Job, JobQuery, iso_utc
from expert_jobs.domain.status import JobStatus
from expert_jobs.engine.runtime import Runtime
from expert_jobs.ports.store import JobStore
from expert_jobs.transports.cli import _run
from expert_jobs.transports.cli._run import (
    AnswerNeeded,
    Answers,
    JobAbandoned,
    ProviderKeyNeeded,
    RunRequest,
)
from expert_jobs.transports.cli._transcript import checkpoint_table, print_transcript

__all__ = [
    "EXIT_ANSWER_NEEDED",
    "EXIT_INTERRUPTED",
    "EXIT_JOB_NOT_COMPLETED",
    "EXIT_PROVIDER_KEY",
    "EXIT_USAGE",
    "app",
    "main",
]

T = TypeVar("T")

EXIT_JOB_NOT_COMPLETED = 1
"""The job ended failed, exceededMaxSteps, canceled or expired."""
EXIT_USAGE = 2
"""A usage or configuration error (bad option, unknown expert or job, invalid config file...)."""
EXIT_ANSWER_NEEDED = 3
"""The job paused for an interactive call and no answer could be had (it stays paused)."""
EXIT_PROVIDER_KEY = 4
"""The model's provider has no API key: nothing was written (``run``) or changed (``jobs continue``)."""
EXIT_INTERRUPTED = 130
"""Ctrl-C canceled the job."""


def _hide_flag_types(params: list[Any]) -> None:
    """Flags take no value: show ``--json``, not ``--json <bool>``, in the help (typer's rich help
    prints a type for every option, flags and ``--help`` included)."""
    for param in params:
        if getattr(param, "is_flag", False) and getattr(param, "metavar", "") is None:
            param.metavar = ""


class _Group(TyperGroup):
    """A command group whose help, and its commands' help, show flags as flags."""

    def format_help(self, ctx: Any, formatter: Any) -> None:
        _hide_flag_types(self.get_params(ctx))
        super().format_help(ctx, formatter)

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        command = super().get_command(ctx, cmd_name)
        if command is not None and not isinstance(command, _Group):
            _hide_flag_types(command.get_params(ctx))  # its options and its --help
        return command


app = typer.Typer(
    name="expert-jobs",
    cls=_Group,
    help="Run and inspect LLM expert jobs (the engine behind the Expert Jobs API).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode="markdown",
)
"""The ``expert-jobs`` command group (the console script calls :func:`main`)."""
jobs_app = typer.Typer(
    cls=_Group, help="Inspect, continue and cancel the jobs in the store.", no_args_is_help=True
)
"""``expert-jobs jobs ...``."""
keys_app = typer.Typer(
    cls=_Group, help="Create API keys for the configuration file's applications.", no_args_is_help=True
)
"""``expert-jobs keys ...``."""
app.add_typer(jobs_app, name="jobs")
app.add_typer(keys_app, name="keys")


# ---------------------------------------------------------------------- shared pieces


def _stderr() -> Console:
    return Console(stderr=True, soft_wrap=True, highlight=False)


def _fail(message: str, code: int = EXIT_USAGE) -> NoReturn:
    _stderr().print(f"[bold red]error:[/] [red]{escape(message)}[/]")
    raise typer.Exit(code)


@contextlib.contextmanager
def _errors() -> Iterator[None]:
    """Expected errors become one red line on stderr and exit code 2 (never a traceback)."""
    try:
        yield
    except AnswerNeeded as exc:
        _fail(str(exc), EXIT_ANSWER_NEEDED)
    except ProviderKeyNeeded as exc:
        _fail(str(exc), EXIT_PROVIDER_KEY)
    except JobAbandoned as exc:
        _fail(str(exc), EXIT_INTERRUPTED)
    except ExpertJobsError as exc:
        _fail(str(exc))
    except OSError as exc:
        _fail(f"{type(exc).__name__}: {exc}")


def _run_async(factory: Callable[[], Awaitable[T]]) -> T:
    async def runner() -> T:
        return await factory()

    try:
        return asyncio.run(runner())
    except KeyboardInterrupt:
        _fail("interrupted", EXIT_INTERRUPTED)


def _print_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, ensure_ascii=False))


def _job_wire(job: Job) -> dict[str, Any]:
    """The job's wire object as every command prints it: numbers rendered one way whichever store
    or code path produced the job (SQLite hands a REAL column back as ``0`` from some statements)."""
    data = job.to_wire()
    data["temperature"] = float(data["temperature"])
    return data


def _config(config: Path | None, example: bool, store: str | None) -> Config:
    """The configuration: ``--example``, else ``--config`` / ``$EXPERT_JOBS_CONFIG`` /
    ``./expert-jobs.toml``, else the defaults; ``--store`` replaces its store."""
    if example and config is not None:
        raise UsageError("give --config or --example, not both")
    if example:
        from expert_jobs.examples import example_config

        loaded = example_config()
    else:
        path = find_config(config)
        loaded = load_config(path) if path is not None else parse_config({})
    return with_store(loaded, store) if store is not None else loaded


async def _with_store(config: Config, use: Callable[[JobStore], Awaitable[T]]) -> T:
    store = build_store(config)
    try:
        return await use(store)
    finally:
        await store.close()


def _redact(url: str) -> str:
    """A store URL fit to print: a password in it is masked."""
    scheme, sep, rest = url.partition("://")
    credentials, at, host = rest.rpartition("@")
    if at and ":" in credentials:
        user = credentials.split(":", 1)[0]
        return f"{scheme}{sep}{user}:***@{host}"
    return url


def _stdout_table_console() -> Console:
    """Tables on stdout: the terminal's width, or wide enough not to cut ids in a pipe or file."""
    return Console(soft_wrap=True, width=None if sys.stdout.isatty() else 240)


def _stdout_console() -> Console:
    """Checkpoint tables and transcripts on stdout: the terminal's width, else 100 columns."""
    return Console(highlight=False, width=None if sys.stdout.isatty() else _PIPE_WIDTH)


_PIPE_WIDTH = 100


def _version(value: bool) -> None:
    if value:
        from expert_jobs import __version__

        typer.echo(f"expert-jobs {__version__}")
        raise typer.Exit()


ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        help="The configuration file (default: $EXPERT_JOBS_CONFIG, else ./expert-jobs.toml if it exists).",
        show_default=False,
    ),
]
ExampleOption = Annotated[
    bool, typer.Option("--example", help="Use the bundled offline example's configuration.")
]
StoreOption = Annotated[
    str | None,
    typer.Option(
        "--store",
        help="The job store URL, replacing the file's: memory://, sqlite:///path, postgresql://...",
        show_default=False,
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit."),
    ] = False,
) -> None:
    """Run and inspect LLM expert jobs (the engine behind the Expert Jobs API)."""


# ---------------------------------------------------------------------- run


def _pick_expert(config: Config, expert: str | None, example: bool) -> str:
    if expert is not None:
        return expert
    if example:
        from expert_jobs.examples import EXAMPLE_EXPERT

        return EXAMPLE_EXPERT
    keys = [expert_key_of(name, each) for name, each in config.experts.items()]
    if len(keys) == 1:
        return keys[0]
    if not keys:
        where = str(config.source) if config.source is not None else "no configuration file was found"
        raise UsageError(f"no experts are configured ({where}); give --config FILE or --example")
    raise UsageError(
        f"the configuration has {len(keys)} experts; choose one with --expert: {', '.join(keys)}"
    )


@app.command()
def run(
    query: Annotated[str | None, typer.Argument(help="The query for the expert.", show_default=False)] = None,
    expert: Annotated[
        str | None,
        typer.Option(
            "--expert",
            "-e",
            help="The expert key (name@version, name@tag or name); default: the file's only expert.",
            show_default=False,
        ),
    ] = None,
    file: Annotated[
        list[str] | None,
        typer.Option(
            "--file",
            "-f",
            help="A file of the workspace to give the expert (repeatable).",
            show_default=False,
        ),
    ] = None,
    answer: Annotated[
        list[str] | None,
        typer.Option(
            "--answer",
            "-a",
            help="An answer to an interactive tool call (repeatable; used in order, then the prompt).",
            show_default=False,
        ),
    ] = None,
    model: Annotated[
        str | None, typer.Option("--model", "-m", help="The model id.", show_default=False)
    ] = None,
    max_steps: Annotated[
        int | None, typer.Option("--max-steps", min=1, help="The job's step limit.", show_default=False)
    ] = None,
    max_retries: Annotated[
        int | None,
        typer.Option("--max-retries", min=0, help="Failed generations retried in a row.", show_default=False),
    ] = None,
    temperature: Annotated[
        float | None,
        typer.Option("--temperature", min=0.0, max=1.0, help="Sampling temperature.", show_default=False),
    ] = None,
    config: ConfigOption = None,
    example: ExampleOption = False,
    store: StoreOption = None,
) -> None:
    """Run a job in this process with a live view (stderr) and print the final job as JSON (stdout).

    Interactive tool calls are answered from --answer values in order, then at the prompt when
    standard input is a terminal. Ctrl-C cancels the job. Exit code: 0 completed; 1 failed,
    exceededMaxSteps, canceled or expired; 2 usage error; 3 waiting for an answer; 4 no API key for
    the model's provider (nothing written); 130 Ctrl-C.
    """
    from expert_jobs.examples import EXAMPLE_EXPERT, EXAMPLE_QUERY

    console = _stderr()
    with _errors():
        settings = _config(config, example, store)
        expert_key = _pick_expert(settings, expert, example)
        files = tuple(file or ())
        if example and query is None and not files and expert_key == EXAMPLE_EXPERT:
            query = EXAMPLE_QUERY
        request = RunRequest(expert_key, query, files, model, temperature, max_steps, max_retries)
        answers = _answers(console, answer)
        _follow(settings, console, answers, lambda runtime: _run.submit_job(runtime, request))


def _answers(console: Console, given: list[str] | None) -> Answers:
    prompt = _run.console_prompt(console) if _run.stdin_is_terminal() else None
    return Answers(list(given or ()), prompt)


def _follow(
    settings: Config,
    console: Console,
    answers: Answers,
    start: Callable[[Runtime], Awaitable[Job]],
    *,
    choose: Callable[[Runtime], Awaitable[Config | None]] | None = None,
) -> None:
    """Build the runtime, get the job from ``start``, follow it to its end (see ``follow_job``) and
    report it. The report is printed before the event loop shuts down, which waits for the threads of
    tool calls a cancel abandoned. ``choose`` may name another configuration to build the runtime
    from (on the same store) before ``start``."""

    async def go() -> None:
        runtime = build_runtime(settings)
        try:
            other = await choose(runtime) if choose is not None else None
            if other is not None:
                replacement = build_runtime(other)
                await runtime.close()
                runtime = replacement
            job = await start(runtime)
            outcome = await _run.follow_job(
                runtime, job, console=console, answers=answers, store_label=_redact(settings.store)
            )
            cost = await _cost_label(runtime.store, outcome.job)
        except AnswerNeeded as exc:
            paused = await runtime.get(exc.job_id)
            _print_json(_job_wire(paused))
            raise
        finally:
            await runtime.close()
        _report(console, outcome, cost)

    _run_async(go)


async def _cost_label(store: JobStore, job: Job, checkpoints: list[Checkpoint] | None = None) -> str:
    """The job's cost as people read it (``$0.0049``), ``unknown`` for a model the price table does
    not know, or ``unknown`` with a hint without the ``prices`` extra."""
    from expert_jobs.engine.pricing import PRICED_STATUSES, PricesUnavailable, format_cost, job_cost

    try:
        if checkpoints is None:
            if job.status in PRICED_STATUSES and job.last_checkpoint_id is not None:
                # An ended job's final checkpoint normally carries its cost: one read, not all.
                final = await store.get_checkpoint(job.id, job.last_checkpoint_id)
                if final is not None and final.cost is not None:
                    return format_cost(final.cost)
            checkpoints = await _all_checkpoints(store, job.id)
        return format_cost(job_cost(job, checkpoints))
    except PricesUnavailable:
        return "unknown (pip install 'expert-jobs[prices]')"


def _report(console: Console, outcome: _run.RunOutcome, cost: str) -> None:
    """Print the job as JSON on stdout, a summary on stderr, and exit with the job's code."""
    _print_json(_job_wire(outcome.job))
    _finish(console, outcome.job, outcome.interrupted, cost)


def _finish(console: Console, job: Job, interrupted: bool, cost: str) -> None:
    usage = job.usage
    steps = "1 step" if job.total_steps == 1 else f"{job.total_steps} steps"
    summary = f"{steps} · {usage.total_tokens:,} tokens · cost {escape(cost)} · job {job.id}"
    if job.status is JobStatus.COMPLETED:
        console.print(f"[bold green]✔ completed[/] · {summary}")
        return
    reason = ""
    if job.error:
        reason = f": {job.error.message}"
    if interrupted:
        console.print(f"[bold yellow]✘ interrupted: the job is {job.status.value}[/] · {summary}")
        raise typer.Exit(EXIT_INTERRUPTED)
    console.print(f"[bold red]✘ the job ended {job.status.value}{escape(reason)}[/] · {summary}")
    raise typer.Exit(EXIT_JOB_NOT_COMPLETED)


# ---------------------------------------------------------------------- jobs


def _when(epoch: float) -> str:
    return iso_utc(epoch).replace("T", " ")[:19]


def _statuses(values: list[str] | None) -> frozenset[JobStatus] | None:
    if not values:
        return None
    known = [s.value for s in JobStatus]
    chosen = set()
    for value in values:
        for part in value.split(","):
            if part.strip() not in known:
                raise UsageError(f"--status {part.strip()!r} is not a job status; one of: {', '.join(known)}")
            chosen.add(JobStatus(part.strip()))
    return frozenset(chosen)


@jobs_app.command("list")
def jobs_list(
    filter_: Annotated[
        str | None,
        typer.Option(
            "--expert",
            "--filter",
            help="Keep jobs whose expert key contains this text (case-insensitive).",
            show_default=False,
        ),
    ] = None,
    status: Annotated[
        list[str] | None,
        typer.Option(
            "--status",
            "-s",
            help="Keep jobs in this status (repeatable, or comma-separated).",
            show_default=False,
        ),
    ] = None,
    take: Annotated[int, typer.Option("--take", min=1, max=100, help="Page size.")] = 100,
    skip: Annotated[int, typer.Option("--skip", min=0, help="Jobs to skip.")] = 0,
    sort: Annotated[str, typer.Option("--sort", help="createdAt or updatedAt.")] = "createdAt",
    order: Annotated[str, typer.Option("--order", help="desc (newest first) or asc.")] = "desc",
    application: Annotated[
        str | None,
        typer.Option(
            "--application",
            help="The application whose jobs to list (default: the file's engine.applicationId).",
            show_default=False,
        ),
    ] = None,
    as_json: JsonOption = False,
    config: ConfigOption = None,
    store: StoreOption = None,
) -> None:
    """List jobs (newest first): a table, or with --json the API's list body."""
    with _errors():
        settings = _config(config, False, store)
        if sort not in ("createdAt", "updatedAt"):
            raise UsageError(f"--sort must be createdAt or updatedAt, got {sort!r}")
        if order not in ("asc", "desc"):
            raise UsageError(f"--order must be asc or desc, got {order!r}")
        app_id = application or settings.engine.application_id
        if not is_id(app_id):
            raise UsageError(f"--application {app_id!r} is not an id (24 lowercase letters and digits)")
        query = JobQuery(
            application_id=app_id,
            filter=filter_,
            sort=sort,  # type: ignore[arg-type]
            order=order,  # type: ignore[arg-type]
            take=take,
            skip=skip,
            statuses=_statuses(status),
        )

        async def page(s: JobStore) -> tuple[list[Job], int, list[str]]:
            jobs, total = await s.list(query)
            costs = [] if as_json else [await _cost_label(s, job) for job in jobs]
            return jobs, total, costs

        jobs, total, costs = _run_async(lambda: _with_store(settings, page))
    if as_json:
        _print_json(
            {
                "data": {"expertJobs": [_job_wire(job) for job in jobs]},
                "meta": {"total": total, "take": take, "skip": skip},
            }
        )
        return
    table = Table(title=f"jobs of {app_id} ({len(jobs)} of {total})", title_justify="left")
    for column in ("id", "status", "expert", "steps", "tokens", "cost", "created"):
        table.add_column(column, justify="right" if column in ("steps", "tokens", "cost") else "left")
    for job, cost in zip(jobs, costs, strict=True):
        table.add_row(
            job.id,
            job.status.value,
            job.expert_key,
            f"{job.total_steps}/{job.max_steps}",
            f"{job.usage.total_tokens:,}",
            escape(cost),
            _when(job.created_at),
        )
    _stdout_table_console().print(table)


async def _all_checkpoints(store: JobStore, job_id: str, upto: int | None = None) -> list[Checkpoint]:
    """The job's checkpoints in ``seq`` order (the first ``upto`` of them), a page at a time."""
    found: list[Checkpoint] = []
    while upto is None or len(found) < upto:
        take = _PAGE if upto is None else min(_PAGE, upto - len(found))
        page, total = await store.list_checkpoints(job_id, take=take, skip=len(found))
        found.extend(page)
        if not page or len(found) >= total:
            break
    return found


_PAGE = 100


@jobs_app.command("show")
def jobs_show(
    job_id: Annotated[str, typer.Argument(help="The job id.")],
    transcript: Annotated[
        bool,
        typer.Option(
            "--transcript",
            help="Print the conversation (query, steps, tool calls and results, delegates, answers) "
            "instead of the JSON.",
        ),
    ] = False,
    output: Annotated[
        bool,
        typer.Option(
            "--output",
            help="Print only the job's validated output as JSON (the answer of an expert with an "
            "output schema; null when the job has none).",
        ),
    ] = False,
    config: ConfigOption = None,
    store: StoreOption = None,
) -> None:
    """Print one job as JSON (the API's expertJob), or its conversation with --transcript; then
    its cost in money ("unknown" for a model the price table does not know): on stderr after the
    JSON (which stays the API's object), as the last line of the transcript. With --output, only
    the job's validated output (structured output), as JSON."""
    if transcript and output:
        raise typer.BadParameter("give --transcript or --output, not both")
    with _errors():
        settings = _config(config, False, store)

        async def get(s: JobStore) -> tuple[Job, list[Checkpoint], str]:
            job = await s.get(job_id)
            if job is None:
                raise JobNotFound(job_id)
            if output:
                # The output is on the final checkpoint of a completed job.
                if job.status is JobStatus.COMPLETED and job.last_checkpoint_id is not None:
                    final = await s.get_checkpoint(job_id, job.last_checkpoint_id)
                    job.output = None if final is None else final.output
                return job, [], ""
            checkpoints = await _all_checkpoints(s, job_id) if transcript else []
            return job, checkpoints, await _cost_label(s, job, checkpoints if transcript else None)

        job, checkpoints, cost = _run_async(lambda: _with_store(settings, get))
    if output:
        _print_json(job.output)
        return
    if transcript:
        console = _stdout_console()
        print_transcript(console, job, checkpoints)
        console.print(f"cost {escape(cost)}")
        return
    _print_json(_job_wire(job))
    _stderr().print(f"cost {escape(cost)}")


@jobs_app.command("checkpoints")
def jobs_checkpoints(
    job_id: Annotated[str, typer.Argument(help="The job id.")],
    checkpoint_id: Annotated[
        str | None, typer.Option("--id", help="Print this one checkpoint as JSON.", show_default=False)
    ] = None,
    seq: Annotated[
        int | None,
        typer.Option(
            "--seq",
            min=1,
            help="Print the checkpoint with this seq (the table's #) as JSON.",
            show_default=False,
        ),
    ] = None,
    take: Annotated[int, typer.Option("--take", min=1, max=100, help="Page size.")] = 100,
    skip: Annotated[int, typer.Option("--skip", min=0, help="Checkpoints to skip.")] = 0,
    as_json: JsonOption = False,
    config: ConfigOption = None,
    store: StoreOption = None,
) -> None:
    """List a job's checkpoints in order (a table with their new messages, or --json), or print one
    with --seq or --id."""
    with _errors():
        settings = _config(config, False, store)
        if checkpoint_id is not None and seq is not None:
            raise UsageError("give --id or --seq, not both")

        async def read(s: JobStore) -> tuple[Job, list[Checkpoint], int, list[Checkpoint]]:
            job = await s.get(job_id)
            if job is None:
                raise JobNotFound(job_id)
            if seq is not None:
                found, _ = await s.list_checkpoints(job_id, take=1, skip=seq - 1)
                if not found or found[0].seq != seq:
                    raise UsageError(f"job {job_id} has no checkpoint with seq {seq}")
                return job, found, 1, []
            if checkpoint_id is not None:
                one = await s.get_checkpoint(job_id, checkpoint_id)
                if one is None:
                    raise UsageError(f"job {job_id} has no checkpoint {checkpoint_id!r}")
                return job, [one], 1, []
            page, total = await s.list_checkpoints(job_id, take=take, skip=skip)
            earlier = await _all_checkpoints(s, job_id, skip) if skip and not as_json else []
            return job, page, total, earlier

        job, checkpoints, total, earlier = _run_async(lambda: _with_store(settings, read))
    if checkpoint_id is not None or seq is not None:
        _print_json(checkpoints[0].to_wire())
        return
    if as_json:
        _print_json(
            {
                "data": {"checkpoints": [c.to_wire() for c in checkpoints]},
                "meta": {"total": total, "take": take, "skip": skip},
            }
        )
        return
    console = _stdout_console()
    console.print(checkpoint_table(job, checkpoints, total, width=console.width, earlier=earlier))


@jobs_app.command("continue")
def jobs_continue(
    job_id: Annotated[str, typer.Argument(help="The job id.")],
    query: Annotated[
        str | None,
        typer.Argument(
            help="A follow-up query (for a completed, exceededMaxSteps or failed job).", show_default=False
        ),
    ] = None,
    answer: Annotated[
        list[str] | None,
        typer.Option(
            "--answer",
            "-a",
            help="An answer to a pending interactive call (repeatable; in order, then the prompt).",
            show_default=False,
        ),
    ] = None,
    file: Annotated[
        list[str] | None,
        typer.Option(
            "--file", "-f", help="A file of the workspace for the follow-up (repeatable).", show_default=False
        ),
    ] = None,
    model: Annotated[
        str | None, typer.Option("--model", "-m", help="The model id.", show_default=False)
    ] = None,
    max_steps: Annotated[
        int | None, typer.Option("--max-steps", min=1, help="The job's new step limit.", show_default=False)
    ] = None,
    config: ConfigOption = None,
    example: ExampleOption = False,
    store: StoreOption = None,
) -> None:
    """Continue a job here with the live view: answer its pending interactive calls, or follow up a
    finished job with a new query, or run a queued one; then print it as JSON like `run`.

    It needs the experts the job ran with: a job of the bundled example is continued with the
    example's configuration when neither --config nor --example is given; for any other job, a
    configuration that does not define its expert is refused before anything is written.
    """
    console = _stderr()
    with _errors():
        settings = _config(config, example, store)
        answers = _answers(console, answer)
        files = tuple(file or ())
        chosen_by_user = config is not None or example

        async def choose(runtime: Runtime) -> Config | None:
            job = await runtime.get(job_id)
            if runtime.experts.get(job.expert_key) is not None or chosen_by_user:
                return None
            if not _is_example_job(job):
                return None
            console.print(
                f"[dim]job {job_id} runs the bundled example's expert {escape(job.expert_key)}: "
                "continuing it with the example's configuration (as --example would)[/]",
                highlight=False,
            )
            return with_store(_example_settings(), settings.store)

        async def start(runtime: Runtime) -> Job:
            job = await runtime.get(job_id)
            if job.status in (JobStatus.QUEUED, JobStatus.REQUEST_INTERACTIVE_TOOL_RESULT):
                if query is not None or files:
                    raise CannotContinue(
                        job_id, job.status, "the job is not finished: answer it with --answer, not a query"
                    )
                if model is not None or max_steps is not None:
                    raise CannotContinue(
                        job_id, job.status, "--model and --max-steps apply to a follow-up query"
                    )
                _check_can_run(runtime, job, None, config, example)
                return job
            if job.status in _FOLLOW_UP_FROM:
                _check_can_run(runtime, job, model, config, example)
            return await runtime.continue_job(job_id, query, files, model=model, max_steps=max_steps)

        _follow(settings, console, answers, start, choose=choose)


_FOLLOW_UP_FROM = frozenset({JobStatus.COMPLETED, JobStatus.EXCEEDED_MAX_STEPS, JobStatus.FAILED})


def _example_settings() -> Config:
    from expert_jobs.examples import example_config

    return example_config()


def _is_example_job(job: Job) -> bool:
    """Whether the job's expert is one of the bundled example's, exactly (its whole digest: key,
    description, tags, tools, interactive tools and delegates)."""
    from expert_jobs.config import build_experts

    _, experts = build_experts(_example_settings())
    return any(job.expert == expert.digest() for expert in experts)


def _check_can_run(runtime: Runtime, job: Job, model: str | None, config: Path | None, example: bool) -> None:
    """Refuse, before anything is written, to continue a job this configuration cannot run: its
    expert (or one of its tools or delegates) is not defined here, or its model's provider has no
    key."""
    expert = runtime.experts.get(job.expert_key)
    if expert is None:
        if example:
            where = "the bundled example's configuration"
        elif config is not None:
            where = f"the configuration file {config}"
        else:
            found = find_config(None)
            where = f"the configuration file {found}" if found else "the defaults (no configuration file)"
        raise CannotContinue(
            job.id,
            job.status,
            f"its expert {job.expert_key} is not defined in {where}; pass the configuration the job "
            "was started with: --config FILE (or --example for the bundled example's jobs); "
            "the job was not changed",
        )
    runtime.check_ready(expert)
    _run.check_provider_key(runtime, model or job.model, job.application_id, job.id)


@jobs_app.command("cancel")
def jobs_cancel(
    job_id: Annotated[str, typer.Argument(help="The job id.")],
    config: ConfigOption = None,
    store: StoreOption = None,
) -> None:
    """Cancel a job and print it as JSON (a job no worker holds is canceled at once; a running one
    goes canceling and its worker stops it)."""
    with _errors():
        settings = _config(config, False, store)

        async def cancel() -> Job:
            runtime = build_runtime(settings)
            try:
                return await _run.cancel_job(runtime, job_id, finished_ok=False)
            finally:
                await runtime.close()

        job = _run_async(cancel)
    _print_json(_job_wire(job))


# ---------------------------------------------------------------------- keys


_ID_RULE = "ids are 24 characters of [a-z0-9], e.g. myapplication00000000001"


@keys_app.command("create")
def keys_create(
    application: Annotated[
        str | None,
        typer.Option(
            "--application",
            help="The application the key acts for: an id of 24 characters of [a-z0-9] "
            "(e.g. myapplication00000000001). Default: a new application id, printed.",
            show_default=False,
        ),
    ] = None,
    organization: Annotated[
        str | None,
        typer.Option(
            "--organization",
            help="The application's organization, an id like --application's (added to the snippet).",
            show_default=False,
        ),
    ] = None,
    system: Annotated[
        bool, typer.Option("--system", help="A system key (the status-update endpoint) instead.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the key and its hash as JSON.")] = False,
) -> None:
    """Create an API key: prints the key ONCE, its hash and the TOML to paste into the config file.

    Without --application (and without --system) the key is for a new application whose id is made
    and printed. Only the hash goes into the configuration; the key itself is never stored anywhere.
    """
    from expert_jobs.domain.ids import new_id
    from expert_jobs.service.applications import generate_key, hash_key

    with _errors():
        if system and (application is not None or organization is not None):
            raise UsageError("--system makes a system key: --application and --organization do not apply")
        for label, value in (("--application", application), ("--organization", organization)):
            if value is not None and not is_id(value):
                raise UsageError(
                    f"{label} {value!r} is not an id: {_ID_RULE}; "
                    "leave --application out to make a new application id"
                )
    new_application = not system and application is None
    if new_application:
        application = new_id()
    key = generate_key(system=system)
    key_hash = hash_key(key)
    if system:
        snippet = f'[[systemKeys]]\nkeyHash = "{key_hash}"'
    else:
        lines = [f'[applications."{application}"]']
        if organization is not None:
            lines.append(f'organizationId = "{organization}"')
        lines.append(f'keyHashes = ["{key_hash}"]')
        snippet = "\n".join(lines)
    if as_json:
        data: dict[str, Any] = {"key": key, "keyHash": key_hash, "toml": snippet}
        if application is not None:
            data["applicationId"] = application
            data["newApplication"] = new_application
        _print_json(data)
        return
    if new_application:
        typer.echo(f"New application id: {application} (made for this key; use it as applicationId)\n")
    kind = "system key" if system else f"API key for application {application}"
    typer.echo(f"New {kind} (shown once; it is not stored anywhere, keep it now):\n\n    {key}\n")
    typer.echo(f"Its hash: {key_hash}\n")
    if system:
        typer.echo(
            "Paste this at the end of the configuration file, or just before any [table] header "
            "(each [[systemKeys]] entry adds one system key; a file may hold any number of them):\n"
        )
    else:
        typer.echo(
            "Paste this at the end of the configuration file (if the file already has this "
            "application's table, add the hash to its keyHashes list instead):\n"
        )
    typer.echo(snippet)


# ---------------------------------------------------------------------- serve


@app.command()
def serve(
    host: Annotated[
        str | None,
        typer.Option("--host", help="Listen address (default: [server] host).", show_default=False),
    ] = None,
    port: Annotated[
        int | None,
        typer.Option(
            "--port", min=0, max=65535, help="Listen port (default: [server] port).", show_default=False
        ),
    ] = None,
    max_body_bytes: Annotated[
        int | None,
        typer.Option(
            "--max-body-bytes", min=1, help="Largest request body (default 1048576).", show_default=False
        ),
    ] = None,
    limit_concurrency: Annotated[
        int | None,
        typer.Option(
            "--limit-concurrency",
            min=1,
            help="Connections past which requests get a 503 (default 1000).",
            show_default=False,
        ),
    ] = None,
    timeout_keep_alive: Annotated[
        int | None,
        typer.Option(
            "--timeout-keep-alive", min=1, help="Idle keep-alive seconds (default 5).", show_default=False
        ),
    ] = None,
    timeout_graceful_shutdown: Annotated[
        int | None,
        typer.Option(
            "--timeout-graceful-shutdown",
            min=1,
            help="Seconds a shutdown waits for open requests and streams (default 10).",
            show_default=False,
        ),
    ] = None,
    proxy_headers: Annotated[
        bool | None,
        typer.Option(
            "--proxy-headers/--no-proxy-headers",
            help="Trust X-Forwarded-For/-Proto from --forwarded-allow-ips (default: on).",
            show_default=False,
        ),
    ] = None,
    forwarded_allow_ips: Annotated[
        str | None,
        typer.Option(
            "--forwarded-allow-ips",
            help="Proxies trusted for X-Forwarded-* (comma-separated; default: $FORWARDED_ALLOW_IPS, "
            "else 127.0.0.1).",
            show_default=False,
        ),
    ] = None,
    config: ConfigOption = None,
    example: Annotated[
        bool,
        typer.Option(
            "--example",
            help="Serve the bundled offline example, with an application and a new API key (printed): "
            "open the printed dashboard URL and start its job.",
        ),
    ] = False,
    pace: Annotated[
        float | None,
        typer.Option(
            "--pace",
            min=0.0,
            help="With --example: seconds each scripted model turn takes, to watch the job (default 1.0).",
            show_default=False,
        ),
    ] = None,
    store: StoreOption = None,
) -> None:
    """Serve the Expert Jobs API over HTTP (uvicorn), with a worker running the jobs, and the web
    dashboard at /ui (docs/dashboard.md).

    Runs with bounded body, header, keep-alive, concurrency and shutdown times (see the Deployment
    section of docs/operations.md); put it behind a reverse proxy that terminates TLS.
    """
    from expert_jobs.transports.cli._serve import (
        EXAMPLE_APPLICATION,
        EXAMPLE_PACE,
        example_server_config,
        server_limits,
        uvicorn_options,
    )

    with _errors():
        if pace is not None and not example:
            raise UsageError("--pace applies to --example only")
        settings = _config(config, example, store)
        example_key = example_provider = None
        if example:
            settings, example_key, example_provider = example_server_config(
                settings, pace=EXAMPLE_PACE if pace is None else pace
            )
        limits = server_limits(
            settings,
            max_body_bytes=max_body_bytes,
            limit_concurrency=limit_concurrency,
            timeout_keep_alive=timeout_keep_alive,
            timeout_graceful_shutdown=timeout_graceful_shutdown,
            proxy_headers=proxy_headers,
            forwarded_allow_ips=forwarded_allow_ips,
        )
        try:
            import uvicorn

            from expert_jobs.transports.http import app_from_config, create_app
        except ImportError as exc:
            raise UsageError(
                f"serve needs the server extra (pip install 'expert-jobs[server]'): {exc}"
            ) from None
        if example_provider is not None:
            from expert_jobs.config import build_service

            service = build_service(settings, providers=example_provider)
            asgi = create_app(service, max_body_bytes=limits.max_body_bytes)
        else:
            asgi = app_from_config(settings, max_body_bytes=limits.max_body_bytes)
        host = host or settings.server.host
        port = settings.server.port if port is None else port
        if example_key is not None:
            _print_example_banner(settings, host, port, example_key, EXAMPLE_APPLICATION)
        uvicorn.run(asgi, **uvicorn_options(limits, host=host, port=port))


def _print_example_banner(settings: Config, host: str, port: int, key: str, application: str) -> None:
    """What ``serve --example`` prints on stdout before the server starts: the URL and the key."""
    shown = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
    shown = f"[{shown}]" if ":" in shown else shown
    where = f"http://{shown}:{port}/ui/" if port else "the address uvicorn prints below, path /ui/"
    typer.echo(
        f"expert-jobs: serving the bundled offline example (jobs in {_redact(settings.store)})\n\n"
        f"  Dashboard:  {where}\n"
        f"  API key:    {key}\n"
        f"              (application {application}; a new key at every start, shown only here)\n\n"
        "Open the dashboard, sign in with the key and press \"Start job\": the example job runs, "
        "asks you a question, and completes once you answer it.\n"
    )
    sys.stdout.flush()


def main() -> None:
    """The ``expert-jobs`` console script."""
    app(prog_name="expert-jobs")


if __name__ == "__main__":  # pragma: no cover
    main()
    sys.exit(0)
