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
    assert invoke("jobs", "checkpoints", job_id, "--seq", str(last["seq"])).json() == last
    table = invoke("jobs", "checkpoints", job_id)
    assert f"checkpoints of job {job_id} ({len(checkpoints)} of {len(checkpoints)})" in table.stdout
    assert "completed" in table.stdout
    missing = invoke("jobs", "checkpoints", job_id, "--id", "nope")
    assert missing.code == 2
    assert f"job {job_id} has no checkpoint 'nope'" in missing.stderr
    beyond = invoke("jobs", "checkpoints", job_id, "--seq", "99")
    assert beyond.code == 2
    assert f"job {job_id} has no checkpoint with seq 99" in beyond.stderr
    both = invoke("jobs", "checkpoints", job_id, "--seq", "1", "--id", last["id"])
    assert (both.code, both.stderr) == (2, "error: give --id or --seq, not both\n")


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


def _checkpoint_count(invoke: Invoke, job_id: str, *options: str) -> int:
    return int(invoke("jobs", "checkpoints", job_id, "--json", *options).json()["meta"]["total"])


def test_a_paused_example_job_is_continued_as_the_readme_says(invoke: Invoke) -> None:
    """`expert-jobs jobs continue <id> --answer yes` with no --example: the example's job is
    recognised and continued with the example's configuration (not the default provider)."""
    paused = invoke("run", "--example")
    assert paused.code == 3
    job_id = paused.json()["id"]
    done = invoke("jobs", "continue", job_id, "--answer", "yes")
    assert done.code == 0, done.stderr
    job = done.json()
    assert (job["status"], job["totalSteps"], job["usage"]["totalTokens"]) == ("completed", 7, 3823)
    assert "runs the bundled example's expert sales-analyst@1.0.0" in done.stderr
    assert "Provider API key not found" not in done.stderr


def test_continue_refuses_a_configuration_without_the_jobs_expert_before_writing(
    invoke: Invoke, write_config: Callable[..., Path]
) -> None:
    write_config(ASKER)
    paused = invoke("run", "go")
    assert paused.code == 3
    job_id = paused.json()["id"]
    before = _checkpoint_count(invoke, job_id)
    other = write_config(TWO_EXPERTS, "other.toml")  # the same store, other experts
    refused = invoke("jobs", "continue", job_id, "--answer", "x", "--config", str(other))
    assert refused.code == 2
    assert refused.stderr.count("\n") == 1
    assert f"its expert asker@1.0.0 is not defined in the configuration file {other}" in refused.stderr
    assert "pass the configuration the job was started with: --config FILE" in refused.stderr
    assert "the job was not changed" in refused.stderr
    assert invoke("jobs", "show", job_id).json()["status"] == "requestInteractiveToolResult"
    assert _checkpoint_count(invoke, job_id) == before


def test_an_example_job_with_an_explicit_other_configuration_is_refused(
    invoke: Invoke, write_config: Callable[..., Path]
) -> None:
    paused = invoke("run", "--example")
    job_id = paused.json()["id"]
    other = write_config(TWO_EXPERTS.replace("jobs.db", "expert-jobs.db"), "other.toml")
    refused = invoke("jobs", "continue", job_id, "--answer", "yes", "--config", str(other))
    assert refused.code == 2
    assert "(or --example for the bundled example's jobs)" in refused.stderr
    assert invoke("jobs", "show", job_id).json()["status"] == "requestInteractiveToolResult"


