"""The checkpoint routes show a run's validated output (``output``, only when set), and stay
valid against the OpenAPI document's ``Checkpoint`` schema."""

from __future__ import annotations

from expert_jobs import Reply, ScriptedProvider
from expert_jobs.api import dispatch
from expert_jobs.domain.wire import CheckpointListResponse, CheckpointResponse
from tests.service.kit import APP_ID, ORG_ID, PREFIX, make_env


async def test_the_checkpoint_routes_show_the_output_of_the_final_checkpoint() -> None:
    env = make_env(providers=ScriptedProvider({"typed@1.0.0": [Reply('{"city": "Oslo"}')]}))
    schema = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
    env.runtime.add_expert("typed@1.0.0", "You answer with a city.", output=schema)
    job = await env.runtime.run("typed@1.0.0", "where?", application_id=APP_ID, organization_id=ORG_ID)
    assert job.output == {"city": "Oslo"}
    headers = {"authorization": f"Bearer {env.key}"}

    status, listed = await dispatch(env.service, "GET", f"{PREFIX}{job.id}/checkpoints", headers)
    assert status == 200
    CheckpointListResponse.model_validate(listed)
    pages = listed["data"]["checkpoints"]
    final = max(pages, key=lambda c: c["seq"])
    assert final["output"] == {"city": "Oslo"}
    assert all("output" not in c for c in pages if c is not final)

    status, one = await dispatch(env.service, "GET", f"{PREFIX}{job.id}/checkpoints/{final['id']}", headers)
    assert status == 200
    CheckpointResponse.model_validate(one)
    assert one["data"]["checkpoint"]["output"] == {"city": "Oslo"}
