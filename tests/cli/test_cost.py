"""The CLI shows what a job cost: ``run``'s summary, ``jobs show`` (stderr, the JSON untouched),
``jobs list`` (a column); "unknown" for a model the price table does not know. Amounts are worked
out here from genai-prices' own table, step by step, with the model each step ran on."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import genai_prices

from expert_jobs.domain.cost import Cost, format_cost
from expert_jobs.domain.usage import Usage
from tests.cli.conftest import ASKER, Invoke

PRICED = """
store = "sqlite:///jobs.db"
provider = "test"

[experts."alpha"]
instruction = "A."
"""


def _bill(invoke: Invoke, job_id: str) -> str:
    """The job's cost by hand: each checkpoint's step usage at its step's model's rates."""
    checkpoints = invoke("jobs", "checkpoints", job_id, "--json").json()["data"]["checkpoints"]
    total, model = Decimal(0), None
    for checkpoint in checkpoints:
        for message in checkpoint["newMessages"]:
            if message.get("model"):
                model = message["model"]
        usage = Usage.from_wire(checkpoint["stepUsage"])
        if usage.total_tokens:
            assert model is not None
            counters = genai_prices.Usage(
                input_tokens=usage.input_tokens,
                cache_read_tokens=usage.cached_input_tokens,
                output_tokens=usage.output_tokens,
            )
            total += genai_prices.calc_price(counters, model).total_price
    assert total > 0
    return format_cost(Cost(total))


def test_run_show_and_list_show_the_cost(invoke: Invoke, write_config: Callable[..., Path]) -> None:
    write_config(PRICED)
    out = invoke("run", "q", "--expert", "alpha", "--model", "gpt-5-mini")
    assert out.code == 0, out.stderr
    job = out.json()
    bill = _bill(invoke, job["id"])
    assert bill.startswith("$")
    assert f"· cost {bill} ·" in out.stderr

    shown = invoke("jobs", "show", job["id"])
    assert shown.json() == job  # stdout stays the API's expertJob, exactly
    assert "cost" not in shown.json()
    assert shown.stderr.strip() == f"cost {bill}"
    transcript = invoke("jobs", "show", job["id"], "--transcript")
    assert transcript.stdout.rstrip().splitlines()[-1] == f"cost {bill}"

    table = invoke("jobs", "list").stdout
    assert "cost" in table.splitlines()[2]
    row = next(line for line in table.splitlines() if job["id"] in line)
    assert bill in row


def test_a_follow_up_on_another_model_is_priced_at_each_models_rates(
    invoke: Invoke, write_config: Callable[..., Path]
) -> None:
    write_config(PRICED)
    job = invoke("run", "q", "--expert", "alpha", "--model", "gpt-5-mini").json()
    first = _bill(invoke, job["id"])
    out = invoke("jobs", "continue", job["id"], "more", "--model", "claude-opus-4-1")
    assert out.code == 0, out.stderr
    both = _bill(invoke, job["id"])
    assert both != first
    assert f"· cost {both} ·" in out.stderr
    assert invoke("jobs", "show", job["id"]).stderr.strip() == f"cost {both}"


def test_an_unknown_model_says_unknown(invoke: Invoke, write_config: Callable[..., Path]) -> None:
    # The scripted provider records its steps as model "scripted": not in the price table.
    write_config(ASKER)
    out = invoke("run", "q", "--expert", "asker", "--answer", "a", "--answer", "b")
    assert out.code == 0, out.stderr
    job_id = out.json()["id"]
    assert "· cost unknown ·" in out.stderr
    assert "$" not in out.stderr
    assert invoke("jobs", "show", job_id).stderr.strip() == "cost unknown"
    row = next(line for line in invoke("jobs", "list").stdout.splitlines() if job_id in line)
    assert "unknown" in row
    assert "$" not in row


def test_an_ended_jobs_cost_is_read_from_its_final_checkpoint(
    invoke: Invoke, write_config: Callable[..., Path]
) -> None:
    import json
    import sqlite3

    config = write_config(PRICED)
    job = invoke("run", "q", "--expert", "alpha", "--model", "gpt-5-mini").json()
    # Change the cost the final checkpoint recorded: the list and show print what it says, so they
    # read it (one read) rather than pricing every checkpoint again.
    with sqlite3.connect(config.parent / "jobs.db") as conn:
        (data,) = conn.execute(
            "SELECT data FROM checkpoints WHERE job_id = ? ORDER BY seq DESC LIMIT 1", (job["id"],)
        ).fetchone()
        final = json.loads(data)
        assert final["cost"]["currency"] == "USD"
        final["cost"]["amount"] = "12.5"
        conn.execute(
            "UPDATE checkpoints SET data = ? WHERE job_id = ? AND id = ?",
            (json.dumps(final), job["id"], final["id"]),
        )
    row = next(line for line in invoke("jobs", "list").stdout.splitlines() if job["id"] in line)
    assert "$12.5000" in row
    assert invoke("jobs", "show", job["id"]).stderr.strip() == "cost $12.5000"
