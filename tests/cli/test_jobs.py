"""``expert-jobs jobs list|show|checkpoints|continue|cancel`` over the SQLite store of a config file."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.cli.conftest import ASKER, Invoke

TWO_EXPERTS = """
store = "sqlite:///jobs.db"
provider = "test"

[experts."alpha"]
instruction = "A."

[experts."beta-writer"]
instruction = "B."
"""


@pytest.fixture
def three_jobs(invoke: Invoke, write_config: Callable[..., Path]) -> list[dict[str, object]]:
    write_config(TWO_EXPERTS)
    jobs = []
    for expert in ("alpha", "beta-writer", "alpha"):
        out = invoke("run", "q", "--expert", expert)
        assert out.code == 0, out.stderr
        jobs.append(out.json())
    return jobs


def test_list_as_json_is_the_api_body_newest_first(
    invoke: Invoke, three_jobs: list[dict[str, object]]
) -> None:
    body = invoke("jobs", "list", "--json").json()
    assert body["meta"] == {"total": 3, "take": 100, "skip": 0}
    assert [j["id"] for j in body["data"]["expertJobs"]] == [j["id"] for j in reversed(three_jobs)]
    oldest_first = invoke("jobs", "list", "--json", "--order", "asc").json()
    assert [j["id"] for j in oldest_first["data"]["expertJobs"]] == [j["id"] for j in three_jobs]


def test_list_filters_and_pages(invoke: Invoke, three_jobs: list[dict[str, object]]) -> None:
    beta = invoke("jobs", "list", "--json", "--expert", "BETA").json()
    assert [j["id"] for j in beta["data"]["expertJobs"]] == [three_jobs[1]["id"]]
    alpha = invoke("jobs", "list", "--json", "--filter", "lph").json()
    assert alpha["meta"]["total"] == 2
    page = invoke("jobs", "list", "--json", "--take", "1", "--skip", "1").json()
    assert page["meta"] == {"total": 3, "take": 1, "skip": 1}
    assert [j["id"] for j in page["data"]["expertJobs"]] == [three_jobs[1]["id"]]
    completed = invoke("jobs", "list", "--json", "--status", "completed,failed").json()
    assert completed["meta"]["total"] == 3
    none = invoke("jobs", "list", "--json", "--status", "queued", "--status", "canceled").json()
    assert none == {"data": {"expertJobs": []}, "meta": {"total": 0, "take": 100, "skip": 0}}
    other_app = invoke("jobs", "list", "--json", "--application", "otherapplication00000000").json()
    assert other_app["meta"]["total"] == 0


def test_list_as_a_table(invoke: Invoke, three_jobs: list[dict[str, object]]) -> None:
    out = invoke("jobs", "list")
    assert out.code == 0
    assert "jobs of localapplication00000000 (3 of 3)" in out.stdout
    for job in three_jobs:
        assert str(job["id"]) in out.stdout
    assert "beta-writer" in out.stdout
    assert out.stdout.count("completed") == 3


def test_take_is_bounded(invoke: Invoke) -> None:
    out = invoke("jobs", "list", "--take", "101")
    assert out.code == 2
    assert "--take" in out.stderr


def test_show_and_checkpoints(invoke: Invoke, three_jobs: list[dict[str, object]]) -> None:
    job_id = str(three_jobs[0]["id"])
    assert invoke("jobs", "show", job_id).json() == three_jobs[0]
    listing = invoke("jobs", "checkpoints", job_id, "--json").json()
    checkpoints = listing["data"]["checkpoints"]
    assert listing["meta"]["total"] == len(checkpoints) >= 1
    assert [c["seq"] for c in checkpoints] == list(range(1, len(checkpoints) + 1))
    assert all(c["expertJobId"] == job_id for c in checkpoints)
    last = checkpoints[-1]
    assert last["status"] == "completed"
    one = invoke("jobs", "checkpoints", job_id, "--id", last["id"])
    assert one.json() == last
    table = invoke("jobs", "checkpoints", job_id)
    assert f"checkpoints of job {job_id}" in table.stdout
    assert last["id"] in table.stdout
    missing = invoke("jobs", "checkpoints", job_id, "--id", "nope")
    assert missing.code == 2
    assert f"job {job_id} has no checkpoint 'nope'" in missing.stderr


def test_continue_follows_up_a_finished_job(invoke: Invoke, three_jobs: list[dict[str, object]]) -> None:
    job_id = str(three_jobs[0]["id"])
    out = invoke("jobs", "continue", job_id, "and now?", "--max-steps", "50")
    assert out.code == 0, out.stderr
    job = out.json()
    assert (job["id"], job["status"], job["maxSteps"]) == (job_id, "completed", 50)
    assert job["totalSteps"] > int(str(three_jobs[0]["totalSteps"]))


def test_continue_a_paused_job_answers_it_and_refuses_a_query(
    invoke: Invoke, write_config: Callable[..., Path]
) -> None:
    write_config(ASKER)
    paused = invoke("run", "go", "--answer", "one")
    assert paused.code == 3
    job_id = paused.json()["id"]
    refused = invoke("jobs", "continue", job_id, "a query")
    assert refused.code == 2
    assert "answer it with --answer" in refused.stderr
    done = invoke("jobs", "continue", job_id, "--answer", "two")
    assert done.code == 0, done.stderr
    assert done.json()["status"] == "completed"


def test_cancel(invoke: Invoke, write_config: Callable[..., Path]) -> None:
    write_config(ASKER)
    paused = invoke("run", "go").json()
    assert paused["status"] == "requestInteractiveToolResult"
    canceled = invoke("jobs", "cancel", paused["id"])
    assert canceled.code == 0
    assert canceled.json()["status"] == "canceled"
    again = invoke("jobs", "cancel", paused["id"])
    assert again.code == 2
    assert "canceled" in again.stderr
    assert invoke("jobs", "continue", paused["id"], "--answer", "x").code == 2
