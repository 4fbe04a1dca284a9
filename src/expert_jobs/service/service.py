"""The Expert Jobs service: the API's operations as typed async methods, usable in-process.

Every method takes the calling principal (an :class:`Application` or the :class:`SystemPrincipal`)
and raises :class:`~expert_jobs.domain.errors.ServiceError` subclasses carrying the spec's exact
status code, error word and reason (the engine's own errors are translated here, chained with
``from`` so their context, job id, status and field, stays reachable through ``__cause__``):

=====================================  ===============================================================
outcome                                raised
=====================================  ===============================================================
schema failure (path, query, body)     ``ValidationFailed`` (422), the reason names each field
a file refused (too many, too large,   ``ValidationFailed`` (422) ``"body.files[<i>]: <why>"``
missing, outside the workspace)
no credentials / wrong principal       ``Unauthorized`` (401) ``"Failed to authenticate"``
job of another application, unknown    ``NotFound`` (404) ``"Expert job not found: <id>"``
unknown expert on start                ``NotFound`` (404) ``"Expert not found: <key>"``
start without query and files          ``BadRequest`` (400) ``"Query or files are required"``
no key for the model's provider        ``BadRequest`` (400) ``"Provider API key not found"``
illegal status change                  ``Conflict`` (409), the reason names job, status and move
continue in a wrong status             ``BadRequest`` (400) ``"Current status is unable to continue"``
continue / resume without checkpoint   ``BadRequest`` (400) ``"No checkpoint found"``
=====================================  ===============================================================

Principals: application keys act for one application and may use every operation except the
status update, which only the system principal may call. A job of another application is
reported exactly like a job that does not exist.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from expert_jobs.domain.checkpoint import Checkpoint
from expert_jobs.domain.errors import (
    BadRequest,
    CannotContinue,
    Conflict,
    IllegalTransition,
    JobNotFound,
    NotFound,
    ProviderKeyMissing,
    StaleJobVersion,
    Unauthorized,
    UnknownExpert,
    UnknownModel,
    ValidationFailed,
)
from expert_jobs.domain.events import JobEvent
from expert_jobs.domain.ids import is_id
from expert_jobs.domain.job import Job, JobQuery
from expert_jobs.domain.lifecycle import allowed_triggers, can_trigger
from expert_jobs.domain.status import JobStatus
from expert_jobs.domain.wire import (
    ContinueJobRequest,
    ListJobsQuery,
    ResumeFromRequest,
    Skip,
    StartJobRequest,
    Take,
    UpdateStatusRequest,
    validation_reason,
)
from expert_jobs.engine.events import RESTING_STATUSES
from expert_jobs.engine.files import FileRefused
from expert_jobs.engine.runtime import Runtime
from expert_jobs.service.applications import Application, KeyRing, Principal, SystemPrincipal

if TYPE_CHECKING:
    from expert_jobs.engine.worker import Worker

__all__ = [
    "BROWSE_DEPTH",
    "PROVIDER_KEY_NOT_FOUND",
    "QUERY_OR_FILES_REQUIRED",
    "CheckpointPage",
    "CheckpointPageQuery",
    "ExpertJobsService",
    "JobPage",
]

_log = logging.getLogger("expert_jobs.service")

QUERY_OR_FILES_REQUIRED = "Query or files are required"
"""The 400 reason of a start (or follow-up) with neither a query nor files."""
PROVIDER_KEY_NOT_FOUND = "Provider API key not found"
"""The 400 reason when no API key is configured for the provider of the job's model."""

_STATUS_RETRIES = 50
BROWSE_DEPTH = 1_000
"""How deep :meth:`ExpertJobsService.browse` lists the jobs of all applications merged."""
_M = TypeVar("_M", bound=BaseModel)


