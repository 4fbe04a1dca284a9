"""ExpertJobsService in-process: every outcome of every operation, tenancy, principals."""

from __future__ import annotations

import asyncio
import itertools
from pathlib import Path

import pytest

from expert_jobs import (
    BadRequest,
    Conflict,
    JobStatus,
    NotFound,
    Reply,
    ToolCalls,
    Unauthorized,
    ValidationFailed,
)
from expert_jobs.domain.lifecycle import can_transition
from expert_jobs.providers.registry import ProviderRegistry
from expert_jobs.service import Application, ExpertJobsService, KeyRing, SystemPrincipal, hash_key

from .kit import APP_ID, ORG_ID, OTHER_APP_ID, UNKNOWN_ID, YieldingStore, make_env, wait_for_status

S = JobStatus
PAUSE_SCRIPT = {"main@1.0.0": [ToolCalls.of(("ask", {"question": "ok?"})), Reply("done")]}


# ---------------------------------------------------------------------------------------- start


async def test_start_queues_a_job_of_the_callers_application_and_the_worker_runs_it() -> None:
    env = make_env([Reply("hello")], worker=True)
    async with env.service:
        job = await env.service.start_job(
            env.app, {"expertKey": "main@1.0.0", "query": "hi", "maxSteps": "7"}
        )
        assert job.status is S.QUEUED
        assert (job.application_id, job.organization_id, job.max_steps) == (APP_ID, ORG_ID, 7)
        done = await wait_for_status(env, job.id, "completed")
        assert (await env.service.get(env.app, job.id)).to_wire() == done.to_wire()


async def test_start_of_an_unknown_expert_is_404() -> None:
    env = make_env()
    with pytest.raises(NotFound) as caught:
        await env.service.start_job(env.app, {"expertKey": "nobody@1.0.0", "query": "hi"})
    assert caught.value.body() == {
        "code": 404,
        "error": "Not Found",
        "reason": "Expert not found: nobody@1.0.0",
    }
    assert (await env.runtime.store.list_checkpoints(UNKNOWN_ID))[1] == 0


@pytest.mark.parametrize("extra", [{}, {"query": ""}, {"files": []}, {"query": "", "files": []}])
async def test_start_without_query_and_files_is_400(extra: dict[str, object]) -> None:
    env = make_env()
    with pytest.raises(BadRequest) as caught:
        await env.service.start_job(env.app, {"expertKey": "main@1.0.0", **extra})
    assert caught.value.body() == {
        "code": 400,
        "error": "Bad Request",
        "reason": "Query or files are required",
    }


@pytest.mark.parametrize(
    ("data", "fields"),
    [
        ({"query": "x"}, ["body.expertKey"]),
        ({"expertKey": "Not A Key", "query": "x"}, ["body.expertKey"]),
        ({"expertKey": "main@1.0.0", "query": "x", "maxSteps": "0"}, ["body.maxSteps"]),
        ({"expertKey": "main@1.0.0", "query": "x", "temperature": "hot"}, ["body.temperature"]),
        (
            {"expertKey": "main@1.0.0", "query": "x", "maxRetries": -1, "model": "gpt-0"},
            ["body.maxRetries", "body.model"],
        ),
        ({"expertKey": "main@1.0.0", "query": 5}, ["body.query"]),
    ],
)
async def test_start_schema_failures_are_422_naming_each_field(
    data: dict[str, object], fields: list[str]
) -> None:
    env = make_env()
    with pytest.raises(ValidationFailed) as caught:
        await env.service.start_job(env.app, data)
    body = caught.value.body()
    assert (body["code"], body["error"]) == (422, "Validation Failed")
    for field in fields:
        assert field in body["reason"]


