"""The dashboard's routes: a Starlette app of server-rendered pages over :class:`ExpertJobsService`.

Every read and every action is one call of the service, with the signed-in key's principal: the
same tenancy, the same rules and the same errors as the API (shown inline, with their status).
Pages work without JavaScript (forms post, the server redirects); with it, htmx refreshes the job
list and a job's page when the server-sent events say something changed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

import jinja2
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from expert_jobs.api.dispatch import DEFAULT_MAX_BODY_BYTES, PayloadTooLarge, sse_event
from expert_jobs.domain.checkpoint import Checkpoint
from expert_jobs.domain.deltas import TextDelta
from expert_jobs.domain.errors import ServiceError, ValidationFailed
from expert_jobs.domain.events import JobEvent
from expert_jobs.domain.job import Job
from expert_jobs.domain.lifecycle import can_trigger
from expert_jobs.domain.status import JobStatus
from expert_jobs.engine.events import RESTING_STATUSES
from expert_jobs.service.applications import Application, SystemPrincipal
from expert_jobs.service.service import ExpertJobsService
from expert_jobs.transports.web import _views
from expert_jobs.transports.web._auth import (
    COOKIE,
    CsrfRefused,
    Session,
    check_csrf,
    cookie_value,
    read_session,
    same_origin,
)
from expert_jobs.transports.web._diagram import lifecycle_svg

__all__ = ["DashboardSettings", "create_dashboard"]

_HERE = Path(__file__).parent
_COST_CACHE = 2_000
_SECURITY_HEADERS = {
    "content-security-policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "same-origin",
    "cache-control": "no-store",
}


class DashboardSettings:
    """How the dashboard pages and polls.

    ``page_size``: jobs per page. ``poll_interval``: seconds between two looks at the store while
    a page is open (the engine's events wake it sooner when the worker runs in this process).
    ``min_look_interval``: the least seconds between two looks however many events arrive (a
    busy engine wakes every open jobs page at each step).
    ``max_checkpoints``: the most checkpoints a job's timeline shows (its latest ones).
    ``search_depth``: how many of the newest jobs a text search looks through.
    ``stream_seconds``: how long one live-update connection lasts before the browser opens another.
    ``max_form_bytes``: the largest form a ``POST`` may send (413 past it).
    """

    def __init__(
        self,
        *,
        page_size: int = 25,
        poll_interval: float = 1.0,
        min_look_interval: float = 0.25,
        max_checkpoints: int = 500,
        search_depth: int = 1_000,
        stream_seconds: float = 600.0,
        max_form_bytes: int = DEFAULT_MAX_BODY_BYTES,
    ) -> None:
        if not 1 <= page_size <= 100:
            raise ValueError(f"page_size must be 1..100, got {page_size}")
        if poll_interval <= 0 or stream_seconds <= 0 or min_look_interval < 0:
            raise ValueError("poll_interval and stream_seconds must be positive, min_look_interval >= 0")
        self.page_size = page_size
        self.poll_interval = poll_interval
        self.min_look_interval = min_look_interval
        self.max_checkpoints = max(100, max_checkpoints)
        self.search_depth = max(100, search_depth)
        self.stream_seconds = stream_seconds
        self.max_form_bytes = max_form_bytes


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(_HERE / "templates")),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["duration"] = _views.format_duration
    env.filters["when"] = _views.format_time
    env.filters["tokens"] = lambda n: f"{n:,}"
    env.globals["tone"] = lambda status: _views.STATUS_TONES[JobStatus(status)]
    return env


def _example_query(expert_key: str) -> str:
    """The query the start form suggests: the bundled example's for its expert."""
    from expert_jobs.examples import EXAMPLE_EXPERT, EXAMPLE_QUERY

    return EXAMPLE_QUERY if expert_key == EXAMPLE_EXPERT else ""


def create_dashboard(service: ExpertJobsService, settings: DashboardSettings | None = None) -> Starlette:
    """The dashboard as an ASGI app, to mount at ``/ui`` next to the API (``create_app`` does)."""
    conf = settings or DashboardSettings()
    env = _environment()

    # -------------------------------------------------------------- rendering helpers

    def base(request: Request) -> str:
        return str(request.scope.get("root_path", "")).rstrip("/")

    def page(request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
        session: Session | None = context.pop("session", None)
        html = env.get_template(template).render(
            base=base(request),
            session=session,
            principal_label=_principal_label(session),
            is_system=session is not None and isinstance(session.principal, SystemPrincipal),
            **context,
        )
        return HTMLResponse(html, status_code=status, headers=_SECURITY_HEADERS)

    def to_login(request: Request) -> Response:
        if request.headers.get("hx-request"):
            return Response(status_code=401, headers={"hx-redirect": f"{base(request)}/login"})
        return RedirectResponse(f"{base(request)}/login", status_code=303)

    async def form(request: Request) -> dict[str, str]:
        """The urlencoded form of a POST, read up to its bound (413 past it)."""
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > conf.max_form_bytes:
                raise PayloadTooLarge(f"body: larger than the limit of {conf.max_form_bytes} bytes")
            chunks.append(chunk)
        try:
            text = b"".join(chunks).decode("utf-8")
        except UnicodeDecodeError:
            raise ValidationFailed("body: not valid UTF-8") from None
        return dict(parse_qsl(text, keep_blank_values=True, max_num_fields=50))

    def signed_in(
        handler: Callable[[Request, Session], Awaitable[Response]],
    ) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            session = read_session(request, service)
            if session is None:
                return to_login(request)
            return await handler(request, session)

        return endpoint

    def action(
        handler: Callable[[Request, Session, dict[str, str]], Awaitable[Response]],
    ) -> Callable[[Request], Awaitable[Response]]:
        """A state-changing POST: signed in, same origin, the CSRF token, then the handler."""

        async def endpoint(request: Request) -> Response:
            session = read_session(request, service)
            if session is None:
                return to_login(request)
            try:
                fields = await form(request)
                check_csrf(request, session, fields.get("csrf"))
            except (CsrfRefused, PayloadTooLarge, ValidationFailed) as exc:
                return page(request, "error.html", exc.code, session=session, error=exc.body())
            return await handler(request, session, fields)

        return endpoint

    # -------------------------------------------------------------- sign-in

    async def login_page(request: Request) -> Response:
        if read_session(request, service) is not None:
            return RedirectResponse(f"{base(request)}/", status_code=303)
        return page(request, "login.html")

    async def login(request: Request) -> Response:
        try:
            fields = await form(request)
        except ServiceError as exc:
            return page(request, "login.html", exc.code, error=exc.body())
        if not same_origin(request):  # no token yet: a cross-site sign-in is refused on the origin
            refused = CsrfRefused("cross-origin sign-in refused")
            return page(request, "login.html", refused.code, error=refused.body())
        key = fields.get("key", "").strip()
        try:
            service.authenticate(f"Bearer {key}")
        except ServiceError as exc:
            return page(request, "login.html", exc.code, error=exc.body())
        response = RedirectResponse(f"{base(request)}/", status_code=303)
        response.set_cookie(
            COOKIE,
            cookie_value(key),
            path=f"{base(request)}/" if base(request) else "/",
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
        )
        return response

    async def logout(request: Request, session: Session, fields: dict[str, str]) -> Response:
        response = RedirectResponse(f"{base(request)}/login", status_code=303)
        response.delete_cookie(COOKIE, path=f"{base(request)}/" if base(request) else "/")
        return response

    # -------------------------------------------------------------- the jobs list

    costs: OrderedDict[tuple[str, int], str] = OrderedDict()  # (job id, version) -> label

    async def cost_label(session: Session, job: Job) -> str:
        """The job's cost, priced like on its page (each step at its model's rates), computed once
        per version of the job (a bounded cache: the live list re-renders often)."""
        key = (job.id, job.version)
        label = costs.get(key)
        if label is None:
            try:
                _, _, checkpoints, total = await load_checkpoints(session, job.id)
                label = _views.job_cost_label(job, checkpoints, len(checkpoints) == total)
            except ServiceError:
                label = "—"
            costs[key] = label
            while len(costs) > _COST_CACHE:
                costs.popitem(last=False)
        return label

    def experts() -> list[str]:
        return sorted(expert.key for expert in service.runtime.experts)

    async def list_view(session: Session, params: Mapping[str, str]) -> dict[str, Any]:
        """The jobs table's context for the query ``params`` (status, expert, q, page, app)."""
        status_value = params.get("status", "")
        statuses: frozenset[JobStatus] | None = None
        if status_value:
            try:
                statuses = frozenset({JobStatus(status_value)})
            except ValueError:
                raise ValidationFailed(f"query.status: not a job status: {status_value!r}") from None
        expert = params.get("expert", "").strip()
        text = params.get("q", "").strip()
        application = params.get("app", "").strip() or None
        number = params.get("page", "1")
        page_number = int(number) if number.isdigit() and 0 < len(number) <= 6 and int(number) > 0 else 1
        take, skip = conf.page_size, (page_number - 1) * conf.page_size
        principal = session.principal
        note = ""
        if text:
            needle = text.casefold()
            matched: list[Job] = []
            scanned = 0
            while scanned < conf.search_depth:
                chunk = await service.browse(
                    principal,
                    statuses=statuses,
                    expert=expert,
                    application_id=application,
                    take=100,
                    skip=scanned,
                )
                matched.extend(j for j in chunk.jobs if _matches(j, needle))
                scanned += len(chunk.jobs)
                if len(chunk.jobs) < 100:
                    break
            else:
                note = f"Searched the {conf.search_depth:,} newest jobs; narrow the filters to look further."
            jobs, total = matched[skip : skip + take], len(matched)
        else:
            found = await service.browse(
                principal, statuses=statuses, expert=expert, application_id=application, take=take, skip=skip
            )
            jobs, total = found.jobs, found.total
        pages = max(1, -(-total // take))
        kept = {k: v for k, v in params.items() if k in ("status", "expert", "q", "app") and v}
        return {
            "jobs": [_row(job, await cost_label(session, job)) for job in jobs],
            "total": total,
            "page_number": page_number,
            "pages": pages,
            "prev_query": urlencode({**kept, "page": page_number - 1}) if page_number > 1 else None,
            "next_query": urlencode({**kept, "page": page_number + 1}) if page_number < pages else None,
            "current_query": urlencode({**kept, "page": page_number}),
            "filters": {"status": status_value, "expert": expert, "q": text, "app": application or ""},
            "note": note,
        }

    def start_defaults(session: Session, given: Mapping[str, str] | None = None) -> dict[str, Any]:
        keys = experts()
        from expert_jobs.examples import EXAMPLE_EXPERT

        chosen = (given or {}).get("expertKey") or (EXAMPLE_EXPERT if EXAMPLE_EXPERT in keys else "")
        if not chosen and keys:
            chosen = keys[0]
        return {
            "experts": keys,
            "models": sorted(service.runtime.models),
            "default_model": service.runtime.settings.default_model,
            "start": {
                "expertKey": chosen,
                "query": (given or {}).get("query", _example_query(chosen)),
                "model": (given or {}).get("model", ""),
                "maxSteps": (given or {}).get("maxSteps", ""),
            },
            "can_start": isinstance(session.principal, Application),
            "applications": sorted(service.keyring.applications)
            if isinstance(session.principal, SystemPrincipal)
            else [],
        }

    async def jobs_page(request: Request, session: Session) -> Response:
        params = dict(request.query_params)
        context: dict[str, Any] = {"statuses": [s.value for s in JobStatus], "error": None}
        try:
            context.update(await list_view(session, params))
            status = 200
        except ServiceError as exc:
            context.update(
                jobs=[],
                total=0,
                page_number=1,
                pages=1,
                prev_query=None,
                next_query=None,
                note="",
                current_query="",
                filters={"status": "", "expert": "", "q": "", "app": ""},
                error=exc.body(),
            )
            status = exc.code
        return page(request, "jobs.html", status, session=session, **context, **start_defaults(session))

    async def rows(request: Request, session: Session) -> Response:
        try:
            context = await list_view(session, dict(request.query_params))
        except ServiceError as exc:
            return page(request, "_error.html", exc.code, session=session, error=exc.body())
        return page(request, "_rows.html", session=session, **context)

    async def list_events(request: Request, session: Session) -> Response:
        """Server-sent events for the jobs page: ``changed`` whenever the newest jobs the principal
        sees change (a new job, a status, a step), found by looking again after engine events and
        every ``poll_interval``; at most every ``min_look_interval`` however busy the engine (each
        look is a store read, per open page)."""
        wake: asyncio.Queue[None] = asyncio.Queue(maxsize=1)

        def on_event(event: JobEvent) -> None:
            if event.kind in ("transition", "checkpoint") and wake.empty():
                wake.put_nowait(None)

        async def fingerprint() -> tuple[Any, ...]:
            found = await service.browse(session.principal, take=50)
            return (found.total, *((job.id, job.version) for job in found.jobs))

        async def events() -> AsyncIterator[str]:
            unsubscribe = service.runtime.events.subscribe(on_event)
            try:
                seen = await fingerprint()
                loop = asyncio.get_running_loop()
                ends = loop.time() + conf.stream_seconds
                quiet = 0.0
                yield "retry: 2000\n\n"
                looked = loop.time()
                while loop.time() < ends:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(wake.get(), timeout=conf.poll_interval)
                    rest = looked + conf.min_look_interval - loop.time()
                    if rest > 0:
                        await asyncio.sleep(rest)
                    looked = loop.time()
                    now = await fingerprint()
                    if now != seen:
                        seen, quiet = now, 0.0
                        yield sse_event({}, event="changed")
                    else:
                        quiet += conf.poll_interval
                        if quiet >= 15:
                            quiet = 0.0
                            yield ": keep-alive\n\n"
            finally:
                unsubscribe()

        return _sse(events())

    async def start(request: Request, session: Session, fields: dict[str, str]) -> Response:
        body: dict[str, Any] = {
            "expertKey": fields.get("expertKey", ""),
            "query": fields.get("query") or None,
        }
        if fields.get("model"):
            body["model"] = fields["model"]
        if fields.get("maxSteps", "").strip():
            raw = fields["maxSteps"].strip()
            body["maxSteps"] = int(raw) if raw.isdigit() and len(raw) < 10 else raw
        try:
            job = await service.start_job(session.principal, body)
        except ServiceError as exc:
            context: dict[str, Any] = {"statuses": [s.value for s in JobStatus], "error": None}
            context.update(await list_view(session, {}))
            context.update(start_defaults(session, fields))
            return page(request, "jobs.html", exc.code, session=session, start_error=exc.body(), **context)
        return RedirectResponse(f"{base(request)}/jobs/{job.id}", status_code=303)

    # -------------------------------------------------------------- one job

    async def load(session: Session, job_id: str) -> tuple[Application, Job, list[Checkpoint], int]:
        """The job as its viewer reads it, and its latest checkpoints (at most ``max_checkpoints``)."""
        return await load_checkpoints(session, job_id)

    async def load_checkpoints(
        session: Session, job_id: str
    ) -> tuple[Application, Job, list[Checkpoint], int]:
        viewer = await service.viewer(session.principal, job_id)
        job = await service.get(viewer, job_id)
        first = await service.list_checkpoints(viewer, job_id, {"take": 100, "skip": 0})
        total = first.total
        checkpoints = list(first.checkpoints)
        if total > len(checkpoints):
            skip = max(len(checkpoints), total - conf.max_checkpoints)
            if skip > len(checkpoints):
                checkpoints = []
            while skip < total:
                more = await service.list_checkpoints(viewer, job_id, {"take": 100, "skip": skip})
                if not more.checkpoints:
                    break
                checkpoints.extend(more.checkpoints)
                skip += len(more.checkpoints)
        return viewer, job, checkpoints, total

    async def job_context(session: Session, job_id: str) -> dict[str, Any]:
        viewer, job, checkpoints, total = await load(session, job_id)
        complete = len(checkpoints) == total
        pending = []
        if job.status is JobStatus.REQUEST_INTERACTIVE_TOOL_RESULT and checkpoints:
            last_root = next((c for c in reversed(checkpoints) if c.parent_run_id is None), None)
            if last_root is not None and last_root.run_state == "waitingInteractive":
                pending = [
                    (call, _views.pretty_json(dict(call.arguments)), _question(call.arguments))
                    for call in last_root.pending_calls
                ]
        acting = isinstance(session.principal, Application)
        return {
            "job": job,
            "wire": job.to_wire(),
            "timeline": _views.build_timeline(checkpoints),
            "checkpoints_total": total,
            "checkpoints_shown": len(checkpoints),
            "last_seq": checkpoints[-1].seq if checkpoints else 0,
            "diagram": lifecycle_svg(job.status, (c.status for c in checkpoints)),
            "answer": _views.final_answer(job, checkpoints),
            "cost": _views.job_cost_label(job, checkpoints, complete),
            "pending": pending,
            "can_cancel": can_trigger(job.status, "cancel"),
            "can_answer": acting and bool(pending),
            "can_follow_up": acting and can_trigger(job.status, "follow_up"),
            "can_branch": acting,
            "live": job.status not in RESTING_STATUSES,
            "application_id": viewer.id,
            "error": None,
        }

    async def job_view(request: Request, session: Session, template: str, error_template: str) -> Response:
        """A job rendered with ``template`` (the whole page, or its live part), or the service's
        error with ``error_template``."""
        try:
            context = await job_context(session, request.path_params["job_id"])
        except ServiceError as exc:
            return page(request, error_template, exc.code, session=session, error=exc.body())
        return page(request, template, session=session, **context)

    async def job_page(request: Request, session: Session) -> Response:
        return await job_view(request, session, "job.html", "error.html")

    async def job_live(request: Request, session: Session) -> Response:
        return await job_view(request, session, "_job_live.html", "_error.html")

    async def job_stream(request: Request, session: Session) -> Response:
        """Server-sent events for a job's page: ``checkpoint`` for each new checkpoint, ``changed``
        when its status moves between checkpoints, ``delta`` for each piece of text a generation
        streams (``text``, ``runId``, ``expertKey``), ``end`` once it rests (the stream closes)."""
        job_id = request.path_params["job_id"]
        after_text = request.query_params.get("after", "")
        after = int(after_text) if after_text.isdigit() and len(after_text) < 19 else None
        seen_text = request.query_params.get("version", "")  # the version the page shows
        seen = int(seen_text) if seen_text.isdigit() and len(seen_text) < 19 else None
        try:
            viewer = await service.viewer(session.principal, job_id)
            job = await service.get(viewer, job_id)
            watch = await service.watch_events(viewer, job_id, after_seq=after, heartbeat=conf.poll_interval)
        except ServiceError as exc:
            return Response(json.dumps(exc.body()), status_code=exc.code, media_type="application/json")

        async def events() -> AsyncIterator[str]:
            version = job.version
            loop = asyncio.get_running_loop()
            ends = loop.time() + conf.stream_seconds
            yield "retry: 2000\n\n"
            if seen is not None and seen != version:  # it moved since the page was rendered
                yield sse_event({"status": job.status.value}, event="changed")
            async for item in watch:
                if item is None:  # quiet: a worker elsewhere may have moved the job
                    now = await service.get(viewer, job_id)
                    if now.version != version:
                        version = now.version
                        yield sse_event({"status": now.status.value}, event="changed")
                    else:
                        yield ": keep-alive\n\n"
                elif isinstance(item, Checkpoint):
                    data: dict[str, Any] = {"seq": item.seq, "status": item.status.value}
                    yield sse_event(data, event="checkpoint", id=str(item.seq))
                elif item.kind == "transition":
                    yield sse_event({"status": item.status.value}, event="changed")
                elif item.kind == "delta" and isinstance(item.delta, TextDelta):
                    data = {"text": item.delta.text, "runId": item.run_id, "expertKey": item.expert_key}
                    yield sse_event(data, event="delta")
                if loop.time() > ends:
                    return  # the browser reconnects, from its last seq
            yield sse_event({}, event="end")

        return _sse(events())

    def job_action(
        run: Callable[[Session, str, dict[str, str]], Awaitable[Job]],
    ) -> Callable[[Request, Session, dict[str, str]], Awaitable[Response]]:
        async def handler(request: Request, session: Session, fields: dict[str, str]) -> Response:
            job_id = request.path_params["job_id"]
            try:
                job = await run(session, job_id, fields)
            except ServiceError as exc:
                try:
                    context = await job_context(session, job_id)
                except ServiceError:
                    return page(request, "error.html", exc.code, session=session, error=exc.body())
                context["error"] = exc.body()
                return page(request, "job.html", exc.code, session=session, **context)
            return RedirectResponse(f"{base(request)}/jobs/{job.id}", status_code=303)

        return handler

    async def cancel(session: Session, job_id: str, fields: dict[str, str]) -> Job:
        return await service.cancel(session.principal, job_id)

    async def answer(session: Session, job_id: str, fields: dict[str, str]) -> Job:
        body: dict[str, Any] = {"query": fields.get("query", ""), "interactiveToolCallResult": True}
        if fields.get("toolCallId"):
            body["toolCallId"] = fields["toolCallId"]
        return await service.continue_job(session.principal, job_id, body)

    async def follow_up(session: Session, job_id: str, fields: dict[str, str]) -> Job:
        return await service.continue_job(session.principal, job_id, {"query": fields.get("query") or None})

    async def branch(session: Session, job_id: str, fields: dict[str, str]) -> Job:
        body: dict[str, Any] = {"checkpointId": fields.get("checkpointId", "")}
        if fields.get("query"):
            body["query"] = fields["query"]
        if fields.get("interactive") == "on":
            body["interactiveToolCallResult"] = True
        return await service.resume_from(session.principal, job_id, body)

    async def not_found(request: Request, exc: Exception) -> Response:
        session = read_session(request, service)
        body = {"code": 404, "error": "Not Found", "reason": f"Page not found: {request.url.path}"}
        return page(request, "error.html", 404, session=session, error=body)

    routes = [
        Route("/", signed_in(jobs_page)),
        Route("/login", login_page, methods=["GET"]),
        Route("/login", login, methods=["POST"]),
        Route("/logout", action(logout), methods=["POST"]),
        Route("/jobs", action(start), methods=["POST"]),
        Route("/jobs/rows", signed_in(rows)),
        Route("/events", signed_in(list_events)),
        Route("/jobs/{job_id}", signed_in(job_page)),
        Route("/jobs/{job_id}/live", signed_in(job_live)),
        Route("/jobs/{job_id}/stream", signed_in(job_stream)),
        Route("/jobs/{job_id}/cancel", action(job_action(cancel)), methods=["POST"]),
        Route("/jobs/{job_id}/answer", action(job_action(answer)), methods=["POST"]),
        Route("/jobs/{job_id}/follow-up", action(job_action(follow_up)), methods=["POST"]),
        Route("/jobs/{job_id}/branch", action(job_action(branch)), methods=["POST"]),
        Mount("/static", StaticFiles(directory=str(_HERE / "static")), name="static"),
    ]
    app = Starlette(routes=routes, exception_handlers={404: not_found})
    return app


def _principal_label(session: Session | None) -> str:
    if session is None:
        return ""
    principal = session.principal
    if isinstance(principal, SystemPrincipal):
        return "system key: every application"
    name = f" ({principal.name})" if principal.name else ""
    return f"application {principal.id}{name}"


def _matches(job: Job, needle: str) -> bool:
    return needle in job.id or needle in job.expert_key.casefold() or needle in (job.query or "").casefold()


def _question(arguments: Mapping[str, Any]) -> str:
    """What an interactive call asks: its ``question`` (or only) string argument, if it has one."""
    for name in ("question", "prompt", "message", "query"):
        value = arguments.get(name)
        if isinstance(value, str):
            return value
    strings = [v for v in arguments.values() if isinstance(v, str)]
    return strings[0] if len(strings) == 1 else ""


def _row(job: Job, cost: str) -> dict[str, Any]:
    return {
        "id": job.id,
        "status": job.status.value,
        "expert": job.expert_key,
        "model": job.model,
        "steps": f"{job.total_steps}/{job.max_steps}",
        "tokens": job.usage.total_tokens,
        "cost": cost,
        "duration": _views.format_duration(job.total_duration_ms),
        "created": _views.format_time(job.created_at)[5:-7],  # 12-04 15:45
        "created_full": _views.format_time(job.created_at),
        "query": (job.query or "")[:140],
        "application": job.application_id,
    }


def _sse(events: AsyncIterator[str]) -> StreamingResponse:
    return StreamingResponse(
        events,
        media_type="text/event-stream",
        headers={"cache-control": "no-cache", "x-accel-buffering": "no"},
    )
