"""The dashboard's routes in-process: sign-in, tenancy, CSRF, escaping, actions through the
service with the API's errors shown inline, the live streams and the lifecycle drawing."""

from __future__ import annotations

import re

import httpx

from expert_jobs.domain.lifecycle import TRANSITIONS
from expert_jobs.domain.status import JobStatus
from expert_jobs.transports.web import lifecycle_svg
from tests.web.conftest import APP_A, HOSTILE, Env, csrf_of

S = JobStatus


# ---------------------------------------------------------------------------------------- sign-in


async def test_sign_in_keeps_the_key_in_an_httponly_strict_cookie_never_in_a_url(env: Env) -> None:
    async with env.client() as client:
        answer = await client.post("/ui/login", data={"key": env.keys["a"]})
        assert answer.status_code == 303
        assert answer.headers["location"] == "/ui/"
        assert env.keys["a"] not in answer.headers["location"]
        cookie = answer.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/ui/" in cookie
        page = await client.get("/ui/")
        assert page.status_code == 200
        assert f"application {APP_A} (alpha)" in page.text
        assert env.keys["a"] not in page.text  # the key is never written into a page


async def test_a_wrong_key_is_refused_inline_with_the_apis_error(env: Env) -> None:
    async with env.client() as client:
        answer = await client.post("/ui/login", data={"key": "ejk_not-a-key"})
        assert answer.status_code == 401
        assert "<strong>401 Unauthorized</strong>: Failed to authenticate" in answer.text
        assert "set-cookie" not in answer.headers


async def test_pages_need_a_session(env: Env) -> None:
    async with env.client() as client:
        page = await client.get("/ui/")
        assert (page.status_code, page.headers["location"]) == (303, "/ui/login")
        fragment = await client.get("/ui/jobs/rows", headers={"HX-Request": "true"})
        assert (fragment.status_code, fragment.headers["hx-redirect"]) == (401, "/ui/login")
        client.cookies.set("ej_dashboard", "nonce.ejk_forged", domain="testserver", path="/ui/")
        assert (await client.get("/ui/")).status_code == 303


async def test_an_unknown_dashboard_page_is_a_404_page(env: Env) -> None:
    browser = await env.signed_in("a")
    answer = await browser.client.get("/ui/nowhere")
    assert answer.status_code == 404 and "Page not found: /ui/nowhere" in answer.text
    assert (await browser.client.get("/ui")).headers["location"].endswith("/ui/")


async def test_sign_out_drops_the_cookie(env: Env) -> None:
    browser = await env.signed_in("a")
    answer = await browser.post("/ui/logout", {})
    assert answer.status_code == 303 and 'ej_dashboard=""' in answer.headers["set-cookie"]
    assert (await browser.client.get("/ui/")).status_code == 303


# ---------------------------------------------------------------------------------------- tenancy


async def test_an_application_sees_only_its_own_jobs(env: Env) -> None:
    a, b = await env.signed_in("a"), await env.signed_in("b")
    job_id = await a.start("writer@1.0.0", "for alpha only")
    await env.run(job_id)
    assert job_id in (await a.client.get("/ui/")).text
    listing = await b.client.get("/ui/")
    assert job_id not in listing.text and 'data-testid="no-jobs"' in listing.text
    page = await b.client.get(f"/ui/jobs/{job_id}")
    assert page.status_code == 404
    assert f"<strong>404 Not Found</strong>: Expert job not found: {job_id}" in page.text
    assert "for alpha only" not in page.text
    for path in (f"/ui/jobs/{job_id}/live", f"/ui/jobs/{job_id}/stream"):
        assert (await b.client.get(path)).status_code == 404
    # nor can it act on it: the same 404, and the job is unchanged
    answered = await b.post(f"/ui/jobs/{job_id}/follow-up", {"query": "mine now"})
    assert answered.status_code == 404
    assert (await env.service.runtime.get(job_id)).status is S.COMPLETED