async def test_files_need_a_workspace_and_must_stay_inside_it(tmp_path: Path) -> None:
    env = make_env()
    with pytest.raises(ValidationFailed, match=r"body\.files"):
        await env.service.start_job(env.app, {"expertKey": "main@1.0.0", "files": ["a.txt"]})
    (tmp_path / APP_ID).mkdir()
    (tmp_path / APP_ID / "a.txt").write_text("data")
    env = make_env(workspace=str(tmp_path))
    with pytest.raises(ValidationFailed) as caught:
        await env.service.start_job(env.app, {"expertKey": "main@1.0.0", "files": ["a.txt", "../x"]})
    assert caught.value.reason.startswith("body.files[1]: ")
    with pytest.raises(ValidationFailed, match=r"body\.files\[0\]: no such file"):
        await env.service.start_job(env.other, {"expertKey": "main@1.0.0", "files": "a.txt"})
    job = await env.service.start_job(env.app, {"expertKey": "main@1.0.0", "files": "a.txt"})
    assert job.files == ("a.txt",)


async def test_a_missing_provider_key_is_400_with_application_keys_first_then_the_environment() -> None:
    def registry(keyring: KeyRing, environ: dict[str, str]) -> ProviderRegistry:
        return ProviderRegistry(key_for=keyring.provider_key, environ=environ)

    env = make_env()
    keyring = env.service.keyring
    keyed = Application(
        id="appthree0000000000000003",
        organization_id=ORG_ID,
        key_hashes=(hash_key("k3"),),
        provider_keys={"openai": "sk-test"},
    )
    keyring.add(keyed)
    env.runtime.providers = registry(keyring, {})
    with pytest.raises(BadRequest) as caught:
        await env.service.start_job(env.app, {"expertKey": "main@1.0.0", "query": "x"})
    assert caught.value.body() == {
        "code": 400,
        "error": "Bad Request",
        "reason": "Provider API key not found",
    }
    # The application's own key serves its provider; not another provider's models.
    job = await env.service.start_job(keyed, {"expertKey": "main@1.0.0", "query": "x", "model": "gpt-5"})
    assert job.model == "gpt-5"
    with pytest.raises(BadRequest, match="Provider API key not found"):
        await env.service.start_job(keyed, {"expertKey": "main@1.0.0", "query": "x"})
    # The environment is the fallback.
    env.runtime.providers = registry(keyring, {"ANTHROPIC_API_KEY": "sk-env"})
    job = await env.service.start_job(env.app, {"expertKey": "main@1.0.0", "query": "x"})
    assert job.model == "claude-sonnet-4-5"
    assert len((await env.runtime.store.list(_query(APP_ID)))[0]) == 1  # nothing written when refused


def _query(app_id: str):  # type: ignore[no-untyped-def]
    from expert_jobs import JobQuery

    return JobQuery(application_id=app_id)


# ---------------------------------------------------------------------------------------- principals


async def test_job_operations_need_an_application_and_status_updates_the_system() -> None:
    env = make_env()
    job = await env.service.start_job(env.app, {"expertKey": "main@1.0.0", "query": "x"})
    system = SystemPrincipal()
    for call in (
        env.service.get(system, job.id),
        env.service.start_job(system, {"expertKey": "main@1.0.0", "query": "x"}),
        env.service.list(system, {"applicationId": APP_ID}),
        env.service.list_checkpoints(system, job.id),
        env.service.continue_job(system, job.id, {"query": "x"}),
        env.service.update_status(env.app, job.id, {"status": "canceling"}),
    ):
        with pytest.raises(Unauthorized) as caught:
            await call
        assert caught.value.body() == {
            "code": 401,
            "error": "Unauthorized",
            "reason": "Failed to authenticate",
        }


def test_authenticate_takes_only_a_bearer_key_of_a_known_principal() -> None:
    env = make_env()
    assert env.service.authenticate(f"Bearer {env.key}") == env.app
    assert env.service.authenticate(f"bearer   {env.other_key} ") == env.other
    assert env.service.authenticate(f"Bearer {env.system_key}") == SystemPrincipal()
    for header in (
        None,
        "",
        "Bearer",
        "Bearer ",
        env.key,
        f"Basic {env.key}",
        f"Bearer {env.key}x",
        "Bearer ejk_nope",
    ):
        with pytest.raises(Unauthorized):
            env.service.authenticate(header)
    # A key whose application was removed from the key ring no longer authenticates.
    env.service.keyring.applications.pop(APP_ID)
    with pytest.raises(Unauthorized):
        env.service.authenticate(f"Bearer {env.key}")


