"""``expert-jobs run``'s live view streams: on a terminal the answer and the thinking (dimmed) of
the generation in flight appear above the status line as the model writes them."""

from __future__ import annotations

import io
import re
from collections.abc import Callable
from typing import Any

import pytest
from rich.console import Console

from expert_jobs import Fail, FakeClock, Reply, RuntimeSettings, ScriptedProvider, ToolCalls
from expert_jobs.config import build_runtime
from expert_jobs.domain.events import JobEvent
from expert_jobs.engine.runtime import Runtime
from expert_jobs.examples import EXAMPLE_EXPERT, EXAMPLE_QUERY, example_config
from expert_jobs.ports.provider import GenerationRequest
from expert_jobs.stores.memory import MemoryStore
from expert_jobs.transports.cli import _view
from expert_jobs.transports.cli._run import Answers, RunRequest, follow_job, submit_job

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def terminal() -> tuple[Console, io.StringIO]:
    buffer = io.StringIO()
    return Console(file=buffer, force_terminal=True, width=200, color_system=None, soft_wrap=True), buffer


def frames(monkeypatch: pytest.MonkeyPatch, *, styled: bool = False) -> list[str]:
    """What the live area shows after each delta the view takes (ANSI styles kept if ``styled``)."""
    shown: list[str] = []
    original: Callable[[Any, JobEvent], None] = _view.LiveView._add_delta

    def add_delta(view: Any, event: JobEvent) -> None:
        original(view, event)
        out = io.StringIO()
        console = Console(
            file=out, force_terminal=True, width=200, color_system="standard" if styled else None
        )
        console.print(view._status_line())
        shown.append(out.getvalue())

    monkeypatch.setattr(_view.LiveView, "_add_delta", add_delta)
    return shown


async def test_the_example_job_streams_its_answer_in_the_live_view(monkeypatch: pytest.MonkeyPatch) -> None:
    shown = frames(monkeypatch)
    console, buffer = terminal()
    runtime = build_runtime(example_config(), store=MemoryStore())
    job = await submit_job(runtime, RunRequest(EXAMPLE_EXPERT, EXAMPLE_QUERY))
    outcome = await follow_job(runtime, job, console=console, answers=Answers(["yes"]))
    assert outcome.job.status.value == "completed"
    final = "2024 sales: 620 units, up 14.8% from 540 units in 2023"
    growing = [ANSI.sub("", frame) for frame in shown if "2024 sales: 6" in ANSI.sub("", frame)]
    # The final answer appeared piece by piece: some frame shows only its beginning, a later one more.
    assert any(final not in frame for frame in growing), growing[:3]
    assert any(final in frame for frame in growing)
    # Each frame is the live area above the status line, headed by the step being generated.
    assert "step 7 sales-analyst@1.0.0 ✎" in growing[-1] and "step 6/20" in growing[-1]
    # A delegate's answer streams under its own expert.
    assert any("headline-writer@1.0.0 ✎" in ANSI.sub("", frame) for frame in shown)
    # The log prints the final answer once, as a whole, as it did before streaming.
    log = ANSI.sub("", buffer.getvalue())
    assert log.count("final answer:") == 1 and final in log


async def test_thinking_is_dimmed_and_the_answer_is_not(monkeypatch: pytest.MonkeyPatch) -> None:
    shown = frames(monkeypatch, styled=True)
    clock = FakeClock()
    runtime = Runtime(
        providers=ScriptedProvider(
            [Reply("Plain answer here.", thinking="Quiet musing.")], sleep=clock.sleep
        ),
        clock=clock,
    )
    runtime.add_expert("main@1.0.0", "You answer.")
    console, _ = terminal()
    job = await runtime.submit("main@1.0.0", "q")
    outcome = await follow_job(runtime, job, console=console, answers=Answers())
    assert outcome.job.status.value == "completed"
    last = shown[-1]
    # Rich writes dim + italic as SGR 2;3 before the thinking; the answer is written unstyled.
    assert re.search(r"\x1b\[2;3mQuiet musing\.\x1b\[0m", last), last
    assert re.search(r"(^|\n)Plain answer here\.", ANSI.sub("", last)) and "\x1b[2;3mPlain" not in last


async def test_a_retry_drops_the_void_deltas_from_the_live_area(monkeypatch: pytest.MonkeyPatch) -> None:
    shown = frames(monkeypatch)
    clock = FakeClock()
    script = [Fail("connection", "reset", partial=Reply("WRONG START")), Reply("Right answer.")]
    runtime = Runtime(
        providers=ScriptedProvider(script, sleep=clock.sleep, stream_chunk_chars=3),
        clock=clock,
        settings=RuntimeSettings(backoff_base=0.0),
    )
    runtime.add_expert("main@1.0.0", "You answer.")
    console, _ = terminal()
    job = await runtime.submit("main@1.0.0", "q")
    outcome = await follow_job(runtime, job, console=console, answers=Answers())
    assert outcome.job.status.value == "completed"
    plain = [ANSI.sub("", frame) for frame in shown]
    assert any("WRONG" in frame for frame in plain)  # the broken attempt streamed
    after = [frame for frame in plain if "Rig" in frame]
    assert after and not any("WRONG" in frame for frame in after)
    assert "Right answer." in after[-1]


async def test_off_a_terminal_the_view_does_not_ask_for_deltas_and_nothing_streams() -> None:
    class Counting(ScriptedProvider):
        streamed = 0

        async def stream(self, request: GenerationRequest) -> Any:
            Counting.streamed += 1
            async for item in super().stream(request):
                yield item

    runtime = Runtime(providers=Counting([ToolCalls.of(("add", {"a": 1, "b": 2})), Reply("3")]))

    def add(a: int, b: int) -> int:
        """Add.

        Args:
            a: one
            b: two
        """
        return a + b

    runtime.add_expert("main@1.0.0", "You add.", tools=[add])
    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=False, width=200)
    job = await runtime.submit("main@1.0.0", "q")
    outcome = await follow_job(runtime, job, console=console, answers=Answers())
    assert outcome.job.status.value == "completed"
    assert Counting.streamed == 0 and not runtime.events.deltas
    assert "final answer:" in buffer.getvalue()