async def test_the_system_key_sees_every_application_and_may_cancel_but_not_start(env: Env) -> None:
    a, b = await env.signed_in("a"), await env.signed_in("b")
    first, second = await a.start("asker@1.0.0", "alpha's"), await b.start("asker@1.0.0", "beta's")
    system = await env.signed_in("system")
    listing = (await system.client.get("/ui/")).text
    assert first in listing and second in listing
    assert 'action="/ui/jobs"' not in listing  # no start form for the system key
    page = await system.client.get(f"/ui/jobs/{first}")
    assert page.status_code == 200 and "alpha&#39;s" in page.text
    only_b = (await system.client.get("/ui/jobs/rows", params={"app": "applicationbbbbbbbbbbbbb"})).text
    assert second in only_b and first not in only_b
    refused = await system.post("/ui/jobs", {"expertKey": "asker@1.0.0", "query": "x"})
    assert refused.status_code == 401 and "Failed to authenticate" in refused.text
    canceled = await system.post(f"/ui/jobs/{first}/cancel", {})
    assert canceled.status_code == 303
    assert (await env.service.runtime.get(first)).status is S.CANCELED


# ---------------------------------------------------------------------------------------- CSRF


async def test_state_changes_need_the_sessions_token_and_the_same_origin(env: Env) -> None:
    a = await env.signed_in("a")
    job_id = await a.start("asker@1.0.0", "keep me")
    path = f"/ui/jobs/{job_id}/cancel"
    attempts: list[tuple[dict[str, str], dict[str, str]]] = [
        ({}, {}),  # no token
        ({"csrf": "0" * 64}, {}),  # a wrong token
        ({"csrf": a.csrf}, {"origin": "https://evil.example"}),  # another origin
        ({"csrf": a.csrf}, {"sec-fetch-site": "cross-site"}),
        ({"csrf": a.csrf}, {"origin": "null"}),
    ]
    for data, headers in attempts:
        answer = await a.client.post(path, data=data, headers=headers)
        assert answer.status_code == 403, (data, headers)
        assert "403 Forbidden" in answer.text
        assert (await env.service.runtime.get(job_id)).status is S.QUEUED
    # another session's token does not do either
    b = await env.signed_in("b")
    assert (await a.client.post(path, data={"csrf": b.csrf})).status_code == 403
    ok = await a.client.post(path, data={"csrf": a.csrf}, headers={"origin": "http://testserver"})
    assert ok.status_code == 303
    assert (await env.service.runtime.get(job_id)).status is S.CANCELED


async def test_each_sign_in_gets_its_own_token(env: Env) -> None:
    first, second = await env.signed_in("a"), await env.signed_in("a")
    assert first.csrf != second.csrf
    assert (await first.client.post("/ui/logout", data={"csrf": second.csrf})).status_code == 403


async def test_a_cross_site_sign_in_is_refused(env: Env) -> None:
    async with env.client() as client:
        answer = await client.post(
            "/ui/login", data={"key": env.keys["a"]}, headers={"origin": "https://evil.example"}
        )
        assert answer.status_code == 403 and "set-cookie" not in answer.headers


# ---------------------------------------------------------------------------------------- escaping


async def test_hostile_job_content_is_rendered_inert(env: Env) -> None:
    a = await env.signed_in("a")
    job_id = await a.start("writer@1.0.0", f"Query {HOSTILE}")
    await env.run(job_id)
    for path in ("/ui/", f"/ui/jobs/{job_id}", f"/ui/jobs/{job_id}/live", "/ui/jobs/rows"):
        html = (await a.client.get(path)).text
        assert "<script>alert" not in html and "<img src=x" not in html, path
        assert "&lt;script&gt;alert(&#39;pwned&#39;)&lt;/script&gt;" in html, path
    page = await a.client.get(f"/ui/jobs/{job_id}")
    assert "&lt;img src=x onerror=alert(2)&gt;" in page.text  # the answer, escaped
    assert "script-src 'self'" in page.headers["content-security-policy"]
    # the only scripts are the package's own files
    assert re.findall(r"<script[^>]*>", page.text) == [
        '<script src="/ui/static/htmx.min.js" defer>',
        '<script src="/ui/static/dashboard.js" defer>',
    ]


# ---------------------------------------------------------------------------------------- actions