async def test_a_job_of_another_application_is_not_found_exactly_like_an_unknown_one() -> None:
    env = make_env()
    job = await env.service.start_job(env.app, {"expertKey": "main@1.0.0", "query": "x"})
    answers = []
    for job_id in (job.id, UNKNOWN_ID):
        for call in (
            env.service.get(env.other, job_id),
            env.service.continue_job(env.other, job_id, {"query": "x"}),
            env.service.resume_from(env.other, job_id, {"checkpointId": UNKNOWN_ID}),
            env.service.cancel(env.other, job_id),
            env.service.list_checkpoints(env.other, job_id),
            env.service.get_checkpoint(env.other, job_id, UNKNOWN_ID),
            env.service.watch_checkpoints(env.other, job_id),
        ):
            with pytest.raises(NotFound) as caught:
                await call
            answers.append(caught.value.body()["reason"].replace(job_id, "<id>"))
    assert set(answers) == {"Expert job not found: <id>"}
    assert (await env.runtime.get(job.id)).status is S.QUEUED  # untouched


async def test_a_malformed_job_id_is_422_naming_the_path_parameter() -> None:
    env = make_env()
    for bad in ("short", "UPPERCASE000000000000000", "a" * 25, "abc-defghijklmnopqrstuvw"):
        with pytest.raises(ValidationFailed, match=r"^path\.expertJobId: "):
            await env.service.get(env.app, bad)


# ---------------------------------------------------------------------------------------- list


async def test_list_filters_by_expert_key_ignoring_case_sorts_pages_and_counts() -> None:
    env = make_env()
    made = []
    for key in ("main@1.0.0", "writer@2.0.0", "main@1.0.0", "helper", "writer@2.0.0"):
        made.append(await env.service.start_job(env.app, {"expertKey": key, "query": "x"}))
        await asyncio.sleep(0.002)  # distinct creation times
    await env.service.start_job(env.other, {"expertKey": "main@1.0.0", "query": "x"})
    page = await env.service.list(env.app, {"applicationId": APP_ID})
    assert (page.total, page.take, page.skip) == (5, 100, 0)
    assert [j.id for j in page.jobs] == [j.id for j in reversed(made)]  # createdAt desc by default
    page = await env.service.list(
        env.app, {"applicationId": APP_ID, "order": "asc", "take": "2", "skip": "1"}
    )
    assert [j.id for j in page.jobs] == [made[1].id, made[2].id] and page.total == 5
    page = await env.service.list(env.app, {"applicationId": APP_ID, "filter": "WRITER@2"})
    assert {j.id for j in page.jobs} == {made[1].id, made[4].id} and page.total == 2
    page = await env.service.list(env.app, {"applicationId": APP_ID, "filter": "ain@1.0", "take": 1})
    assert page.total == 2 and len(page.jobs) == 1
    wire = page.to_wire()
    assert (
        wire["meta"] == {"total": 2, "take": 1, "skip": 0}
        and wire["data"]["expertJobs"][0]["type"] == "expertJob"
    )
    # updatedAt: the most recently touched job comes first.
    await env.service.cancel(env.app, made[0].id)
    page = await env.service.list(env.app, {"applicationId": APP_ID, "sort": "updatedAt"})
    assert page.jobs[0].id == made[0].id


async def test_listing_another_applications_jobs_is_refused_with_401() -> None:
    env = make_env()
    with pytest.raises(Unauthorized):
        await env.service.list(env.app, {"applicationId": OTHER_APP_ID})


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({}, "query.applicationId"),
        ({"applicationId": "nope"}, "query.applicationId"),
        ({"applicationId": APP_ID, "take": "0"}, "query.take"),
        ({"applicationId": APP_ID, "take": "101"}, "query.take"),
        ({"applicationId": APP_ID, "skip": "-1"}, "query.skip"),
        ({"applicationId": APP_ID, "take": "ten"}, "query.take"),
        ({"applicationId": APP_ID, "sort": "id"}, "query.sort"),
        ({"applicationId": APP_ID, "order": "up"}, "query.order"),
        ({"applicationId": APP_ID, "filter": ""}, "query.filter"),
        ({"applicationId": APP_ID, "filter": "x" * 257}, "query.filter"),
    ],
)
async def test_list_query_failures_are_422_naming_the_parameter(query: dict[str, str], field: str) -> None:
    env = make_env()
    with pytest.raises(ValidationFailed) as caught:
        await env.service.list(env.app, query)
    assert caught.value.reason.startswith(field + ": ")