class CheckpointPageQuery(BaseModel):
    """Query of ``GET {id}/checkpoints``: ``take`` (1..100, default 100) and ``skip`` (>= 0, default
    0; a skip past the last checkpoint, however large, is an empty page)."""

    model_config = ConfigDict(populate_by_name=True, extra="ignore", frozen=True)

    take: Take = 100
    skip: Skip = 0


@dataclass(frozen=True, slots=True)
class JobPage:
    """One page of an application's jobs, with the number of jobs matching in all."""

    jobs: list[Job]
    total: int
    take: int
    skip: int

    def to_wire(self) -> dict[str, Any]:
        """The spec's list body: ``{"data": {"expertJobs": [...]}, "meta": {"total", "take", "skip"}}``."""
        return {
            "data": {"expertJobs": [job.to_wire() for job in self.jobs]},
            "meta": {"total": self.total, "take": self.take, "skip": self.skip},
        }


@dataclass(frozen=True, slots=True)
class CheckpointPage:
    """One page of a job's checkpoints (``seq`` order), with the job's number of checkpoints."""

    checkpoints: list[Checkpoint]
    total: int
    take: int
    skip: int

    def to_wire(self) -> dict[str, Any]:
        """``{"data": {"checkpoints": [...]}, "meta": {"total", "take", "skip"}}``."""
        return {
            "data": {"checkpoints": [c.to_wire() for c in self.checkpoints]},
            "meta": {"total": self.total, "take": self.take, "skip": self.skip},
        }


def _validate(model: type[_M], data: _M | Mapping[str, Any] | None, location: str, context: Any = None) -> _M:
    """``data`` as ``model``, or :class:`ValidationFailed` naming each bad field under ``location``."""
    if isinstance(data, model):
        return data
    if data is None:
        raise ValidationFailed(f"{location}: a JSON object is required")
    if not isinstance(data, Mapping):
        raise ValidationFailed(f"{location}: expected a JSON object, got {type(data).__name__}")
    try:
        return model.model_validate(data, context=context)
    except ValidationError as exc:
        raise ValidationFailed(validation_reason(exc, location)) from exc


def _fold(files: list[str] | None) -> tuple[str, ...]:
    """The request's file names, a name given twice kept once (first occurrences, in order)."""
    return tuple(dict.fromkeys(files)) if files else ()


def _check_id(value: str, field: str) -> str:
    if not is_id(value):
        raise ValidationFailed(f"path.{field}: must be 24 characters of [a-z0-9], got {value!r}")
    return value


@contextlib.contextmanager
def _engine_errors(files: tuple[str, ...] = ()) -> Iterator[None]:
    """Translate the engine's typed errors into the API's (chained, so the context stays)."""
    try:
        yield
    except (JobNotFound, UnknownExpert) as exc:
        raise NotFound(str(exc)) from exc
    except CannotContinue as exc:
        raise BadRequest(exc.reason) from exc
    except IllegalTransition as exc:
        raise Conflict(str(exc)) from exc
    except ProviderKeyMissing as exc:
        raise BadRequest(PROVIDER_KEY_NOT_FOUND) from exc
    except FileRefused as exc:
        index = exc.index
        if index is None and exc.name in files:
            index = files.index(exc.name)
        where = "body.files" if index is None else f"body.files[{index}]"
        raise ValidationFailed(f"{where}: {exc.why}") from exc
    except UnknownModel as exc:
        raise ValidationFailed(f"body.model: {exc}") from exc