async def test_answer_a_pause_then_see_it_complete_with_its_timeline(env: Env) -> None:
    a = await env.signed_in("a")
    job_id = await a.start("asker@1.0.0", "Ask me")
    paused = await env.run(job_id)
    assert paused.status is S.REQUEST_INTERACTIVE_TOOL_RESULT
    page = (await a.client.get(f"/ui/jobs/{job_id}")).text
    assert 'data-testid="question">Publish?<' in page
    call_id = re.search(r'name="toolCallId" value="([^"]+)"', page)
    assert call_id is not None
    answered = await a.post(f"/ui/jobs/{job_id}/answer", {"query": "yes", "toolCallId": call_id.group(1)})
    assert answered.status_code == 303
    assert (await env.run(job_id)).status is S.COMPLETED
    done = (await a.client.get(f"/ui/jobs/{job_id}")).text
    assert 'data-testid="final-answer"' in done and "Done: published." in done
    assert 'data-kind="pause"' in done and 'data-kind="resume"' in done
    assert 'the result of <span class="mono">ask</span>: “yes”' in done


async def test_an_action_the_service_refuses_shows_the_apis_error_inline(env: Env) -> None:
    a = await env.signed_in("a")
    job_id = await a.start("writer@1.0.0", "hi")
    await env.run(job_id)
    answer = await a.post(f"/ui/jobs/{job_id}/answer", {"query": "yes"})
    assert answer.status_code == 400
    assert "<strong>400 Bad Request</strong>: Current status is unable to continue" in answer.text
    canceled = await a.post(f"/ui/jobs/{job_id}/cancel", {})
    assert canceled.status_code == 409 and "409 Conflict" in canceled.text
    unknown = await a.post("/ui/jobs", {"expertKey": "nobody@1.0.0", "query": "x"})
    assert unknown.status_code == 404
    assert "<strong>404 Not Found</strong>: Expert not found: nobody@1.0.0" in unknown.text
    empty = await a.post("/ui/jobs", {"expertKey": "writer@1.0.0", "query": ""})
    assert empty.status_code == 400 and "Query or files are required" in empty.text
    bad_steps = await a.post("/ui/jobs", {"expertKey": "writer@1.0.0", "query": "x", "maxSteps": "lots"})
    assert bad_steps.status_code == 422 and "body.maxSteps" in bad_steps.text


async def test_follow_up_and_branch_go_through_the_service(env: Env) -> None:
    a = await env.signed_in("a")
    job_id = await a.start("asker@1.0.0", "Ask me")
    await env.run(job_id)
    checkpoints, _ = await env.service.runtime.store.list_checkpoints(job_id)
    pause = checkpoints[-1]
    branched = await a.post(
        f"/ui/jobs/{job_id}/branch", {"checkpointId": pause.id, "query": "no", "interactive": "on"}
    )
    assert branched.status_code == 303
    new_id = branched.headers["location"].rsplit("/", 1)[-1]
    assert new_id != job_id
    assert (await env.run(new_id)).status is S.COMPLETED
    followed = await a.post(f"/ui/jobs/{new_id}/follow-up", {"query": "and then?"})
    assert followed.status_code == 303
    assert (await env.service.runtime.get(new_id)).status is S.QUEUED


# ---------------------------------------------------------------------------------------- the list


async def test_filters_by_status_expert_and_text(env: Env) -> None:
    a = await env.signed_in("a")
    done = await a.start("writer@1.0.0", "the writer's job")
    await env.run(done)
    waiting = await a.start("asker@1.0.0", "the asker's job")

    async def rows(**params: str) -> str:
        return (await a.client.get("/ui/jobs/rows", params=params)).text

    assert done in await rows(status="completed") and waiting not in await rows(status="completed")
    assert waiting in await rows(expert="asker@1.0.0") and done not in await rows(expert="asker@1.0.0")
    assert done in await rows(q="WRITER'S") and waiting not in await rows(q="writer's")
    bad = await a.client.get("/ui/jobs/rows", params={"status": "bogus"})
    assert bad.status_code == 422 and "query.status" in bad.text