# ---------------------------------------------------------------------------------------- status updates


async def test_status_update_applies_the_lifecycle_edge_and_refuses_others_with_409() -> None:
    env = make_env()
    system = SystemPrincipal()
    job = await env.service.start_job(env.app, {"expertKey": "main@1.0.0", "query": "x"})
    with pytest.raises(Conflict) as caught:
        await env.service.update_status(system, job.id, {"status": "completed"})
    body = caught.value.body()
    assert (body["code"], body["error"]) == (409, "Conflict")
    assert job.id in body["reason"] and "queued" in body["reason"] and "completed" in body["reason"]
    assert (await env.runtime.get(job.id)).status is S.QUEUED
    failed = await env.service.update_status(system, job.id, {"status": "failed"})
    assert failed.status is S.FAILED
    assert (await env.service.update_status(system, job.id, {"status": "queued"})).status is S.QUEUED
    with pytest.raises(NotFound, match=UNKNOWN_ID):
        await env.service.update_status(system, UNKNOWN_ID, {"status": "failed"})
    with pytest.raises(ValidationFailed, match=r"^body\.status: "):
        await env.service.update_status(system, job.id, {"status": "done"})
    with pytest.raises(ValidationFailed, match=r"^body: "):
        await env.service.update_status(system, job.id, None)  # type: ignore[arg-type]


async def test_status_update_to_canceling_cancels_an_idle_job_at_once() -> None:
    env = make_env()
    job = await env.service.start_job(env.app, {"expertKey": "main@1.0.0", "query": "x"})
    canceled = await env.service.update_status(SystemPrincipal(), job.id, {"status": "canceling"})
    assert canceled.status is S.CANCELED
    checkpoints, _ = await env.runtime.store.list_checkpoints(job.id)
    assert checkpoints[-1].run_state == "canceled"
    with pytest.raises(Conflict):
        await env.service.update_status(SystemPrincipal(), job.id, {"status": "canceling"})


async def test_status_update_to_canceling_stops_a_running_job() -> None:
    env = make_env({"main@1.0.0": [Reply("slow", delay=30.0)]}, worker=True)
    async with env.service:
        job = await env.service.start_job(env.app, {"expertKey": "main@1.0.0", "query": "x"})
        await wait_for_status(env, job.id, "processing")
        canceling = await env.service.update_status(SystemPrincipal(), job.id, {"status": "canceling"})
        assert canceling.status is S.CANCELING
        await wait_for_status(env, job.id, "canceled", within=5.0)


async def test_concurrent_status_updates_never_let_an_illegal_transition_through() -> None:
    store = YieldingStore()
    env = make_env(store=store)
    system = SystemPrincipal()
    moves: list[tuple[S, S]] = []
    env.runtime.events.subscribe(
        lambda e: (
            moves.append((e.from_status, e.status)) if e.kind == "transition" and e.from_status else None
        )
    )
    wanted = [
        "processing",
        "failed",
        "queued",
        "canceling",
        "completed",
        "expired",
        "requestDelegateResult",
    ] * 6
    for round_ in range(4):
        job = await env.service.start_job(env.app, {"expertKey": "main@1.0.0", "query": f"x{round_}"})
        results = await asyncio.gather(
            *(env.service.update_status(system, job.id, {"status": s}) for s in wanted),
            return_exceptions=True,
        )
        assert all(isinstance(r, Conflict) or r.__class__.__name__ == "Job" for r in results), results
        # Every refusal is a real lifecycle refusal, decided on a fresh read (a lost race is retried).
        assert all("kept changing" not in r.reason for r in results if isinstance(r, Conflict)), results
        successes = [r for r in results if not isinstance(r, Exception)]
        assert successes and len(successes) < len(wanted)
        # The stored history is one legal chain: every checkpoint's status follows from the one before.
        checkpoints, _ = await env.runtime.store.list_checkpoints(job.id, take=1000)
        chain = [S.QUEUED] + [c.status for c in checkpoints]
        for before, after in itertools.pairwise(chain):
            assert (
                before == after or can_transition(before, after) or (before, after) == (S.QUEUED, S.CANCELED)
            )
        final = await env.runtime.get(job.id)
        assert final.version == len(checkpoints)
    assert store.stale_writes > 0  # the races really happened
    assert all(can_transition(a, b) for a, b in moves), moves