def test_continue_without_a_provider_key_changes_nothing(
    invoke: Invoke, write_config: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    from expert_jobs.providers._common import PROVIDER_ENV_VARS

    for names in PROVIDER_ENV_VARS.values():
        for name in names:
            monkeypatch.delenv(name, raising=False)
    write_config(TWO_EXPERTS)
    first = invoke("run", "q", "--expert", "alpha")
    assert first.code == 0
    job_id = first.json()["id"]
    before = _checkpoint_count(invoke, job_id)
    real = write_config(TWO_EXPERTS.replace('provider = "test"\n', ""), "real.toml")
    refused = invoke("jobs", "continue", job_id, "and now?", "--config", str(real))
    assert refused.code == 4
    assert "Provider API key not found for anthropic (model claude-sonnet-4-5)" in refused.stderr
    assert f"job {job_id} was not changed" in refused.stderr
    assert invoke("jobs", "show", job_id).json() == first.json()
    assert _checkpoint_count(invoke, job_id) == before
    other_model = invoke(
        "jobs", "continue", job_id, "and now?", "--config", str(real), "--model", "gpt-5-mini"
    )
    assert other_model.code == 4
    assert "set OPENAI_API_KEY" in other_model.stderr


def test_checkpoints_fit_100_columns_and_show_the_messages(invoke: Invoke) -> None:
    from rich.cells import cell_len

    job_id = invoke("run", "--example", "--answer", "yes").json()["id"]
    out = invoke("jobs", "checkpoints", job_id)
    assert out.code == 0
    lines = out.stdout.splitlines()
    assert max(cell_len(line) for line in lines) <= 100
    text = out.stdout
    for seen in (
        "user: How did our sales do in 2024",
        '→ read_data(name="sales.csv")',
        "← add: 540",
        "⇢ delegate to headline-writer: Sales were 540 units",
        "↳ headline-writer@1.0.0",
        "→ percent_change(old=540, new=620)",
        "⇠ headline-writer answered: 2024 sales up 14.8% to 620 units",
        '? ask_user(question="Publish the headline',
        "⇠ answer to ask_user: yes",
        "requestInteractiveToolResult",
        "2024 sales: 620 units, up 14.8%",
    ):
        assert seen in text, seen
    transcript = invoke("jobs", "show", job_id, "--transcript").stdout
    assert max(cell_len(line) for line in transcript.splitlines()) <= 100
    assert "│   → percent_change(old=540, new=620)" in transcript
    page = invoke("jobs", "checkpoints", job_id, "--skip", "5", "--take", "2").stdout
    assert "(2 of 9)" in page
    assert "⇠ headline-writer answered" in page  # the delegation was made before this page


async def test_the_checkpoint_table_fits_narrow_terminals() -> None:
    import io

    from rich.cells import cell_len
    from rich.console import Console

    from expert_jobs.examples import run_example
    from expert_jobs.stores.memory import MemoryStore
    from expert_jobs.transports.cli._transcript import checkpoint_table

    store = MemoryStore()
    job = await run_example("yes", store=store)
    checkpoints, total = await store.list_checkpoints(job.id, take=100)
    for width in (60, 80, 100, 160):
        buffer = io.StringIO()
        console = Console(file=buffer, width=width, color_system=None)
        console.print(checkpoint_table(job, checkpoints, total, width=width))
        assert max(cell_len(line) for line in buffer.getvalue().splitlines()) <= width, width


TRANSCRIPT = """
store = "sqlite:///jobs.db"

[provider]
providerName = "scripted"

[[provider.scripts."boss@1.0.0"]]
thinking = "The user wants a sum. I should add the numbers first, then ask a helper to phrase it."
toolCalls = [
    { name = "add", arguments = { numbers = [1, 2] } },
    { name = "add", arguments = { numbers = "x" } },
]

[[provider.scripts."boss@1.0.0"]]
text = "Asking the helper."
toolCalls = [{ name = "helper", arguments = { query = "Phrase: 1 + 2 = 3" } }]

[[provider.scripts."boss@1.0.0"]]
fail = "server"
message = "the model is overloaded"

[[provider.scripts."boss@1.0.0"]]
text = "1 + 2 = 3, nicely put."

[[provider.scripts."helper@1.0.0"]]
fail = "bad_request"
message = "the helper cannot do this"

[experts."boss"]
instruction = "Add."
delegates = ["helper"]

[experts."boss".skills."math"]
type = "pythonSkill"
module = "expert_jobs.examples.tools"
pick = ["add"]

[experts."helper"]
instruction = "Phrase."
"""


def test_the_transcript_shows_the_conversation(invoke: Invoke, write_config: Callable[..., Path]) -> None:
    write_config(TRANSCRIPT)
    ran = invoke("run", "What is 1 + 2?", "--expert", "boss")
    assert ran.code == 0, ran.stderr
    job_id = ran.json()["id"]
    out = invoke("jobs", "show", job_id, "--transcript")
    assert out.code == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == f"job {job_id} · boss · claude-sonnet-4-5"
    assert lines[1] == "completed · 3 steps · 360 tokens"
    expected = [
        "user: What is 1 + 2?",
        "step 1 · boss@1.0.0 · 120 tokens",
        "  thinking: The user wants a sum. I should add the numbers first, then ask a helper to phrase it.",
        "  → add(numbers=[1, 2])",
        '  → add(numbers="x")',
        "  ← add: 3",
        "step 2 · boss@1.0.0 · 120 tokens",
        "  Asking the helper.",
        "  ⇢ delegate to helper: Phrase: 1 + 2 = 3",
        "│ user: Phrase: 1 + 2 = 3",
        "│   ✘ helper@1.0.0 failed: bad_request error from scripted: the helper cannot do this",
        "step 3 · boss@1.0.0 · 120 tokens",
        "  final answer: 1 + 2 = 3, nicely put.",
        "■ completed",
    ]
    positions = []
    for line in expected:
        assert line in lines, (line, out.stdout)
        positions.append(lines.index(line))
    assert positions == sorted(positions), out.stdout
    errors = [line for line in lines if line.startswith("  ✘ add error: ")]
    assert len(errors) == 1  # the call with a bad argument got an error result
    assert any(line.startswith("  ✘ helper answered: ") for line in lines)
    assert max(len(line) for line in lines) <= 100