async def test_the_list_pages(env: Env) -> None:
    from expert_jobs.transports.web import DashboardSettings, create_dashboard

    small = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_dashboard(env.service, DashboardSettings(page_size=2))),
        base_url="http://testserver",
    )
    async with small:
        await small.post("/login", data={"key": env.keys["a"]})
        token = csrf_of((await small.get("/")).text)
        ids = []
        for n in range(3):
            answer = await small.post(
                "/jobs", data={"csrf": token, "expertKey": "writer@1.0.0", "query": f"n{n}"}
            )
            ids.append(answer.headers["location"].rsplit("/", 1)[-1])
        first = (await small.get("/jobs/rows")).text
        second = (await small.get("/jobs/rows", params={"page": "2"})).text
    assert "page 1 of 2" in first and ids[2] in first and ids[0] not in first
    assert ids[0] in second and ids[2] not in second


# ---------------------------------------------------------------------------------------- live


async def test_a_resting_jobs_stream_sends_its_new_checkpoints_then_ends(env: Env) -> None:
    a = await env.signed_in("a")
    job_id = await a.start("asker@1.0.0", "Ask me")
    await env.run(job_id)
    answer = await a.client.get(f"/ui/jobs/{job_id}/stream", params={"after": "0"})
    assert answer.headers["content-type"].startswith("text/event-stream")
    assert "event: checkpoint" in answer.text and answer.text.rstrip().endswith("data: {}")
    assert "event: end" in answer.text
    later = await a.client.get(f"/ui/jobs/{job_id}/stream", params={"after": "99"})
    assert "event: checkpoint" not in later.text and "event: end" in later.text
    # a page rendered before the job last moved is told to refresh at once
    version = (await env.service.runtime.get(job_id)).version
    stale = await a.client.get(f"/ui/jobs/{job_id}/stream", params={"after": "99", "version": "0"})
    assert stale.text.index("event: changed") < stale.text.index("event: end")
    current = await a.client.get(f"/ui/jobs/{job_id}/stream", params={"after": "99", "version": str(version)})
    assert "event: changed" not in current.text


# ---------------------------------------------------------------------------------------- lifecycle


def test_the_lifecycle_drawing_has_every_status_and_every_edge_of_the_machine() -> None:
    svg = lifecycle_svg(S.REQUEST_INTERACTIVE_TOOL_RESULT, [S.QUEUED, S.PROCESSING])
    for status in S:
        assert f'data-status="{status.value}"' in svg
    drawn = set(re.findall(r'data-trigger="(\w+)" data-from="(\w+)" data-to="(\w+)"', svg))
    expected = {(t, src.value, dst.value) for t, sources, dst in TRANSITIONS for src in sources}
    assert drawn == expected
    assert 'class="lc-node lc-current" data-status="requestInteractiveToolResult"' in svg
    assert 'class="lc-node lc-visited" data-status="queued"' in svg
    # the moves out of the current status are the highlighted ones, labelled
    highlighted = set(
        re.findall(
            r'class="lc-edge lc-next" d="[^"]+" marker-end="url\(#lc-arrow-next\)" data-trigger="(\w+)"', svg
        )
    )
    assert highlighted == {"resume", "cancel", "expire"}


async def test_a_busy_engine_does_not_make_the_jobs_page_read_the_store_at_every_event(env: Env) -> None:
    import asyncio

    from expert_jobs.domain.events import JobEvent
    from expert_jobs.transports.web import DashboardSettings, create_dashboard

    settings = DashboardSettings(poll_interval=60.0, min_look_interval=0.25, stream_seconds=1.0)
    app = create_dashboard(env.service, settings)
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")
    assert (await client.post("/login", data={"key": env.keys["a"]})).status_code == 303
    looks = 0
    browse = env.service.browse

    async def counted(*args: object, **kwargs: object) -> object:
        nonlocal looks
        looks += 1
        return await browse(*args, **kwargs)  # type: ignore[arg-type]

    env.service.browse = counted  # type: ignore[method-assign]
    event = JobEvent("transition", "x" * 24, None, "asker@1.0.0", 1, 0.0, S.PROCESSING)

    async def busy_engine() -> None:
        for _ in range(400):  # 400 events in about a second
            env.service.runtime.events.publish(event)
            await asyncio.sleep(0.0025)

    engine = asyncio.create_task(busy_engine())
    answer = await client.get("/events")
    await engine
    await client.aclose()
    assert answer.headers["content-type"].startswith("text/event-stream")
    # One look to start, then at most one per 0.25 s over the stream's second, not one per event.
    assert 2 <= looks <= 7, looks
