"""``expert-jobs run``: submit a job, drive it in this process under the live view, answer its
interactive calls (from ``--answer`` values, else at the prompt), and stop it cleanly on Ctrl-C."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from rich.console import Console
from rich.markup import escape
from rich.prompt import Prompt

from expert_jobs.domain.errors import (
    ExpertJobsError,
    IllegalTransition,
    ProviderKeyMissing,
    StaleJobVersion,
    UsageError,
)
from expert_jobs.domain.job import Job
from expert_jobs.domain.messages import ToolCall
from expert_jobs.domain.status import JobStatus
from expert_jobs.engine.runner import root_run_id
from expert_jobs.engine.runtime import Runtime
from expert_jobs.transports.cli._view import LiveView, describe_call

__all__ = [
    "AnswerNeeded",
    "Answers",
    "JobAbandoned",
    "ProviderKeyNeeded",
    "RunOutcome",
    "RunRequest",
    "cancel_job",
    "check_provider_key",
    "console_prompt",
    "follow_job",
    "stdin_is_terminal",
    "submit_job",
]

S = JobStatus


def stdin_is_terminal() -> bool:
    """Whether answers can be asked for at a prompt (standard input is a terminal)."""
    try:
        return sys.stdin is not None and sys.stdin.isatty()
    except (AttributeError, ValueError):
        return False


class AnswerNeeded(UsageError):
    """The job paused for an interactive tool call and no answer can be had: no ``--answer`` value
    is left and standard input is not a terminal. The job stays paused (it can be continued later)."""

    def __init__(self, job_id: str, status: JobStatus, call: ToolCall) -> None:
        self.job_id = job_id
        self.status = status
        self.tool_name = call.name
        self.tool_call_id = call.id
        super().__init__(
            f"job {job_id} is waiting for an answer to {describe_call(call.name, call.arguments)}, "
            "but no --answer value is left and standard input is not a terminal; "
            f"it stays paused: answer with `expert-jobs jobs continue {job_id} --answer TEXT`"
        )


class JobAbandoned(ExpertJobsError):
    """A second Ctrl-C stopped waiting for the job's cancellation: the job is left ``canceling``
    (its lease lapses and a worker, or ``expert-jobs jobs cancel``, finishes it)."""

    def __init__(self, job_id: str) -> None:
        self.job_id = job_id
        super().__init__(
            f"interrupted again: job {job_id} was abandoned while canceling; "
            f"`expert-jobs jobs cancel {job_id}` finishes the cancel once its lease lapses"
        )


class ProviderKeyNeeded(UsageError):
    """The model's provider has no API key, found before anything was written: ``run`` refuses to
    create the job and ``jobs continue`` leaves the job as it is (exit code 4)."""

    def __init__(
        self,
        provider: str,
        model: str,
        env_vars: tuple[str, ...],
        application_id: str,
        job_id: str | None = None,
    ) -> None:
        self.provider = provider
        self.model = model
        self.env_vars = env_vars
        self.application_id = application_id
        self.job_id = job_id
        fixes = []
        if env_vars:
            fixes.append(f"set {' or '.join(env_vars)} in the environment")
        fixes.append(
            f"give application {application_id} a providerKeys.{provider} key in the configuration file"
        )
        fixes.append("choose a model of another provider with --model")
        outcome = "nothing was written" if job_id is None else f"job {job_id} was not changed"
        super().__init__(
            f"Provider API key not found for {provider} (model {model}): {', or '.join(fixes)}; {outcome}"
        )


def check_provider_key(runtime: Runtime, model: str, application_id: str, job_id: str | None = None) -> None:
    """Raise :class:`ProviderKeyNeeded` when ``model``'s provider has no key for ``application_id``
    (only providers with a ``check_key`` hook, the registry of real models, can lack one)."""
    check = getattr(runtime.providers, "check_key", None)
    if check is None:
        return
    try:
        check(model, application_id)
    except ProviderKeyMissing as exc:
        from expert_jobs.providers._common import PROVIDER_ENV_VARS

        provider = exc.provider or "the model's provider"
        env_vars = tuple(PROVIDER_ENV_VARS.get(provider, ()))
        raise ProviderKeyNeeded(provider, model, env_vars, application_id, job_id) from exc


@dataclass
class Answers:
    """Where interactive answers come from: the ``--answer`` values in order, then the prompt
    (only when standard input is a terminal)."""

    given: list[str] = field(default_factory=list)
    prompt: Callable[[ToolCall], str] | None = None

    def next_for(self, job: Job, call: ToolCall) -> tuple[str, str]:
        """``(answer, where it came from)`` for ``call``; :class:`AnswerNeeded` when there is none."""
        if self.given:
            return self.given.pop(0), "--answer"
        if self.prompt is not None:
            return self.prompt(call), "prompt"
        raise AnswerNeeded(job.id, job.status, call)


@dataclass(frozen=True)
class RunRequest:
    """What to run: the expert, the query and files, and per-job overrides."""

    expert_key: str
    query: str | None = None
    files: tuple[str, ...] = ()
    model: str | None = None
    temperature: float | None = None
    max_steps: int | None = None
    max_retries: int | None = None


@dataclass
class RunOutcome:
    """The job as it ended (or paused), and whether a Ctrl-C stopped it."""

    job: Job
    interrupted: bool = False


def _question(call: ToolCall) -> str:
    """The text to show at the prompt: a lone string argument as is, else the call."""
    values = list(call.arguments.values())
    if len(values) == 1 and isinstance(values[0], str):
        return values[0]
    return describe_call(call.name, call.arguments)


def console_prompt(console: Console) -> Callable[[ToolCall], str]:
    """A prompt on ``console`` (stderr) that reads the answer from standard input."""

    def ask(call: ToolCall) -> str:
        return Prompt.ask(f"[bold magenta]{escape(call.name)}[/] {escape(_question(call))}", console=console)

    return ask


@contextlib.contextmanager
def _default_sigint() -> Iterator[None]:
    """Ctrl-C raises ``KeyboardInterrupt`` (in a blocking prompt) while inside the block."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGINT)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