# ---------------------------------------------------------------------------------------- continue


async def test_continue_answers_an_interactive_pause_and_the_job_runs_on() -> None:
    env = make_env(PAUSE_SCRIPT, worker=True)
    async with env.service:
        job = await env.service.start_job(env.app, {"expertKey": "main@1.0.0", "query": "x"})
        await wait_for_status(env, job.id, "requestInteractiveToolResult")
        resumed = await env.service.continue_job(
            env.app, job.id, {"query": "yes", "interactiveToolCallResult": True, "maxSteps": 9}
        )
        assert resumed.status is S.QUEUED and resumed.max_steps == 9
        assert resumed.to_wire()["interactiveToolCallResult"] is True
        done = await wait_for_status(env, job.id, "completed")
        assert done.total_steps == 2
        with pytest.raises(BadRequest) as caught:
            await env.service.continue_job(
                env.app, job.id, {"query": "again", "interactiveToolCallResult": True}
            )
        assert caught.value.reason == "Current status is unable to continue"


async def test_continue_outcomes() -> None:
    env = make_env([Reply("one"), Reply("two")])
    job = await env.service.start_job(env.app, {"expertKey": "main@1.0.0", "query": "x"})
    with pytest.raises(BadRequest) as caught:  # queued: nothing to continue yet
        await env.service.continue_job(env.app, job.id, {"query": "more"})
    assert caught.value.body() == {
        "code": 400,
        "error": "Bad Request",
        "reason": "Current status is unable to continue",
    }
    await env.runtime.drive(job.id)
    with pytest.raises(BadRequest, match=r"^Query or files are required$"):
        await env.service.continue_job(env.app, job.id, {})
    with pytest.raises(ValidationFailed, match=r"body\.maxSteps"):
        await env.service.continue_job(env.app, job.id, {"query": "more", "maxSteps": 0})
    followed = await env.service.continue_job(env.app, job.id, {"query": "more"})
    assert followed.status is S.QUEUED and followed.interactive_tool_call_result is False
    assert (await env.runtime.drive(job.id)).status is S.COMPLETED


async def test_an_interactive_answer_without_a_pending_call_is_400_no_checkpoint_found() -> None:
    env = make_env()
    system = SystemPrincipal()
    job = await env.service.start_job(env.app, {"expertKey": "main@1.0.0", "query": "x"})
    # Moved by the system (not by a run), the pause has no checkpoint with a pending call to answer.
    await env.service.update_status(system, job.id, {"status": "processing"})
    await env.service.update_status(system, job.id, {"status": "requestInteractiveToolResult"})
    with pytest.raises(BadRequest) as caught:
        await env.service.continue_job(env.app, job.id, {"query": "yes", "interactiveToolCallResult": True})
    assert caught.value.body() == {"code": 400, "error": "Bad Request", "reason": "No checkpoint found"}


# ---------------------------------------------------------------------------------------- resume_from


async def test_resume_from_branches_a_new_job_from_a_pause_checkpoint() -> None:
    env = make_env(PAUSE_SCRIPT)
    job = await env.service.start_job(env.app, {"expertKey": "main@1.0.0", "query": "x"})
    paused = await env.runtime.drive(job.id)
    assert paused.status is S.REQUEST_INTERACTIVE_TOOL_RESULT
    page = await env.service.list_checkpoints(env.app, job.id)
    pause = next(c for c in page.checkpoints if c.run_state == "waitingInteractive")
    branch = await env.service.resume_from(
        env.app, job.id, {"checkpointId": pause.id, "query": "yes", "interactiveToolCallResult": True}
    )
    assert branch.id != job.id and branch.status is S.QUEUED and branch.application_id == APP_ID
    assert (await env.runtime.drive(branch.id)).status is S.COMPLETED
    assert (await env.runtime.get(job.id)).status is S.REQUEST_INTERACTIVE_TOOL_RESULT  # the source waits on
    # A plain branch (no answer) takes the checkpoint's status.
    plain = await env.service.resume_from(env.app, job.id, {"checkpointId": pause.id})
    assert plain.status is S.REQUEST_INTERACTIVE_TOOL_RESULT