class ExpertJobsService:
    """The API's operations over a :class:`Runtime`, for the applications of a :class:`KeyRing`.

    ``worker`` (optional) runs the queued jobs in the background once :meth:`start` is called;
    without one, jobs wait for a worker elsewhere (another process sharing the store) or for
    ``runtime.drive``. Use ``async with service:`` to start and close it.
    """

    def __init__(
        self,
        runtime: Runtime,
        keyring: KeyRing | None = None,
        *,
        worker: Worker | None = None,
        stream_poll_interval: float = 1.0,
    ) -> None:
        self.runtime = runtime
        self.keyring = keyring if keyring is not None else KeyRing()
        self.worker = worker
        self.stream_poll_interval = stream_poll_interval
        self._started = False

    # ------------------------------------------------------------------ construction and life

    async def start(self) -> None:
        """Start the worker's claim loop and sweeper (no-op without a worker or when started)."""
        if self._started:
            return
        self._started = True
        if self.worker is not None:
            await self.worker.start()

    async def close(self) -> None:
        """Stop the worker (running jobs get its grace period), close providers and the store."""
        if self.worker is not None and self._started:
            await self.worker.stop()
        self._started = False
        aclose = getattr(self.runtime.providers, "aclose", None)
        if aclose is not None:
            await aclose()
        await self.runtime.close()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # ------------------------------------------------------------------ principals

    def authenticate(self, authorization: str | None) -> Principal:
        """The principal of an ``Authorization: Bearer <key>`` header value, or :class:`Unauthorized`."""
        if not authorization:
            raise Unauthorized()
        scheme, _, key = authorization.strip().partition(" ")
        key = key.strip()
        if scheme.lower() != "bearer" or not key:
            raise Unauthorized()
        principal = self.keyring.authenticate(key)
        if principal is None:
            raise Unauthorized()
        if isinstance(principal, Application) and self.keyring.application(principal.id) is None:
            raise Unauthorized()  # the key's application was removed
        return principal

    @staticmethod
    def _application(principal: Principal) -> Application:
        """Operations on jobs need an application key (the system key is for status updates)."""
        if not isinstance(principal, Application):
            raise Unauthorized()
        return principal

    async def _owned_job(self, principal: Principal, job_id: str) -> Job:
        """The job, if it exists and belongs to the principal's application (else 404, the same
        answer for both, so ids of other applications are never revealed)."""
        application = self._application(principal)
        _check_id(job_id, "expertJobId")
        job = await self.runtime.store.get(job_id)
        if (
            job is None
            or job.application_id != application.id
            or job.organization_id != application.organization_id
        ):
            raise NotFound(f"Expert job not found: {job_id}")
        return job

    def _model_context(self) -> dict[str, Any]:
        return {"extra_models": tuple(self.runtime.models)}

    def _check_provider_key(self, model: str, application_id: str) -> None:
        """400 "Provider API key not found" now rather than a failed job later (providers with a
        ``check_key`` hook: the registry; keys of the application first, then the environment)."""
        check = getattr(self.runtime.providers, "check_key", None)
        if check is None:
            return
        with _engine_errors():
            check(model, application_id)

    async def _check_files(self, application_id: str, files: tuple[str, ...], model: str) -> None:
        """422 now, naming the file, for what the workspace would refuse: too many files, a name
        that escapes, is missing or too long, a file or a batch over its size limit. The whole
        batch is checked in one worker thread, off the event loop."""
        if not files:
            return
        workspace = self.runtime.workspace
        if workspace is None:
            raise ValidationFailed("body.files: this server has no workspace, so files cannot be given")
        with _engine_errors(files):
            provider = self.runtime.models.get_info(model).provider
            await workspace.check_async(application_id, files, provider)

    # ------------------------------------------------------------------ the spec's operations

    async def start_job(self, principal: Principal, request: StartJobRequest | Mapping[str, Any]) -> Job:
        """Start a job of the expert ``expertKey`` for the principal's application (queued; the
        worker runs it). 404 for an unknown expert, 400 without query and files or without a key
        for the model's provider, 422 for a bad body or a file outside the workspace."""
        application = self._application(principal)
        parsed = _validate(StartJobRequest, request, "body", self._model_context())
        files = _fold(parsed.files)
        with _engine_errors():
            self.runtime.resolve_expert(parsed.expert_key)
        if not parsed.query and not files:
            raise BadRequest(QUERY_OR_FILES_REQUIRED)
        model = parsed.model or self.runtime.settings.default_model
        await self._check_files(application.id, files, model)
        self._check_provider_key(model, application.id)
        with _engine_errors(files):
            return await self.runtime.submit(
                parsed.expert_key,
                parsed.query,
                files,
                model=parsed.model,
                temperature=parsed.temperature,
                max_steps=parsed.max_steps,
                max_retries=parsed.max_retries,
                application_id=application.id,
                organization_id=application.organization_id,
            )

    async def get(self, principal: Principal, job_id: str) -> Job:
        """The job ``job_id`` of the principal's application (404 if unknown or another's)."""
        return await self._owned_job(principal, job_id)

    async def list(self, principal: Principal, query: ListJobsQuery | Mapping[str, Any]) -> JobPage:
        """A page of the application's jobs.

        ``applicationId`` must be the caller's own application (another one: 401, as the spec's
        "Application not found"). ``filter`` keeps jobs whose expert key contains it, ignoring
        case; ``sort`` is ``createdAt`` (default) or ``updatedAt``, ``order`` ``desc`` (default,
        newest first) or ``asc``; ties break on the job id. ``take`` 1..100 (default 100),
        ``skip`` >= 0 (default 0); ``total`` counts every matching job.
        """
        application = self._application(principal)
        parsed = _validate(ListJobsQuery, query, "query")
        if parsed.application_id != application.id:
            raise Unauthorized()
        found, total = await self.runtime.store.list(
            JobQuery(
                application_id=application.id,
                filter=parsed.filter,
                sort=parsed.sort or "createdAt",
                order=parsed.order or "desc",
                take=parsed.take,
                skip=parsed.skip,
            )
        )
        return JobPage(found, total, parsed.take, parsed.skip)

    async def update_status(
        self, principal: Principal, job_id: str, request: UpdateStatusRequest | Mapping[str, Any]
    ) -> Job:
        """The system status update: apply the lifecycle edge from the job's current status to the
        requested one (``canceling`` runs the engine's cancellation). 409 when the table has no
        such edge. Concurrent updates are safe: every write is conditional on the version read,
        and a lost race re-reads the job and decides again from its new status."""
        if not isinstance(principal, SystemPrincipal):
            raise Unauthorized()
        _check_id(job_id, "expertJobId")
        parsed = _validate(UpdateStatusRequest, request, "body")
        for _ in range(_STATUS_RETRIES):
            try:
                with _engine_errors():
                    return await self.runtime.update_status(job_id, parsed.status)
            except StaleJobVersion:
                await asyncio.sleep(0)
        raise Conflict(f"job {job_id}: the status kept changing under {_STATUS_RETRIES} attempts; try again")

    # ------------------------------------------------------------------ the extra operations

    async def continue_job(
        self, principal: Principal, job_id: str, request: ContinueJobRequest | Mapping[str, Any]
    ) -> Job:
        """Answer the pending interactive call (``interactiveToolCallResult: true``; ``query`` is
        the answer, ``toolCallId`` picks the call) or follow up a completed, exceededMaxSteps or
        failed job with a new ``query`` and/or ``files``. The job goes back to ``queued``."""
        job = await self._owned_job(principal, job_id)
        parsed = _validate(ContinueJobRequest, request, "body", self._model_context())
        files = _fold(parsed.files)
        interactive = bool(parsed.interactive_tool_call_result)
        if not interactive and can_trigger(job.status, "follow_up"):
            if not parsed.query and not files:
                raise BadRequest(QUERY_OR_FILES_REQUIRED)
            await self._check_files(job.application_id, files, parsed.model or job.model)
        self._check_provider_key(parsed.model or job.model, job.application_id)
        with _engine_errors(files):
            return await self.runtime.continue_job(
                job_id,
                parsed.query,
                () if interactive else files,
                interactive=interactive,
                tool_call_id=parsed.tool_call_id,
                model=parsed.model,
                temperature=parsed.temperature,
                max_steps=parsed.max_steps,
                max_retries=parsed.max_retries,
            )

    async def resume_from(
        self, principal: Principal, job_id: str, request: ResumeFromRequest | Mapping[str, Any]
    ) -> Job:
        """A new job branched from the checkpoint ``checkpointId`` of the root run of ``job_id``,
        continued with the request's answer or follow-up when it has one (checked before anything
        is written: a branch that could not be continued is not created)."""
        source = await self._owned_job(principal, job_id)
        parsed = _validate(ResumeFromRequest, request, "body", self._model_context())
        files = _fold(parsed.files)
        interactive = bool(parsed.interactive_tool_call_result)
        if not interactive:
            await self._check_files(source.application_id, files, parsed.model or source.model)
        self._check_provider_key(parsed.model or source.model, source.application_id)
        with _engine_errors(files):
            return await self.runtime.branch_from(
                job_id,
                parsed.checkpoint_id,
                parsed.query,
                () if interactive else files,
                interactive=interactive,
                tool_call_id=parsed.tool_call_id,
                model=parsed.model,
                temperature=parsed.temperature,
                max_steps=parsed.max_steps,
                max_retries=parsed.max_retries,
            )

    async def cancel(self, principal: Principal, job_id: str) -> Job:
        """Cancel the job: ``canceled`` at once when no worker holds it, else ``canceling`` until its
        worker stops (promptly). 409 for a job that already stopped for good or is canceling."""
        if isinstance(principal, SystemPrincipal):
            _check_id(job_id, "expertJobId")
        else:
            await self._owned_job(principal, job_id)
        for _ in range(_STATUS_RETRIES):
            try:
                with _engine_errors():
                    job = await self.runtime.get(job_id)
                    if not can_trigger(job.status, "cancel"):
                        raise IllegalTransition(job.id, job.status, "cancel", allowed_triggers(job.status))
                    return await self.runtime.cancel(job_id)
            except StaleJobVersion:
                await asyncio.sleep(0)
        raise Conflict(f"job {job_id}: the status kept changing under {_STATUS_RETRIES} attempts; try again")

    # ------------------------------------------------------------------ the dashboard's reads

    async def browse(
        self,
        principal: Principal,
        *,
        statuses: frozenset[JobStatus] | None = None,
        expert: str | None = None,
        application_id: str | None = None,
        take: int = 25,
        skip: int = 0,
    ) -> JobPage:
        """A page of the jobs the principal may see, newest first (the web dashboard's list): an
        application's own jobs (``application_id``, if given, must be its own: else 401); for the
        system principal, the jobs of ``application_id`` or of every application of the key ring,
        merged. ``statuses`` keeps jobs in those statuses, ``expert`` jobs whose expert key contains
        it (ignoring case). ``take`` 1..100; the merged view reaches :data:`BROWSE_DEPTH` jobs deep."""
        if not 1 <= take <= 100 or skip < 0:
            raise ValidationFailed(f"query: take must be 1..100 and skip >= 0, got take={take} skip={skip}")
        if isinstance(principal, SystemPrincipal):
            wanted = [application_id] if application_id else sorted(self.keyring.applications)
        else:
            if application_id not in (None, principal.id):
                raise Unauthorized()
            wanted = [principal.id]
        if len(wanted) == 1:
            found, total = await self.runtime.store.list(
                JobQuery(wanted[0], filter=expert or None, take=take, skip=skip, statuses=statuses)
            )
            return JobPage(found, total, take, skip)
        if skip + take > BROWSE_DEPTH:
            raise ValidationFailed(
                f"query.skip: the jobs of all applications are listed {BROWSE_DEPTH} deep; "
                "choose an application to page further"
            )
        merged: list[Job] = []
        total = 0
        for each in wanted:  # each application's newest skip+take, then one merge
            jobs: list[Job] = []
            while True:
                page, count = await self.runtime.store.list(
                    JobQuery(each, filter=expert or None, take=100, skip=len(jobs), statuses=statuses)
                )
                jobs.extend(page)
                if len(page) < 100 or len(jobs) >= skip + take:
                    break
            total += count
            merged.extend(jobs[: skip + take])
        merged.sort(key=lambda job: (job.created_at, job.id), reverse=True)
        return JobPage(merged[skip : skip + take], total, take, skip)

    async def viewer(self, principal: Principal, job_id: str) -> Application:
        """The application to read the job ``job_id`` as (for read-only views such as the web
        dashboard): the principal's own application (404 for a job of another one, or none), or,
        for the system principal, which may read every job, the job's application."""
        if not isinstance(principal, SystemPrincipal):
            await self._owned_job(principal, job_id)
            return self._application(principal)
        _check_id(job_id, "expertJobId")
        job = await self.runtime.store.get(job_id)
        if job is None:
            raise NotFound(f"Expert job not found: {job_id}")
        known = self.keyring.application(job.application_id)
        if known is not None and known.organization_id == job.organization_id:
            return known
        return Application(job.application_id, job.organization_id)

    async def get_checkpoint(self, principal: Principal, job_id: str, checkpoint_id: str) -> Checkpoint:
        """One checkpoint of the job (404 if the job or the checkpoint is unknown)."""
        await self._owned_job(principal, job_id)
        _check_id(checkpoint_id, "checkpointId")
        checkpoint = await self.runtime.store.get_checkpoint(job_id, checkpoint_id)
        if checkpoint is None:
            raise NotFound(f"Checkpoint not found: {checkpoint_id}")
        return checkpoint

    async def list_checkpoints(
        self,
        principal: Principal,
        job_id: str,
        query: CheckpointPageQuery | Mapping[str, Any] | None = None,
    ) -> CheckpointPage:
        """A page of the job's checkpoints (every run's, ``seq`` order) and their total."""
        await self._owned_job(principal, job_id)
        parsed = _validate(CheckpointPageQuery, query if query is not None else {}, "query")
        found, total = await self.runtime.store.list_checkpoints(job_id, take=parsed.take, skip=parsed.skip)
        return CheckpointPage(found, total, parsed.take, parsed.skip)

    async def stream_checkpoints(
        self, principal: Principal, job_id: str, *, after_seq: int | None = None
    ) -> AsyncIterator[Checkpoint]:
        """The job's checkpoints as they are written: those already stored (after ``after_seq``),
        then each new one, ending once the job rests (completed, paused for a person, failed,
        exceededMaxSteps, canceled, expired)::

            async for checkpoint in service.stream_checkpoints(app, job_id):
                ...

        The job is checked (404, 422) when iteration starts; a transport that must answer before
        it streams uses :meth:`watch_checkpoints`, which checks at once.
        """
        watch = await self.watch_checkpoints(principal, job_id, after_seq=after_seq)
        async for item in watch:
            if item is not None:
                yield item

    async def watch_checkpoints(
        self,
        principal: Principal,
        job_id: str,
        *,
        after_seq: int | None = None,
        heartbeat: float | None = None,
    ) -> AsyncIterator[Checkpoint | None]:
        """Like :meth:`stream_checkpoints`, and yields ``None`` whenever ``heartbeat`` seconds pass
        with nothing new (a transport sends a keep-alive then)."""
        await self._owned_job(principal, job_id)
        return self._watch(job_id, after_seq, heartbeat)

    async def _watch(
        self, job_id: str, after_seq: int | None, heartbeat: float | None
    ) -> AsyncIterator[Checkpoint | None]:
        # The engine's events only wake the loop up; the store is the truth (a worker in another
        # process publishes nothing here, so the loop also polls). The job is read before its
        # checkpoints: a status is saved together with the checkpoints leading to it, so once a
        # resting status is read, every checkpoint up to it is in the store.
        runtime = self.runtime
        queue = runtime.events.open_stream(job_id)
        last = -1 if after_seq is None else after_seq
        idle = 0.0
        try:
            while True:
                job = await runtime.store.get(job_id)
                while True:
                    found, _ = await runtime.store.list_checkpoints(job_id, take=100, after_seq=last)
                    for checkpoint in found:
                        last = checkpoint.seq
                        yield checkpoint
                    if len(found) < 100:
                        break
                if found:
                    idle = 0.0
                if job is None or job.status in RESTING_STATUSES:
                    return
                if heartbeat is not None and idle >= heartbeat:
                    idle = 0.0
                    yield None
                wait = self.stream_poll_interval
                if heartbeat is not None:
                    wait = min(wait, max(heartbeat - idle, 0.0))
                started = asyncio.get_running_loop().time()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(queue.get(), timeout=wait)
                while not queue.empty():
                    queue.get_nowait()
                idle += asyncio.get_running_loop().time() - started
        finally:
            runtime.events.close_stream(job_id, queue)

    async def watch_events(
        self,
        principal: Principal,
        job_id: str,
        *,
        after_seq: int | None = None,
        heartbeat: float | None = None,
    ) -> AsyncIterator[Checkpoint | JobEvent | None]:
        """A job's live events, for a transport (the API's ``events/stream``): the checkpoints
        already written (after ``after_seq``) first; then, until the job rests, each new checkpoint
        (read from the store, in ``seq`` order) and, between them, the engine's other events as
        they happen in this process: transitions, steps, tool calls and results, retries and the
        deltas of streaming generations (the job's generations stream while this is open).
        ``None`` whenever ``heartbeat`` seconds pass with nothing sent.

        Checkpoints are what a reconnection resumes (``after_seq``); the other events are live
        only. A job run by a worker in another process publishes no events here: its checkpoints
        are still found, by polling the store every ``stream_poll_interval`` seconds. The job is
        checked (404, 422) at once."""
        await self._owned_job(principal, job_id)
        return self._watch_events(job_id, after_seq, heartbeat)

    async def _watch_events(
        self, job_id: str, after_seq: int | None, heartbeat: float | None
    ) -> AsyncIterator[Checkpoint | JobEvent | None]:
        runtime = self.runtime
        store = runtime.store
        loop = asyncio.get_running_loop()
        queue = runtime.events.open_stream(job_id, deltas=True)
        last = -1 if after_seq is None else after_seq
        quiet_since = loop.time()
        try:
            while True:
                # The store is the truth for what was persisted: the job first, then its
                # checkpoints (a resting status is saved with the checkpoints leading to it).
                job = await store.get(job_id)
                while True:
                    found, _ = await store.list_checkpoints(job_id, take=100, after_seq=last)
                    for checkpoint in found:
                        last = checkpoint.seq
                        yield checkpoint
                    if found:
                        quiet_since = loop.time()
                    if len(found) < 100:
                        break
                if job is None or job.status in RESTING_STATUSES:
                    # The events published with the last checkpoint (its transition) go too.
                    while not queue.empty():
                        event = queue.get_nowait()
                        if event.kind != "checkpoint":
                            yield event
                    return
                # Live events until the next checkpoint is written (or it is time to poll).
                poll_at = loop.time() + self.stream_poll_interval
                while True:
                    if queue.empty():
                        now = loop.time()
                        wait = poll_at - now
                        if heartbeat is not None:
                            beat = quiet_since + heartbeat - now
                            if beat <= 0:
                                quiet_since = now
                                yield None
                                continue
                            wait = min(wait, beat)
                        if wait <= 0:
                            break
                        try:
                            event = await asyncio.wait_for(queue.get(), timeout=wait)
                        except TimeoutError:
                            continue
                    else:
                        event = queue.get_nowait()
                    if event.kind == "checkpoint":
                        break  # sent from the store, with any written before it
                    quiet_since = loop.time()
                    yield event
                    if event.kind == "transition" and event.status in RESTING_STATUSES:
                        break
        finally:
            runtime.events.close_stream(job_id, queue)