async def cancel_job(runtime: Runtime, job_id: str, *, finished_ok: bool = True) -> Job:
    """Cancel ``job_id``, retrying when a concurrent save of its runner wins the race.

    A job that already stopped is returned as it is (``finished_ok``) or raises
    ``IllegalTransition``.
    """
    for _ in range(50):
        try:
            return await runtime.cancel(job_id)
        except StaleJobVersion:
            await asyncio.sleep(0.01)
        except IllegalTransition:
            if not finished_ok:
                raise
            break  # it stopped on its own meanwhile
    return await runtime.get(job_id)


class _Interruptible:
    """Drives a job; the first Ctrl-C cancels it (it ends ``canceled``), a second one abandons it."""

    def __init__(self, runtime: Runtime, view: LiveView) -> None:
        self.runtime = runtime
        self.view = view
        self.interrupted = False
        self._cancels: set[asyncio.Task[Job]] = set()

    async def drive(self, job_id: str) -> Job:
        task = asyncio.create_task(self.runtime.drive(job_id), name=f"expert-jobs-cli-drive-{job_id}")
        loop = asyncio.get_running_loop()

        def on_interrupt() -> None:
            if not self.interrupted:
                self.interrupted = True
                self.view.log("[yellow]Ctrl-C: canceling the job (press Ctrl-C again to abandon it)[/]")
                cancel = asyncio.create_task(cancel_job(self.runtime, job_id))
                self._cancels.add(cancel)
                cancel.add_done_callback(self._cancels.discard)
            else:
                task.cancel()

        installed = False
        if threading.current_thread() is threading.main_thread():
            try:
                loop.add_signal_handler(signal.SIGINT, on_interrupt)
                installed = True
            except (NotImplementedError, RuntimeError, ValueError):  # pragma: no cover - platform
                installed = False
        try:
            try:
                job = await task
            except asyncio.CancelledError:
                if task.cancelled() and self.interrupted:
                    for cancel in self._cancels:
                        cancel.cancel()
                    raise JobAbandoned(job_id) from None
                raise
            if self._cancels:
                await asyncio.gather(*self._cancels, return_exceptions=True)
                job = await self.runtime.get(job_id)
            return job
        finally:
            if installed:
                loop.remove_signal_handler(signal.SIGINT)


async def submit_job(runtime: Runtime, request: RunRequest) -> Job:
    """Write the queued job ``request`` describes, once its expert, model and provider key are
    known to be there (:class:`ProviderKeyNeeded` before anything is written, like the API's 400)."""
    runtime.resolve_expert(request.expert_key)
    model = request.model or runtime.settings.default_model
    runtime.models.get_info(model)
    check_provider_key(runtime, model, runtime.settings.application_id)
    return await runtime.submit(
        request.expert_key,
        request.query,
        request.files,
        model=request.model,
        temperature=request.temperature,
        max_steps=request.max_steps,
        max_retries=request.max_retries,
    )


async def follow_job(
    runtime: Runtime, job: Job, *, console: Console, answers: Answers, store_label: str = ""
) -> RunOutcome:
    """Drive a queued job here, or answer a paused one's interactive calls and drive it on, under
    the live view, until it stops. :class:`AnswerNeeded` when an answer cannot be had."""
    async with LiveView(runtime, console, job, store_label=store_label) as view:
        driver = _Interruptible(runtime, view)
        while True:
            if job.status is S.QUEUED:
                job = await driver.drive(job.id)
                await view.flush()
            if driver.interrupted or job.status is not S.REQUEST_INTERACTIVE_TOOL_RESULT:
                return RunOutcome(job, driver.interrupted)
            latest = await runtime.store.latest_checkpoints(job.id)
            root = latest.get(root_run_id(job.id))
            pending = root.pending_calls if root is not None else ()
            for call in pending:
                view.waiting_for(root_run_id(job.id), call)
                try:
                    with view.pause_display(), _default_sigint():
                        answer, source = answers.next_for(job, call)
                except KeyboardInterrupt:
                    view.log("[yellow]Ctrl-C: canceling the job[/]")
                    job = await cancel_job(runtime, job.id)
                    await view.flush()
                    return RunOutcome(job, True)
                view.log(f'  [magenta]✎ answer from {source}[/]: "{escape(answer)}"')
                job = await runtime.continue_job(job.id, answer, interactive=True, tool_call_id=call.id)
            if job.status is not S.QUEUED:  # pragma: no cover - continue_job queues the last answer
                return RunOutcome(job, False)