async def test_resume_from_outcomes() -> None:
    env = make_env(PAUSE_SCRIPT)
    job = await env.service.start_job(env.app, {"expertKey": "main@1.0.0", "query": "x"})
    await env.runtime.drive(job.id)
    with pytest.raises(BadRequest) as caught:
        await env.service.resume_from(env.app, job.id, {"checkpointId": UNKNOWN_ID})
    assert caught.value.body() == {"code": 400, "error": "Bad Request", "reason": "No checkpoint found"}
    page = await env.service.list_checkpoints(env.app, job.id)
    pause = next(c for c in page.checkpoints if c.run_state == "waitingInteractive")
    before = (await env.runtime.store.list(_query(APP_ID)))[1]
    with pytest.raises(BadRequest, match=r"^Current status is unable to continue$"):
        await env.service.resume_from(env.app, job.id, {"checkpointId": pause.id, "query": "a follow-up"})
    assert (await env.runtime.store.list(_query(APP_ID)))[1] == before  # no dangling branch
    with pytest.raises(BadRequest, match="no pending tool call 'nope'"):
        await env.service.resume_from(
            env.app,
            job.id,
            {"checkpointId": pause.id, "query": "y", "interactiveToolCallResult": True, "toolCallId": "nope"},
        )
    assert (await env.runtime.store.list(_query(APP_ID)))[1] == before
    with pytest.raises(ValidationFailed, match=r"body\.checkpointId"):
        await env.service.resume_from(env.app, job.id, {"checkpointId": "x"})


# ---------------------------------------------------------------------------------------- cancel


async def test_cancel_outcomes() -> None:
    env = make_env()
    job = await env.service.start_job(env.app, {"expertKey": "main@1.0.0", "query": "x"})
    assert (await env.service.cancel(env.app, job.id)).status is S.CANCELED
    with pytest.raises(Conflict) as caught:
        await env.service.cancel(env.app, job.id)
    assert "cancel" in caught.value.reason and "canceled" in caught.value.reason
    other = await env.service.start_job(env.app, {"expertKey": "main@1.0.0", "query": "x"})
    assert (await env.service.cancel(SystemPrincipal(), other.id)).status is S.CANCELED


# ---------------------------------------------------------------------------------------- checkpoints


async def test_checkpoints_page_and_one_checkpoint() -> None:
    script = {
        "main@1.0.0": [
            ToolCalls.of(("add", {"a": 1, "b": 2})),
            ToolCalls.of(("add", {"a": 3, "b": 4})),
            Reply("7"),
        ]
    }
    env = make_env(script)
    job = await env.service.start_job(env.app, {"expertKey": "main@1.0.0", "query": "x"})
    await env.runtime.drive(job.id)
    every = await env.service.list_checkpoints(env.app, job.id)
    assert every.total == len(every.checkpoints) >= 3
    assert [c.seq for c in every.checkpoints] == sorted(c.seq for c in every.checkpoints)
    page = await env.service.list_checkpoints(env.app, job.id, {"take": "2", "skip": "1"})
    assert [c.id for c in page.checkpoints] == [c.id for c in every.checkpoints[1:3]]
    assert page.to_wire()["meta"] == {"total": every.total, "take": 2, "skip": 1}
    last = every.checkpoints[-1]
    assert (await env.service.get_checkpoint(env.app, job.id, last.id)) == last
    with pytest.raises(NotFound, match=f"^Checkpoint not found: {UNKNOWN_ID}$"):
        await env.service.get_checkpoint(env.app, job.id, UNKNOWN_ID)
    with pytest.raises(ValidationFailed, match=r"^path\.checkpointId: "):
        await env.service.get_checkpoint(env.app, job.id, "nope")
    with pytest.raises(ValidationFailed, match=r"^query\.take: "):
        await env.service.list_checkpoints(env.app, job.id, {"take": 0})


