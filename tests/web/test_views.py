"""The timeline of the bundled example job, the service's ``browse`` and ``viewer`` the dashboard
reads through, and ``serve --example``."""

from __future__ import annotations

from typing import Any

import pytest
import uvicorn
from typer.testing import CliRunner

from expert_jobs.config import build_service, with_store
from expert_jobs.domain.errors import NotFound, Unauthorized, ValidationFailed
from expert_jobs.domain.status import JobStatus
from expert_jobs.examples import EXAMPLE_EXPERT, EXAMPLE_QUERY, example_config
from expert_jobs.service import Application, SystemPrincipal
from expert_jobs.transports.cli import app as cli
from expert_jobs.transports.cli._serve import EXAMPLE_APPLICATION, example_server_config
from expert_jobs.transports.web._views import build_timeline, final_answer
from tests.web.conftest import APP_A, APP_B, Env

S = JobStatus


async def test_the_example_jobs_timeline_nests_the_delegate_and_pairs_each_call_with_its_result() -> None:
    config, key, provider = example_server_config(with_store(example_config(), "memory://"), pace=0)
    service = build_service(config, providers=provider)
    try:
        principal = service.authenticate(f"Bearer {key}")
        job = await service.start_job(principal, {"expertKey": EXAMPLE_EXPERT, "query": EXAMPLE_QUERY})
        await service.runtime.drive(job.id)
        await service.continue_job(principal, job.id, {"query": "yes", "interactiveToolCallResult": True})
        done = await service.runtime.drive(job.id)
        checkpoints = (await service.list_checkpoints(principal, job.id)).checkpoints
    finally:
        await service.close()
    assert done.status is S.COMPLETED
    [root] = build_timeline(checkpoints)
    assert root.expert_key == EXAMPLE_EXPERT
    calls = [b.call for step in root.steps for b in step.blocks if b.call is not None]
    by_name = {c.call.name: c for c in calls}
    # Call ids repeat across runs (the delegate's first call has the root's first call's id):
    # each call gets its own run's result.
    assert by_name["read_data"].result_text.startswith("quarter,units_2023,units_2024")
    delegate = by_name["headline-writer"]
    assert delegate.kind == "delegate" and delegate.run is not None
    assert delegate.run.expert_key == "headline-writer@1.0.0"
    assert [s.checkpoint.seq for s in delegate.run.steps] == [4, 5]
    assert delegate.result_text == "2024 sales up 14.8% to 620 units"
    nested = [b.call for s in delegate.run.steps for b in s.blocks if b.call]
    assert [(c.call.name, c.result_text) for c in nested] == [("percent_change", "14.8")]
    ask = by_name["ask_user"]
    assert ask.kind == "interactive" and ask.result_text == "yes"
    resumed = [s for s in root.steps if s.checkpoint.kind == "resume"]
    assert [r.name for s in resumed for r in s.resumed_with] == ["headline-writer", "ask_user"]
    answer = final_answer(done, checkpoints)
    assert answer is not None and answer.startswith("2024 sales: 620 units")


async def test_browse_lists_an_applications_own_jobs_and_the_system_every_applications(env: Env) -> None:
    service = env.service
    a = service.authenticate(f"Bearer {env.keys['a']}")
    b = service.authenticate(f"Bearer {env.keys['b']}")
    made = []
    for principal in (a, b, a):
        made.append(await service.start_job(principal, {"expertKey": "writer@1.0.0", "query": "x"}))
    own = await service.browse(a)
    assert [j.id for j in own.jobs] == [made[2].id, made[0].id] and own.total == 2
    with pytest.raises(Unauthorized):
        await service.browse(a, application_id=APP_B)
    everyone = await service.browse(SystemPrincipal(), take=2)
    assert [j.id for j in everyone.jobs] == [made[2].id, made[1].id] and everyone.total == 3
    second = await service.browse(SystemPrincipal(), take=2, skip=2)
    assert [j.id for j in second.jobs] == [made[0].id]
    only_b = await service.browse(SystemPrincipal(), application_id=APP_B)
    assert [j.id for j in only_b.jobs] == [made[1].id]
    queued = await service.browse(SystemPrincipal(), statuses=frozenset({S.COMPLETED}))
    assert queued.jobs == [] and queued.total == 0
    with pytest.raises(ValidationFailed):
        await service.browse(a, take=0)
    with pytest.raises(ValidationFailed):
        await service.browse(SystemPrincipal(), skip=990, take=20)


async def test_viewer_is_the_jobs_application_for_the_system_and_404_for_another(env: Env) -> None:
    service = env.service
    a = service.authenticate(f"Bearer {env.keys['a']}")
    b = service.authenticate(f"Bearer {env.keys['b']}")
    job = await service.start_job(a, {"expertKey": "writer@1.0.0", "query": "x"})
    assert await service.viewer(a, job.id) == a
    viewer = await service.viewer(SystemPrincipal(), job.id)
    assert isinstance(viewer, Application) and viewer.id == APP_A
    with pytest.raises(NotFound):
        await service.viewer(b, job.id)
    with pytest.raises(NotFound):
        await service.viewer(SystemPrincipal(), "nosuchjob000000000000000")
    with pytest.raises(ValidationFailed):
        await service.viewer(SystemPrincipal(), "../etc")


def test_serve_example_prints_the_dashboard_url_and_a_working_key(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    served: list[dict[str, Any]] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **options: served.append({"app": app, **options}))
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, ["serve", "--example", "--port", "8123", "--store", "memory://"])
    assert result.exit_code == 0, result.stderr
    assert "Dashboard:  http://127.0.0.1:8123/ui/" in result.stdout
    key = result.stdout.split("API key:", 1)[1].split()[0]
    service = served[0]["app"].state.service
    principal = service.authenticate(f"Bearer {key}")
    assert isinstance(principal, Application) and principal.id == EXAMPLE_APPLICATION
    assert service.runtime.experts.get(EXAMPLE_EXPERT) is not None


def test_pace_needs_example() -> None:
    result = CliRunner().invoke(cli, ["serve", "--pace", "1", "--store", "memory://"])
    assert result.exit_code == 2 and "--pace applies to --example only" in result.stderr


def test_the_vendored_htmx_is_the_release_its_note_names() -> None:
    import hashlib
    import re
    from pathlib import Path

    import expert_jobs.transports.web as web

    static = Path(web.__file__).parent / "static"
    note = (static / "VENDORED.md").read_text(encoding="utf-8")
    noted = re.search(r"sha256 of `htmx.min.js`: `([0-9a-f]{64})`", note)
    assert noted is not None
    assert hashlib.sha256((static / "htmx.min.js").read_bytes()).hexdigest() == noted.group(1)
    assert "htmx.org@2.0.11" in note and "Zero-Clause BSD" in (static / "htmx.LICENSE.txt").read_text()
    assert (static / "htmx.min.js").read_text().count('version:"2.0.11"') == 1
