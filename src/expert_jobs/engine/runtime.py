"""The runtime: experts, tools, a store, providers and a clock, with the operations on jobs
(submit, run, continue, cancel, status updates) that every transport and the worker build on."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar, overload

from expert_jobs.domain.checkpoint import Checkpoint, CheckpointKind, RunState
from expert_jobs.domain.cost import Cost
from expert_jobs.domain.errors import (
    CannotContinue,
    IllegalTransition,
    JobNotFound,
    UnknownExpert,
    UsageError,
)
from expert_jobs.domain.events import JobEvent
from expert_jobs.domain.experts import (
    ExpertDefinition,
    ExpertRegistry,
    InteractiveToolSpec,
    delegate_tool_name,
)
from expert_jobs.domain.ids import checkpoint_id as make_checkpoint_id
from expert_jobs.domain.ids import new_id
from expert_jobs.domain.job import Job
from expert_jobs.domain.lifecycle import allowed_triggers, fire, trigger_for
from expert_jobs.domain.messages import AssistantMessage, Message, ToolResult, ToolResultsMessage
from expert_jobs.domain.models import ModelCatalogue
from expert_jobs.domain.output import JobResult, output_spec, typed_output
from expert_jobs.domain.status import JobStatus
from expert_jobs.domain.usage import ZERO_USAGE
from expert_jobs.domain.wire import MAX_RETRIES_LIMIT, MAX_STEPS_LIMIT
from expert_jobs.engine.events import RESTING_STATUSES, EventBus
from expert_jobs.engine.files import Workspace, user_message
from expert_jobs.engine.mcp import McpClients, McpServer
from expert_jobs.engine.pricing import PRICED_STATUSES, job_cost, prices_available
from expert_jobs.engine.runner import JobRunner, root_run_id
from expert_jobs.engine.settings import RuntimeSettings
from expert_jobs.engine.threads import ToolThreads
from expert_jobs.engine.tools import Tool, Toolset, clip_result
from expert_jobs.engine.tracing import JobTracing
from expert_jobs.engine.watchdog import Watchdog
from expert_jobs.ports.clock import Clock, SystemClock
from expert_jobs.ports.provider import Provider, ProviderResolver, ToolDeclaration
from expert_jobs.ports.store import JobStore

__all__ = ["Runtime"]

T = TypeVar("T")

S = JobStatus
_log = logging.getLogger("expert_jobs.runtime")
_DELEGATE_PARAMS = {
    "type": "object",
    "properties": {"query": {"type": "string", "description": "What the delegate expert should do"}},
    "required": ["query"],
}
_FOLLOW_UP_FROM = frozenset({S.COMPLETED, S.EXCEEDED_MAX_STEPS, S.FAILED})
_BRANCH_STATUS: dict[str, JobStatus] = {
    "running": S.QUEUED,
    "waitingDelegates": S.QUEUED,
    "waitingInteractive": S.REQUEST_INTERACTIVE_TOOL_RESULT,
    "completed": S.COMPLETED,
    "exceededMaxSteps": S.EXCEEDED_MAX_STEPS,
    "failed": S.FAILED,
}


class Runtime:
    """Everything a job needs to run, and the operations on jobs.

    ``providers`` is one :class:`Provider` serving every model (a scripted one, say) or a
    :class:`ProviderResolver` (``expert_jobs.providers.registry.ProviderRegistry``) choosing per
    model and application. ``store`` defaults to a fresh ``MemoryStore``.

    The runtime owns the threads sync tools run in (:attr:`tool_threads`, at most
    ``settings.tool_threads`` of them, read once here); :meth:`close` shuts them down.

    ``tracing`` (a :class:`~expert_jobs.engine.tracing.JobTracing`, the ``otel`` extra) makes
    OpenTelemetry spans of the job runs; off (``None``) by default. See docs/operations.md.
    """

    def __init__(
        self,
        *,
        providers: Provider | ProviderResolver,
        store: JobStore | None = None,
        experts: Iterable[ExpertDefinition] = (),
        tools: Iterable[Tool | Callable[..., Any]] = (),
        settings: RuntimeSettings | None = None,
        clock: Clock | None = None,
        workspace: Workspace | str | None = None,
        models: ModelCatalogue | None = None,
        tracing: JobTracing | None = None,
    ) -> None:
        if store is None:
            from expert_jobs.stores.memory import MemoryStore

            store = MemoryStore()
        self.store: JobStore = store
        self.providers = providers
        self.watchdog = Watchdog()
        self.settings = settings or RuntimeSettings()
        self.tool_threads = ToolThreads(
            self.settings.tool_threads, on_loop_cpu=self.settings.tool_threads_on_loop_cpu
        )
        self.clock: Clock = clock or SystemClock()
        self.events = EventBus()
        self.models = models or ModelCatalogue()
        self.workspace = Workspace(workspace) if isinstance(workspace, str) else workspace
        # OpenTelemetry spans of job runs (engine/tracing.py): off when None; read by each runner.
        self.tracing: JobTracing | None = tracing
        self.experts = ExpertRegistry()
        self._tools: dict[str, Tool] = {}
        # MCP servers by expert key (engine/mcp.py), connected at the first job of an expert.
        self._mcp_servers: dict[str, tuple[McpServer, ...]] = {}
        self._mcp: McpClients | None = None
        self.mcp_pending = False
        """Whether some expert's MCP servers are not listed yet (the runner then prepares them)."""
        self._toolsets: dict[
            tuple[str, bool],
            tuple[ExpertDefinition, Toolset],
        ] = {}
        self._active: dict[str, JobRunner] = {}
        self._wakeups: list[asyncio.Event] = []
        self._heartbeat: asyncio.Task[None] | None = None
        for each in tools:
            self.add_tool(each)
        for expert in experts:
            self.add_expert(expert)

    # ------------------------------------------------------------------ registration

    def add_tool(self, fn: Tool | Callable[..., Any], *, name: str | None = None) -> Tool:
        """Register a tool (a :class:`Tool` or a function, described from its hints and docstring)."""
        made = fn if isinstance(fn, Tool) else Tool.from_function(fn, name=name)
        self._tools[made.name] = made
        self._toolsets.clear()
        return made

    def add_expert(
        self,
        key: str | ExpertDefinition,
        instruction: str | None = None,
        *,
        tools: Sequence[Tool | Callable[..., Any] | str] = (),
        interactive_tools: Sequence[InteractiveToolSpec | Mapping[str, Any]] = (),
        delegates: Sequence[str] = (),
        description: str = "",
        tags: Sequence[str] = (),
        tool_timeout: float | None = None,
        mcp_servers: Sequence[McpServer] = (),
        output: Any = None,
    ) -> ExpertDefinition:
        """Register an expert. Tools given as functions or :class:`Tool` are registered too.

        ``tool_timeout`` (seconds) bounds each call of the expert's tools that do not set their own
        timeout (``None``: the runtime's ``settings.tool_timeout``), its MCP tools' included.

        ``mcp_servers`` (:class:`~expert_jobs.engine.mcp.McpStdioServer`,
        :class:`~expert_jobs.engine.mcp.McpHttpServer`; the ``mcp`` extra) add the tools of MCP
        servers: connected at the first job of the expert, shared by every run of this runtime,
        stopped by :meth:`close`.

        ``output`` declares the shape of the expert's final answer: a type pydantic can validate
        (a model, ``list[Item]``...) or a JSON schema mapping (see
        :mod:`expert_jobs.domain.output`). Its jobs' answers are then validated (an invalid one is
        sent back to the model, within ``maxRetries``) and the output is ``job.output``.
        """
        for server in mcp_servers:
            if not isinstance(server, McpServer):
                raise UsageError(f"mcp_servers takes McpStdioServer or McpHttpServer objects, got {server!r}")
        if isinstance(key, ExpertDefinition):
            expert = key
        else:
            if instruction is None:
                raise UsageError(f"expert {key!r} needs an instruction")
            names = []
            for each in tools:
                names.append(each if isinstance(each, str) else self.add_tool(each).name)
            expert = ExpertDefinition(
                key=key,
                instruction=instruction,
                description=description,
                tags=tuple(tags),
                tools=tuple(names),
                interactive_tools=tuple(
                    t if isinstance(t, InteractiveToolSpec) else InteractiveToolSpec.model_validate(t)
                    for t in interactive_tools
                ),
                delegates=tuple(delegates),
                tool_timeout=tool_timeout,
                output=output,
            )
        self.experts.add(expert)
        if mcp_servers:
            self._mcp_servers[expert.key] = tuple(mcp_servers)
            self.mcp_pending = True
        else:
            self._mcp_servers.pop(expert.key, None)
        self._toolsets.clear()
        return expert

    def mcp_servers(self, expert_key: str) -> tuple[McpServer, ...]:
        """The MCP servers of the expert ``expert_key`` (its full key, ``name@version``)."""
        return self._mcp_servers.get(expert_key, ())

    async def prepare_mcp(self, expert: ExpertDefinition) -> None:
        """Connect and list the MCP servers of ``expert`` and of the experts it may delegate to
        (the runner calls it before a job's first run while :attr:`mcp_pending`); a server that
        cannot start or whose ``pick`` names a tool it lacks raises
        :class:`~expert_jobs.engine.mcp.McpError`."""
        servers: list[McpServer] = []
        seen: set[str] = set()
        todo = [expert.key]
        while todo:
            key = todo.pop()
            if key in seen:
                continue
            seen.add(key)
            servers.extend(self._mcp_servers.get(key, ()))
            with_delegates = self.experts.get(key) if key != expert.key else expert
            if with_delegates is not None:
                todo.extend(self.resolve_expert(each).key for each in with_delegates.delegates)
        if not servers:
            return
        clients = self._mcp
        if clients is None:
            clients = self._mcp = McpClients(self._toolsets.clear)
        await clients.prepare(servers)
        self.mcp_pending = not all(clients.listed(each) for each in self._mcp_servers.values())

    def toolset(self, expert: ExpertDefinition, *, root: bool) -> Toolset:
        """What a run of ``expert`` offers the model: declarations, function and interactive tool
        names (interactive: root runs only), delegate tool names -> expert keys, and the function
        tools with their timeouts. Cached until an expert or tool is added."""
        cached = self._toolsets.get((expert.key, root))
        if cached is not None and cached[0] is expert:
            return cached[1]
        callables: dict[str, tuple[Tool, float | None]] = {}
        for name in expert.tools:
            each = self.tool(name)
            callables[name] = (each, each.timeout if each.timeout is not None else expert.tool_timeout)
        mcp_servers = self._mcp_servers.get(expert.key)
        if mcp_servers and self._mcp is not None:
            for server in mcp_servers:
                for listed in self._mcp.tools(server):
                    if listed.name in callables:
                        raise UsageError(
                            f"expert {expert.key!r}: MCP server {server.name!r} offers a tool named "
                            f"{listed.name!r}, a name another of its tools has (use pick or omit)"
                        )
                    callables[listed.name] = (listed, expert.tool_timeout)
        declarations: list[ToolDeclaration] = [each.declaration for each, _ in callables.values()]
        interactive: frozenset[str] = frozenset()
        if root:
            declarations.extend(
                ToolDeclaration(t.name, t.description, t.input_schema) for t in expert.interactive_tools
            )
            interactive = frozenset(t.name for t in expert.interactive_tools)
        delegates: dict[str, str] = {}
        for key in expert.delegates:
            delegate = self.resolve_expert(key)
            description = delegate.description or f"Delegate a task to the expert {delegate.key}."
            name = delegate_tool_name(key)
            delegates[name] = key
            declarations.append(ToolDeclaration(name, description, _DELEGATE_PARAMS))
        made = Toolset(tuple(declarations), frozenset(callables), interactive, delegates, callables)
        self._toolsets[(expert.key, root)] = (expert, made)
        return made

    def tool(self, name: str) -> Tool:
        """The registered tool ``name``."""
        try:
            return self._tools[name]
        except KeyError:
            raise UsageError(f"no tool named {name!r} is registered with the runtime") from None

    def resolve_expert(self, key: str) -> ExpertDefinition:
        """The expert ``key`` names, or :class:`UnknownExpert`."""
        expert = self.experts.get(key)
        if expert is None:
            raise UnknownExpert(key)
        return expert

    @property
    def providers(self) -> Provider | ProviderResolver:
        """One provider for every model, or a resolver choosing per model and application."""
        return self._providers

    @providers.setter
    def providers(self, providers: Provider | ProviderResolver) -> None:
        # Checking a runtime protocol costs microseconds: decide once, not per job.
        self._providers = providers
        self._resolver = providers if isinstance(providers, ProviderResolver) else None

    def provider_for(self, job: Job) -> Provider:
        """The provider that serves the job's model for the job's application."""
        if self._resolver is not None:
            return self._resolver.resolve(job.model, application_id=job.application_id)
        return self._providers  # type: ignore[return-value]

    def check_ready(self, expert: ExpertDefinition) -> None:
        """Refuse an expert whose tools or delegates are not registered (before a job is written)."""
        for name in expert.tools:
            self.tool(name)
        for key in expert.delegates:
            self.resolve_expert(key)

    # ------------------------------------------------------------------ jobs

    async def submit(
        self,
        expert_key: str,
        query: str | None = None,
        files: Sequence[str] = (),
        *,
        model: str | None = None,
        temperature: float | None = None,
        max_steps: int | None = None,
        max_retries: int | None = None,
        application_id: str | None = None,
        organization_id: str | None = None,
    ) -> Job:
        """Write a new queued job (validated first: nothing is written for bad input).

        ``temperature`` must be in [0, 1], ``max_steps`` in 1..``MAX_STEPS_LIMIT`` and
        ``max_retries`` in 0..``MAX_RETRIES_LIMIT`` (the API's ranges), else :class:`UsageError`
        naming the field; files are checked in a worker thread (:meth:`Workspace.check_async`).
        """
        settings = self.settings
        expert = self.resolve_expert(expert_key)
        self.check_ready(expert)
        if not query and not files:
            raise UsageError("Query or files are required")
        model_id = model or settings.default_model
        info = self.models.get_info(model_id)
        temperature = settings.default_temperature if temperature is None else temperature
        max_steps = settings.default_max_steps if max_steps is None else max_steps
        max_retries = settings.default_max_retries if max_retries is None else max_retries
        if not (
            # The common case in one test (numbers of the right type, in range); else the full check.
            (type(temperature) is float or type(temperature) is int)
            and 0 <= temperature <= 1
            and type(max_steps) is int
            and 1 <= max_steps <= MAX_STEPS_LIMIT
            and type(max_retries) is int
            and 0 <= max_retries <= MAX_RETRIES_LIMIT
        ):
            self._check_options(None, temperature, max_steps, max_retries)
        app = application_id or settings.application_id
        if files:
            if self.workspace is None:
                raise UsageError("files were given but the runtime has no workspace")
            await self.workspace.check_async(app, tuple(files), info.provider)
        now = self.clock.now()
        job = Job(
            id=new_id(),
            organization_id=organization_id or settings.organization_id,
            application_id=app,
            expert_key=expert_key,
            expert=expert.digest(),
            query=query,
            files=tuple(files),
            model=model_id,
            temperature=float(temperature),
            max_steps=int(max_steps),
            max_retries=int(max_retries),
            created_at=now,
        )
        await self.store.create(job)
        self._wake()
        return job

    @overload
    async def run(
        self,
        expert_key: str,
        query: str | None = None,
        files: Sequence[str] = (),
        *,
        output: None = None,
        **options: Any,
    ) -> Job: ...

    @overload
    async def run(
        self,
        expert_key: str,
        query: str | None = None,
        files: Sequence[str] = (),
        *,
        output: type[T],
        **options: Any,
    ) -> JobResult[T]: ...

    async def run(
        self,
        expert_key: str,
        query: str | None = None,
        files: Sequence[str] = (),
        *,
        output: Any = None,
        **options: Any,
    ) -> Job | JobResult[Any]:
        """Submit a job and run it here until it completes, pauses, fails or stops; returns the job.

        With ``output=T`` (the expert must declare an output schema, and when declared with a
        Python type, one with T's schema), returns a :class:`~expert_jobs.domain.output.JobResult`
        instead: the job and its output read as a ``T`` (``None`` unless the job completed).
        """
        if output is not None:
            self._check_output_type(self.resolve_expert(expert_key), output)
        job = await self.submit(expert_key, query, files, **options)
        done = await self.drive(job.id)
        if output is None:
            return done
        return JobResult(done, self._typed(done, output))

    async def result(self, job_id: str, output: type[T] | None = None) -> JobResult[T]:
        """The job and its output, from any process: the output its final checkpoint holds (also
        set as ``job.output``), read as ``output`` when given (else the JSON value);
        ``None`` unless the job completed with an output. :class:`JobNotFound` for an unknown job."""
        job = await self.get(job_id)  # its output read from its final checkpoint
        typed = job.output if output is None else self._typed(job, output)
        return JobResult(job, typed)

    @staticmethod
    def _check_output_type(expert: ExpertDefinition, output: Any) -> None:
        """Refuse ``run(..., output=T)`` for an expert without an output schema, or declared with
        a Python type of another schema than T's."""
        declared = expert.output
        if declared is None:
            raise UsageError(
                f"expert {expert.key!r} declares no output schema: give it one (add_expert(..., "
                "output=...), outputJsonSchema in a configuration file) to run it with output="
            )
        if declared.python_type is not None and declared.python_type != output:
            try:
                asked = output_spec(output)
            except ValueError as exc:
                raise UsageError(str(exc)) from None
            if asked is None or asked.json_schema != declared.json_schema:
                raise UsageError(
                    f"expert {expert.key!r} declares the output {declared.python_type!r}, whose schema "
                    f"differs from that of output={output!r}"
                )

    @staticmethod
    def _typed(job: Job, output: type[T]) -> T | None:
        """``job.output`` read as ``output`` (``None`` when there is none); :class:`UsageError`
        when it does not read as one."""
        if job.output is None:
            return None
        try:
            return typed_output(job.output, output)
        except ValueError as exc:  # pydantic's ValidationError is one
            raise UsageError(f"job {job.id}: its output does not read as {output!r}: {exc}") from None

    async def drive(self, job_id: str, *, worker_id: str = "inline") -> Job:
        """Run the queued job ``job_id`` here (claiming it) until it stops or pauses."""
        claimed = await self.store.claim(
            worker_id, now=self.clock.now(), lease_seconds=self.settings.lease_seconds, job_id=job_id
        )
        if claimed is None:
            job = await self.get(job_id)
            raise CannotContinue(job_id, job.status, "the job is not queued or another worker holds it")
        return await JobRunner(self, claimed, worker_id).run()  # what execute does, a frame less

    async def execute(self, job: Job, worker_id: str) -> Job:
        """Run a job this worker has claimed (what :meth:`drive` and :class:`Worker` do: the
        worker's task for the job is the runner's ``run()`` itself, one coroutine less per job)."""
        return await JobRunner(self, job, worker_id).run()

    def runner_started(self, runner: JobRunner) -> None:
        """``runner``'s run starts (called by it): it is this runtime's active runner of its job
        (cancel requests and lease renewals reach it) until :meth:`runner_ended`, and the lease
        heartbeat runs."""
        self._active[runner.job.id] = runner
        heartbeat = self._heartbeat
        if heartbeat is None or heartbeat.done() or heartbeat.get_loop() is not asyncio.get_running_loop():
            self._heartbeat = asyncio.create_task(self._renew_leases(), name="expert-jobs-leases")

    def runner_ended(self, runner: JobRunner) -> None:
        """``runner``'s run ended, however (called by it): it is no longer active."""
        job_id = runner.job.id
        if self._active.get(job_id) is runner:
            del self._active[job_id]

    async def _renew_leases(self) -> None:
        """While runners are active here: renew their leases every third of the lease time, abandon
        a job whose lease was lost, and pass on cancel requests made in other processes.

        The renewals of one round run concurrently, so a batching store serves them together."""
        while self._active:
            await asyncio.sleep(self.settings.lease_seconds / 3)
            renewals = [self._renew(job_id, runner) for job_id, runner in list(self._active.items())]
            await asyncio.gather(*renewals)

    async def _renew(self, job_id: str, runner: JobRunner) -> None:
        store = self.store
        try:
            held = await store.renew_lease(
                job_id, runner.worker_id, now=self.clock.now(), lease_seconds=self.settings.lease_seconds
            )
            if not held:
                runner.abandon()
                return
            fresh = await store.get(job_id)
        except Exception:
            _log.exception("lease renewal of job %s failed", job_id)
            return
        if fresh is not None and fresh.status is S.CANCELING:
            runner.request_cancel()

    async def get(self, job_id: str) -> Job:
        """The job, or :class:`JobNotFound`. A job that has ended carries what it cost
        (``job.cost``: its final checkpoint's, one more read; ``None`` while it has not ended) and
        its output (``job.output``: its final checkpoint's, when its expert declares an output
        schema and it completed)."""
        job = await self.store.get(job_id)
        if job is None:
            raise JobNotFound(job_id)
        if job.status in PRICED_STATUSES and job.last_checkpoint_id is not None:
            final = await self.store.get_checkpoint(job_id, job.last_checkpoint_id)
            job.cost = None if final is None else final.cost
            job.output = None if final is None else final.output
        return job

    async def stream(self, job_id: str) -> AsyncIterator[JobEvent]:
        """Follow one job run in this process: its events as they happen, the delta events of its
        generations included (every run's: ``event.run_id`` tells the root run from a delegate's);
        ends after the job's transition into a resting status (completed, paused for a person,
        exceededMaxSteps, failed, canceled, expired), or at once if it rests already::

            job = await runtime.submit("main@1.0.0", "Hello")
            driving = asyncio.create_task(runtime.drive(job.id))
            async for event in runtime.stream(job.id):
                if event.delta is not None and event.delta.kind == "text":
                    print(event.delta.text, end="", flush=True)

        While the stream is open the job's generations stream (when its provider can: see
        docs/providers.md). A ``retry`` event voids the deltas of the failed attempt. Events are
        this process's: a job run by a worker elsewhere yields nothing (the API's
        ``events/stream`` route also reads the store). :class:`JobNotFound` for an unknown job.
        """
        events = self.events
        queue = events.open_stream(job_id, deltas=True)
        try:
            job = await self.get(job_id)
            if job.status in RESTING_STATUSES:
                return
            while True:
                event = await queue.get()
                yield event
                if event.kind == "transition" and event.status in RESTING_STATUSES:
                    return
        finally:
            events.close_stream(job_id, queue)

    async def cost(self, job_id: str) -> Cost | None:
        """What the job has cost so far, priced from its checkpoints (each step with the model it
        ran on; see :func:`expert_jobs.engine.pricing.job_cost`), or ``None`` when a model is
        unknown to the price table. :class:`JobNotFound` for an unknown job; the ``prices`` extra
        is needed (:class:`~expert_jobs.engine.pricing.PricesUnavailable` without it)."""
        job = await self.store.get(job_id)
        if job is None:
            raise JobNotFound(job_id)
        return await self._job_cost(job)

    async def _job_cost(self, job: Job, *later: Checkpoint) -> Cost | None:
        """``job``'s cost from its stored checkpoints and the ``later`` ones not stored yet."""
        checkpoints: list[Checkpoint] = []
        while True:
            page, total = await self.store.list_checkpoints(job.id, take=500, skip=len(checkpoints))
            checkpoints.extend(page)
            if not page or len(checkpoints) >= total:
                break
        return job_cost(job, [*checkpoints, *later])

    async def continue_job(
        self,
        job_id: str,
        query: str | None = None,
        files: Sequence[str] = (),
        *,
        interactive: bool = False,
        tool_call_id: str | None = None,
        model: str | None = None,
        temperature: float | None = None,
        max_steps: int | None = None,
        max_retries: int | None = None,
    ) -> Job:
        """Answer a pending interactive call (``interactive=True``; ``query`` is the answer) or
        follow up a completed / exceededMaxSteps / failed job with a new query on its history.

        The job goes back to ``queued`` (once every pending interactive call is answered); a worker
        or :meth:`drive` runs it on. Raises :class:`CannotContinue` for any other status, and
        :class:`UsageError` for an override out of the ranges :meth:`submit` takes.
        """
        self._check_options(job_id, temperature, max_steps, max_retries)
        job = await self.get(job_id)
        latest = await self.store.latest_checkpoints(job_id)
        root = latest.get(root_run_id(job_id))
        await self._check_continuable(job, root, query, files, interactive, tool_call_id, model)
        if interactive:
            assert root is not None
            call = next(c for c in root.pending_calls if tool_call_id in (None, c.id))
            answer = query or ""
            limit = self.settings.max_tool_result_chars
            if limit is not None and len(answer) > limit:
                answer = clip_result(answer, limit)
            answered = (*root.partial_results, ToolResult(call.id, call.name, answer))
            remaining = tuple(c for c in root.pending_calls if c.id != call.id)
            trigger: str | None = None
            new_messages: tuple[Message, ...] = ()
            state: RunState = "waitingInteractive"
            if not remaining:
                history = await self.store.load_history(job_id, root.run_id)
                last = history[-1]
                assert type(last) is AssistantMessage
                by_id = {r.call_id: r for r in answered}
                new_messages = (ToolResultsMessage(tuple(by_id[c.id] for c in last.tool_calls)),)
                answered, trigger, state = (), "resume", "running"
            checkpoint_fields: dict[str, Any] = {"pending_calls": remaining, "partial_results": answered}
        else:
            new_messages = (await user_message(query, tuple(files), job.application_id, self.workspace),)
            trigger, state = "follow_up", "running"
            checkpoint_fields = {"pending_calls": (), "partial_results": (), "delegations": (), "error": None}
            job.error = None
        self._apply_overrides(job, model, temperature, max_steps, max_retries)
        job.interactive_tool_call_result = interactive
        await self._write_external(job, root, trigger, "resume", state, new_messages, **checkpoint_fields)
        self._wake()
        return job

    async def branch_from(
        self,
        job_id: str,
        checkpoint_id: str,
        query: str | None = None,
        files: Sequence[str] = (),
        *,
        interactive: bool = False,
        tool_call_id: str | None = None,
        model: str | None = None,
        temperature: float | None = None,
        max_steps: int | None = None,
        max_retries: int | None = None,
    ) -> Job:
        """A new job that starts from any checkpoint of the root run of ``job_id``.

        The branch carries the history, counters and usage up to that checkpoint and takes the
        status that checkpoint describes (a finished run: its final status; a pause for a person:
        ``requestInteractiveToolResult``; work in progress: ``queued``). With ``query``/``files``
        (or ``interactive``) it is then continued like :meth:`continue_job`. Overrides out of the
        ranges :meth:`submit` takes are a :class:`UsageError` (no branch is made).
        """
        self._check_options(job_id, temperature, max_steps, max_retries)
        source = await self.get(job_id)
        checkpoint = await self.store.get_checkpoint(job_id, checkpoint_id)
        if checkpoint is None:
            raise CannotContinue(job_id, source.status, "No checkpoint found")
        if checkpoint.parent_run_id is not None:
            raise CannotContinue(
                job_id, source.status, "branch from a checkpoint of the root run, not a delegate's"
            )
        status = _BRANCH_STATUS.get(checkpoint.run_state)
        if status is None:
            raise CannotContinue(
                job_id, source.status, f"cannot branch from a {checkpoint.run_state} checkpoint"
            )
        history = await self.store.load_history(job_id, checkpoint.run_id, upto_seq=checkpoint.seq)
        now = self.clock.now()
        job = Job(
            id=new_id(),
            organization_id=source.organization_id,
            application_id=source.application_id,
            expert_key=source.expert_key,
            expert=source.expert,
            query=source.query,
            files=source.files,
            model=source.model,
            temperature=source.temperature,
            max_steps=source.max_steps,
            max_retries=source.max_retries,
            created_at=now,
            status=status,
            current_step=checkpoint.step,
            total_steps=checkpoint.total_steps,
            total_duration_ms=checkpoint.total_duration_ms,
            usage=checkpoint.usage,
            error=checkpoint.error,
            checkpoint_seq=1,
        )
        self._apply_overrides(job, model, temperature, max_steps, max_retries)
        first = checkpoint._replace(
            id=make_checkpoint_id(job.id, 1),
            job_id=job.id,
            run_id=root_run_id(job.id),
            seq=1,
            kind="start",
            status=status,
            created_at=now,
            new_messages=tuple(history),
            message_count=len(history),
            step_usage=checkpoint.usage,  # inherited, so checkpoint usages still sum to the job's
            cost=None,  # a new job: not the source's final cost, nor its run's trace context
            traceparent=None,
        )
        job.last_checkpoint_id = first.id
        if query or files or interactive:
            # Refuse a continuation that cannot be done before the branch exists: no dangling job.
            await self._check_continuable(job, first, query, files, interactive, tool_call_id, model)
        await self.store.create(job, first)
        if query or files or interactive:
            return await self.continue_job(
                job.id, query, files, interactive=interactive, tool_call_id=tool_call_id
            )
        self._wake()
        return job

    async def _check_continuable(
        self,
        job: Job,
        root: Checkpoint | None,
        query: str | None,
        files: Sequence[str],
        interactive: bool,
        tool_call_id: str | None,
        model: str | None,
    ) -> None:
        """Raise what :meth:`continue_job` would refuse, before anything is written (the files are
        checked in a worker thread, never on the event loop)."""
        if interactive:
            if job.status is not S.REQUEST_INTERACTIVE_TOOL_RESULT:
                raise CannotContinue(job.id, job.status)
            if root is None or not root.pending_calls:
                raise CannotContinue(job.id, job.status, "No checkpoint found")
            if not any(tool_call_id in (None, c.id) for c in root.pending_calls):
                raise CannotContinue(job.id, job.status, f"no pending tool call {tool_call_id!r}")
            return
        if job.status not in _FOLLOW_UP_FROM:
            raise CannotContinue(job.id, job.status)
        if root is None:
            raise CannotContinue(job.id, job.status, "No checkpoint found")
        if not query and not files:
            raise UsageError("Query or files are required")
        if files:
            if self.workspace is None:
                raise UsageError("files were given but the runtime has no workspace")
            await self.workspace.check_async(
                job.application_id, tuple(files), self.models.get_info(model or job.model).provider
            )

    @staticmethod
    def _check_options(
        job_id: str | None, temperature: float | None, max_steps: int | None, max_retries: int | None
    ) -> None:
        """Refuse a job option out of its range (``None``: not given) with a :class:`UsageError`
        naming the field (and ``job_id``'s job), before anything is read or written.

        The ranges are the API's: ``temperature`` 0..1, ``maxSteps`` 1..``MAX_STEPS_LIMIT``,
        ``maxRetries`` 0..``MAX_RETRIES_LIMIT``; a library caller gets this error rather than a
        store's (PostgreSQL holds both counts as int4).
        """
        where = f"job {job_id}: " if job_id is not None else ""
        if temperature is not None:
            if isinstance(temperature, bool) or not isinstance(temperature, int | float):
                raise UsageError(f"{where}temperature must be a number between 0 and 1, got {temperature!r}")
            if not 0 <= temperature <= 1:
                raise UsageError(f"{where}temperature must be between 0 and 1, got {temperature}")
        for field, value, low, high, limit in (
            ("maxSteps", max_steps, 1, MAX_STEPS_LIMIT, "MAX_STEPS_LIMIT"),
            ("maxRetries", max_retries, 0, MAX_RETRIES_LIMIT, "MAX_RETRIES_LIMIT"),
        ):
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int):
                raise UsageError(f"{where}{field} must be a whole number, got {value!r}")
            if value < low:
                raise UsageError(f"{where}{field} must be >= {low}, got {value}")
            if value > high:
                raise UsageError(f"{where}{field} must be at most {high} ({limit}), got {value}")

    def _apply_overrides(
        self,
        job: Job,
        model: str | None,
        temperature: float | None,
        max_steps: int | None,
        max_retries: int | None,
    ) -> None:
        if model is not None:
            self.models.get_info(model)
            job.model = model
        if temperature is not None:
            job.temperature = float(temperature)
        if max_steps is not None:
            job.max_steps = int(max_steps)
        if max_retries is not None:
            job.max_retries = int(max_retries)

    async def cancel(self, job_id: str) -> Job:
        """Cancel a job. A job no worker holds is ``canceled`` at once (with a final checkpoint);
        a running one goes ``canceling`` and its worker stops it promptly."""
        job = await self.get(job_id)
        runner = self._active.get(job_id)
        held = runner is not None or (
            job.lease_owner is not None and (job.lease_expires_at or 0) > self.clock.now()
        )
        if job.status is S.CANCELING:
            if runner is not None:
                runner.request_cancel()
                return job
            if held:
                return job
            return await self.apply_trigger(job, "finish_cancel")
        before = job.status
        fire(job, "cancel")
        if held:
            job.updated_at = self.clock.now()
            await self.store.save(job, expected_version=job.version)
            self._publish_transition(job, before, "cancel")
            if runner is not None:
                runner.request_cancel()
            return job
        # Nobody holds it: straight on to canceled, one write; both moves are published once it landed.
        return await self.apply_trigger(job, "finish_cancel", earlier=(before, "cancel"))

    async def update_status(self, job_id: str, status: JobStatus | str) -> Job:
        """The system status update: apply the lifecycle edge from the job's status to ``status``.

        ``canceling`` goes through :meth:`cancel`. Raises ``IllegalTransition`` for a move the
        table does not have.
        """
        wanted = JobStatus(status)
        job = await self.get(job_id)
        trigger = trigger_for(job.status, wanted)
        if trigger is None:
            raise IllegalTransition(
                job.id, job.status, f"move to {wanted.value!r}", allowed_triggers(job.status)
            )
        if wanted is S.CANCELING:
            return await self.cancel(job_id)
        assert trigger is not None
        return await self.apply_trigger(job, trigger)

    async def apply_trigger(
        self, job: Job, trigger: str, *, earlier: tuple[JobStatus, str] | None = None
    ) -> Job:
        """Apply ``trigger`` to a job no runner is driving, with a checkpoint when it stops the job.

        ``earlier`` is a move already applied to ``job`` in memory but not yet saved (its former
        status and trigger); it is published, before ``trigger``'s, once the write has landed.
        """
        latest = await self.store.latest_checkpoints(job.id)
        root = latest.get(root_run_id(job.id))
        state: RunState = {
            "finish_cancel": "canceled",
            "expire": "expired",
            "fail": "failed",
            "complete": "completed",
            "exceed_max_steps": "exceededMaxSteps",
        }.get(trigger, root.run_state if root else "running")  # type: ignore[assignment]
        await self._write_external(job, root, trigger, "stop", state, (), earlier=earlier)
        runner = self._active.get(job.id)
        if runner is not None and job.status in (S.CANCELING,):
            runner.request_cancel()
        self._wake()
        return job

    async def _write_external(
        self,
        job: Job,
        root: Checkpoint | None,
        trigger: str | None,
        kind: CheckpointKind,
        state: RunState,
        new_messages: tuple[Message, ...],
        earlier: tuple[JobStatus, str] | None = None,
        **fields: Any,
    ) -> None:
        """Save ``job`` after ``trigger`` with a checkpoint of its root run (built from the latest)."""
        expected = job.version
        before = job.status
        if trigger is not None:
            fire(job, trigger)
            if job.status in (S.QUEUED, S.REQUEST_INTERACTIVE_TOOL_RESULT):
                job.waiting_since = self.clock.now()
        job.updated_at = self.clock.now()
        seq = job.checkpoint_seq + 1
        base = root or _empty_root(job)
        checkpoint = base._replace(
            id=make_checkpoint_id(job.id, seq),
            seq=seq,
            step=job.current_step,
            kind=kind,
            status=job.status,
            run_state=state,
            created_at=job.updated_at,
            new_messages=new_messages,
            message_count=base.message_count + len(new_messages),
            usage=job.usage,
            step_usage=ZERO_USAGE,
            total_steps=job.total_steps,
            total_duration_ms=job.total_duration_ms,
            # The cost belongs to the final checkpoint it was worked out for; the last run's trace
            # context goes on, for the job's next run to link to (engine/tracing.py).
            cost=None,
            output=None,  # the output belongs to the checkpoint where its run completed
            **fields,
        )
        detail: dict[str, Any] = {"checkpointId": checkpoint.id, "kind": kind}
        job.cost = None
        if kind == "stop" and job.status in PRICED_STATUSES and self._prices_final():
            # A job ended without a runner (canceled while queued or paused, expired): priced here.
            try:
                job.cost = await self._job_cost(job, checkpoint)
            except Exception:
                _log.warning("job %s: could not price its final checkpoint", job.id, exc_info=True)
            else:
                checkpoint = checkpoint._replace(cost=job.cost)
                detail["cost"] = None if job.cost is None else job.cost.to_wire()
        job.checkpoint_seq = seq
        job.last_checkpoint_id = checkpoint.id
        await self.store.save(job, expected_version=expected, checkpoint=checkpoint)
        if self.events.active:
            if earlier is not None:
                self._publish_transition(job, earlier[0], earlier[1], after=before)
            self.events.publish(
                JobEvent(
                    "checkpoint",
                    job.id,
                    checkpoint.run_id,
                    job.expert_key,
                    job.current_step,
                    job.updated_at,
                    job.status,
                    detail=detail,
                )
            )
            if trigger is not None:
                self._publish_transition(job, before, trigger)

    def _prices_final(self) -> bool:
        """Whether a job's final checkpoint carries its cost (the setting, and the price table)."""
        return self.settings.price_final_checkpoint and prices_available()

    def _publish_transition(
        self, job: Job, before: JobStatus, trigger: str, *, after: JobStatus | None = None
    ) -> None:
        if self.events.active:
            self.events.publish(
                JobEvent(
                    "transition",
                    job.id,
                    root_run_id(job.id),
                    job.expert_key,
                    job.current_step,
                    job.updated_at,
                    job.status if after is None else after,
                    before,
                    trigger,
                )
            )

    # ------------------------------------------------------------------ workers

    def wakeup_event(self) -> asyncio.Event:
        """An event set whenever a job becomes claimable in this process (workers wait on it)."""
        event = asyncio.Event()
        self._wakeups.append(event)
        return event

    def _wake(self) -> None:
        for event in self._wakeups:
            event.set()

    def runner(self, job_id: str) -> JobRunner | None:
        """The runner driving ``job_id`` in this process, if any."""
        return self._active.get(job_id)

    async def stop_mcp_servers(self) -> None:
        """Stop the MCP servers this runtime started (their processes end, remote sessions close).
        The runtime stays usable: a server is started again when a job next needs its tools."""
        if self._mcp is not None:
            await self._mcp.close()

    async def close(self) -> None:
        """Stop the MCP servers, shut the tool threads down (without waiting for tools still
        running: a hung one keeps its daemon thread until it returns) and close the store."""
        await self.stop_mcp_servers()
        self.tool_threads.shutdown(wait=False, cancel_futures=True)
        await self.store.close()


def _empty_root(job: Job) -> Checkpoint:
    return Checkpoint(
        id="",
        job_id=job.id,
        run_id=root_run_id(job.id),
        seq=0,
        step=0,
        kind="stop",
        status=job.status,
        run_state="running",
        expert_key=job.expert_key,
        created_at=job.updated_at,
        new_messages=(),
        message_count=0,
        usage=job.usage,
        run_usage=ZERO_USAGE,
        step_usage=ZERO_USAGE,
        total_steps=job.total_steps,
        total_duration_ms=job.total_duration_ms,
    )