async def test_stream_delivers_the_checkpoints_of_a_running_job_as_they_are_written() -> None:
    script = {
        "main@1.0.0": [
            ToolCalls.of(("add", {"a": 1, "b": 2}), delay=0.1),
            ToolCalls.of(("add", {"a": 3, "b": 4}), delay=0.1),
            Reply("7", delay=0.1),
        ]
    }
    env = make_env(script, worker=True)
    async with env.service:
        job = await env.service.start_job(env.app, {"expertKey": "main@1.0.0", "query": "x"})
        stream = env.service.stream_checkpoints(env.app, job.id)
        seen = []
        async for checkpoint in stream:
            seen.append(checkpoint)
            if len(seen) == 1:
                # Still running while the first one arrives: the stream follows the job live.
                assert (await env.runtime.get(job.id)).status is not S.COMPLETED
        stored = (await env.service.list_checkpoints(env.app, job.id)).checkpoints
        assert [c.id for c in seen] == [c.id for c in stored]
        assert seen[-1].run_state == "completed"
        # Resuming after a seq gives only the later ones, and a resting job's stream ends at once.
        rest = [c.seq async for c in env.service.stream_checkpoints(env.app, job.id, after_seq=seen[1].seq)]
        assert rest == [c.seq for c in seen[2:]]


async def test_stream_of_a_paused_job_ends_and_heartbeats_while_waiting() -> None:
    env = make_env({"main@1.0.0": [Reply("slow", delay=0.3)]}, worker=True, stream_poll_interval=0.05)
    async with env.service:
        job = await env.service.start_job(env.app, {"expertKey": "main@1.0.0", "query": "x"})
        items = [item async for item in await env.service.watch_checkpoints(env.app, job.id, heartbeat=0.05)]
        assert None in items  # keep-alive ticks while the slow step runs
        assert [i.run_state for i in items if i is not None][-1] == "completed"


# ---------------------------------------------------------------------------------------- construction


async def test_build_service_builds_runtime_keyring_and_worker() -> None:
    from expert_jobs import MemoryStore
    from expert_jobs.config import build_service, parse_config

    key = "ejk_test_key"
    config = parse_config(
        {
            "provider": {"providerName": "scripted", "script": [{"text": "configured"}]},
            "worker": {"pollInterval": 0.02},
            "applications": {APP_ID: {"organizationId": ORG_ID, "keyHashes": [hash_key(key)]}},
            "experts": {"hello": {"instruction": "Say hello."}},
        }
    )
    service = build_service(config, store=MemoryStore())
    assert service.worker is not None
    async with service:
        principal = service.authenticate(f"Bearer {key}")
        assert isinstance(principal, Application)
        job = await service.start_job(principal, {"expertKey": "hello@1.0.0", "query": "hi"})
        for _ in range(500):
            if (await service.get(principal, job.id)).status is S.COMPLETED:
                break
            await asyncio.sleep(0.01)
        assert (await service.get(principal, job.id)).status is S.COMPLETED
    assert not service.worker._tasks or all(t.done() for t in service.worker._tasks)


async def test_without_keyring_nobody_authenticates() -> None:
    from expert_jobs import Runtime, ScriptedProvider

    service = ExpertJobsService(Runtime(providers=ScriptedProvider([Reply("x")])))
    with pytest.raises(Unauthorized):
        service.authenticate("Bearer anything")
    await service.close()


async def test_stream_checkpoints_checks_the_job_when_iteration_starts() -> None:
    env = make_env()
    job = await env.service.start_job(env.app, {"expertKey": "main@1.0.0", "query": "x"})
    with pytest.raises(NotFound):
        async for _ in env.service.stream_checkpoints(env.other, job.id):
            pass
    with pytest.raises(ValidationFailed):
        async for _ in env.service.stream_checkpoints(env.app, "nope"):
            pass
