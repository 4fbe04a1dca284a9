"""Random scripts against the step loop's invariants (hypothesis)."""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass, field
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from expert_jobs import (
    AssistantMessage,
    FakeClock,
    GenerationRequest,
    GenerationResponse,
    JobEvent,
    JobStatus,
    ProviderError,
    RuntimeSettings,
    ScriptedProvider,
    ToolResultsMessage,
    Usage,
)
from expert_jobs.domain.lifecycle import next_status
from expert_jobs.providers.scripted import Call, Fail, Reply, ToolCalls, Turn

from .conftest import make_runtime

S = JobStatus
usages = st.builds(Usage.of, st.integers(0, 500), st.integers(0, 100))
calls = st.one_of(
    st.builds(lambda a, b: Call("add", {"a": a, "b": b}), st.integers(-5, 5), st.integers(-5, 5)),
    st.just(Call("add", {"a": "bad"})),
    st.just(Call("missing_tool", {})),
    st.just(Call("ask", {"question": "?"})),
    st.just(Call("helper", {"query": "help"})),
)
fail_kinds = st.sampled_from(
    ["server", "rate_limit", "overloaded", "timeout", "authentication", "bad_request"]
)
turns: st.SearchStrategy[Turn] = st.one_of(
    st.builds(Reply, st.just("done"), usage=usages),
    st.builds(lambda cs, u: ToolCalls(tuple(cs), usage=u), st.lists(calls, min_size=1, max_size=3), usages),
    st.builds(Fail, fail_kinds, usage=st.one_of(st.none(), usages)),
)
helper_turns = st.one_of(
    st.builds(Reply, st.just("helped"), usage=usages),
    st.builds(
        lambda c, u: ToolCalls((c,), usage=u),
        st.builds(lambda a: Call("add", {"a": a, "b": 1}), st.integers(0, 3)),
        usages,
    ),
    st.builds(Fail, fail_kinds),
)


@dataclass
class Ledger:
    """What the provider reported, to check the engine's accounting against."""

    usage: Usage = field(default_factory=Usage)
    requests: list[GenerationRequest] = field(default_factory=list)


class CountingProvider:
    """Wraps the scripted provider; records usage, requests, and cancels after N calls."""

    def __init__(self, inner: ScriptedProvider, ledger: Ledger, cancel_at: int | None, runtime: Any) -> None:
        self.inner = inner
        self.ledger = ledger
        self.cancel_at = cancel_at
        self.runtime = runtime
        self.calls = 0
        self.job_id: str | None = None

    async def generate(self, request: GenerationRequest) -> GenerationResponse:
        self.calls += 1
        self.ledger.requests.append(GenerationRequest(request.model, request.system, tuple(request.messages)))
        if self.cancel_at is not None and self.calls == self.cancel_at and self.job_id:
            await self.runtime.cancel(self.job_id)
        try:
            response = await self.inner.generate(request)
        except ProviderError as exc:
            if isinstance(exc.usage, Usage):
                self.ledger.usage = self.ledger.usage + exc.usage
            raise
        self.ledger.usage = self.ledger.usage + response.usage
        return response


def check_tool_results_before_next_generation(requests: list[GenerationRequest]) -> None:
    for request in requests:
        messages = list(request.messages)
        assert not (type(messages[-1]) is AssistantMessage and messages[-1].tool_calls)
        for current, following in itertools.pairwise(messages):
            if type(current) is AssistantMessage and current.tool_calls:
                assert type(following) is ToolResultsMessage
                assert [r.call_id for r in following.results] == [c.id for c in current.tool_calls]


@settings(
    max_examples=int(__import__("os").environ.get("EJ_RANDOM_EXAMPLES", "60")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(
    root=st.lists(turns, min_size=1, max_size=12),
    helper=st.lists(helper_turns, min_size=1, max_size=4),
    max_steps=st.integers(1, 8),
    max_retries=st.integers(0, 3),
    cancel_at=st.one_of(st.none(), st.integers(1, 10)),
)
def test_invariants_hold_for_random_scripts(
    root: list[Turn], helper: list[Turn], max_steps: int, max_retries: int, cancel_at: int | None
) -> None:
    asyncio.run(_exercise(root, helper, max_steps, max_retries, cancel_at))


async def _exercise(
    root: list[Turn], helper: list[Turn], max_steps: int, max_retries: int, cancel_at: int | None
) -> None:
    clock = FakeClock()
    runtime = make_runtime(
        {"main@1.0.0": root, "helper": helper}, clock=clock, settings=RuntimeSettings(backoff_base=0.01)
    )
    ledger = Ledger()
    provider = CountingProvider(runtime.providers, ledger, cancel_at, runtime)  # type: ignore[arg-type]
    runtime.providers = provider
    events: list[JobEvent] = []
    runtime.events.subscribe(events.append)
    job = await runtime.submit("main@1.0.0", "go", max_steps=max_steps, max_retries=max_retries)
    provider.job_id = job.id
    job = await runtime.drive(job.id)
    for _ in range(20):
        if job.status is not S.REQUEST_INTERACTIVE_TOOL_RESULT:
            break
        job = await runtime.continue_job(job.id, "answer", interactive=True)
        if job.status is S.QUEUED:  # every pending call answered
            job = await runtime.drive(job.id)
    stored = await runtime.get(job.id)
    assert stored.status in {
        S.COMPLETED,
        S.EXCEEDED_MAX_STEPS,
        S.FAILED,
        S.CANCELED,
        S.REQUEST_INTERACTIVE_TOOL_RESULT,
    }

    # The status sequence is legal, event after event.
    status = S.QUEUED
    for event in events:
        if event.kind == "transition":
            assert event.trigger is not None
            assert next_status(status, event.trigger) is event.status, (status, event.trigger)
            status = event.status
    assert status is stored.status

    # Usage: the job's equals every reported per-call usage, and the checkpoints' step usages.
    assert stored.usage == ledger.usage
    cps, _ = await runtime.store.list_checkpoints(job.id, take=10_000)
    total = Usage()
    for checkpoint in cps:
        total = total + checkpoint.step_usage
    assert total == stored.usage

    assert stored.total_steps <= max_steps
    assert all(c.retry_count <= max_retries for c in cps)
    seqs = [c.seq for c in cps]
    assert seqs == sorted(set(seqs))
    step_numbers = [c.step for c in cps if c.kind == "step"]
    assert step_numbers == sorted(set(step_numbers))
    check_tool_results_before_next_generation(ledger.requests)
