"""The job lifecycle: the table, the shared machine, the lookups, the diagram and the errors."""

from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.stateful import invariant, rule
from transitions import Machine, MachineError

from expert_jobs import IllegalTransition, JobStatus, UsageError, can_transition, trigger_for
from expert_jobs.domain import lifecycle
from expert_jobs.domain.lifecycle import (
    TRANSITIONS,
    TRIGGERS,
    allowed_triggers,
    can_trigger,
    fire,
    mermaid_diagram,
    next_status,
)
from expert_jobs.domain.status import FINAL_STATUSES
from expert_jobs.testing import LifecycleStateMachine, legal_trigger_sequences, statuses

from .factories import make_job

# docs/architecture.md's lifecycle table, by hand: the code's TRANSITIONS must say exactly this.
DESIGN_TABLE: list[tuple[str, list[str], str]] = [
    ("start", ["queued"], "processing"),
    ("complete", ["processing"], "completed"),
    ("exceed_max_steps", ["processing"], "exceededMaxSteps"),
    ("fail", ["queued", "processing"], "failed"),
    ("request_interactive_tool_result", ["processing"], "requestInteractiveToolResult"),
    ("request_delegate_result", ["processing"], "requestDelegateResult"),
    ("resume", ["requestInteractiveToolResult", "requestDelegateResult"], "queued"),
    ("follow_up", ["completed", "exceededMaxSteps", "failed"], "queued"),
    ("requeue", ["processing"], "queued"),
    (
        "cancel",
        ["queued", "processing", "requestInteractiveToolResult", "requestDelegateResult"],
        "canceling",
    ),
    ("finish_cancel", ["canceling"], "canceled"),
    ("expire", ["queued", "requestInteractiveToolResult", "requestDelegateResult"], "expired"),
]
MOVES = {(src, trigger): dst for trigger, sources, dst in DESIGN_TABLE for src in sources}
PAIRS = {(src, dst): trigger for (src, trigger), dst in MOVES.items()}


class StrictLifecycle(LifecycleStateMachine):
    """The kit's machine over a real ``Job`` moved by ``Job.fire``, plus what only our Job promises."""

    def fire(self, job: Any, trigger: str) -> Any:
        return job.fire(trigger)

    @rule(name=st.text(max_size=20).filter(lambda n: n not in TRIGGERS))
    def unknown_trigger(self, name: str) -> None:
        before = self.job.copy()
        with pytest.raises(UsageError, match="unknown lifecycle trigger"):
            self.job.fire(name)
        assert self.job == before

    @invariant()
    def status_is_a_job_status(self) -> None:
        assert type(self.job.status) is JobStatus

    @invariant()
    def no_job_is_registered_with_the_machine(self) -> None:
        assert lifecycle._MACHINE.models == []
        assert not hasattr(self.job, "start") and not hasattr(self.job, "trigger")


TestLifecycle = LifecycleStateMachine.TestCase
TestJobLifecycle = StrictLifecycle.TestCase


def test_transitions_is_exactly_the_design_table() -> None:
    assert [(t, [s.value for s in src], dst.value) for t, src, dst in TRANSITIONS] == DESIGN_TABLE
    assert tuple(row[0] for row in DESIGN_TABLE) == TRIGGERS


def test_a_status_pair_has_at_most_one_trigger() -> None:
    # trigger_for needs a unique answer for every (src, dst) pair.
    assert len(PAIRS) == len(MOVES)


@pytest.mark.parametrize("src", list(JobStatus))
@pytest.mark.parametrize("dst", list(JobStatus))
def test_lookups_agree_with_the_table_for_every_pair(src: JobStatus, dst: JobStatus) -> None:
    expected = PAIRS.get((src.value, dst.value))
    assert can_transition(src, dst) is (expected is not None)
    assert can_transition(src.value, dst.value) is (expected is not None)
    assert trigger_for(src, dst) == expected
    assert trigger_for(src.value, dst.value) == expected


@pytest.mark.parametrize("src", list(JobStatus))
def test_allowed_triggers_next_status_and_can_trigger_follow_the_table(src: JobStatus) -> None:
    allowed = [t for t, sources, _ in DESIGN_TABLE if src.value in sources]
    assert allowed_triggers(src) == allowed
    assert allowed_triggers(src.value) == allowed
    for trigger in TRIGGERS:
        dst = MOVES.get((src.value, trigger))
        assert can_trigger(src, trigger) is (dst is not None)
        assert next_status(src, trigger) == (JobStatus(dst) if dst else None)


def test_final_statuses_are_exactly_those_with_no_way_out() -> None:
    assert {JobStatus.CANCELED, JobStatus.EXPIRED} == FINAL_STATUSES
    assert {s for s in JobStatus if not allowed_triggers(s)} == FINAL_STATUSES


def test_every_status_is_reachable_from_queued() -> None:
    seen, frontier = {JobStatus.QUEUED}, [JobStatus.QUEUED]
    while frontier:
        status = frontier.pop()
        for trigger in allowed_triggers(status):
            dst = next_status(status, trigger)
            assert dst is not None
            if dst not in seen:
                seen.add(dst)
                frontier.append(dst)
    assert seen == set(JobStatus)


def test_mermaid_diagram_has_one_edge_per_row_source() -> None:
    lines = mermaid_diagram().splitlines()
    assert lines[0] == "stateDiagram-v2"
    edge = re.compile(r"^    (\w+) --> (\w+): (\w+)$")
    edges = [m.groups() for m in map(edge.match, lines[1:]) if m]
    expected = [(src, dst, t) for t, sources, dst in DESIGN_TABLE for src in sources]
    assert sorted(edges) == sorted(expected)
    assert len(edges) == len(set(edges)) == 21
    assert "    [*] --> queued" in lines
    assert sorted(line for line in lines if line.endswith("--> [*]")) == [
        "    canceled --> [*]",
        "    expired --> [*]",
    ]
    assert len(lines) == 1 + 1 + 21 + 2


def test_firing_on_many_jobs_never_builds_or_grows_a_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    def forbidden(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("the lifecycle must not build a machine or register a job per job")

    monkeypatch.setattr(Machine, "__init__", forbidden)
    monkeypatch.setattr(Machine, "add_model", forbidden)
    models_before = list(lifecycle._MACHINE.models)
    for _ in range(1_000):
        job = make_job()
        assert job.fire("start") is JobStatus.PROCESSING
        assert job.fire("complete") is JobStatus.COMPLETED
    assert lifecycle._MACHINE.models == models_before == []


@given(statuses().flatmap(lambda s: st.tuples(st.just(s), legal_trigger_sequences(start=s))))
def test_a_legal_walk_ends_where_the_table_says(start_and_walk: tuple[JobStatus, list[str]]) -> None:
    start, walk = start_and_walk
    job = make_job(status=start)
    expected = start.value
    for trigger in walk:
        expected = MOVES[(expected, trigger)]
        assert fire(job, trigger) == expected
    assert job.status == expected


def test_illegal_transition_names_job_status_trigger_and_allowed_moves() -> None:
    job = make_job(status=JobStatus.COMPLETED)
    with pytest.raises(IllegalTransition) as caught:
        job.fire("start")
    err = caught.value
    assert (err.job_id, err.status, err.asked) == (job.id, JobStatus.COMPLETED, "start")
    assert err.allowed == ["follow_up"]
    assert str(err) == f"job {job.id}: cannot start from status 'completed'; allowed from there: follow_up"
    assert job.status is JobStatus.COMPLETED


def test_illegal_transition_from_a_final_status_says_nothing_is_allowed() -> None:
    job = make_job(status=JobStatus.EXPIRED)
    with pytest.raises(IllegalTransition, match=r"allowed from there: nothing \(final status\)"):
        fire(job, "resume")


def test_fire_takes_the_job_id_from_the_caller_when_given() -> None:
    class Bare:
        status = JobStatus.CANCELED

    with pytest.raises(IllegalTransition) as caught:
        fire(Bare(), "expire", job_id="abc")
    assert caught.value.job_id == "abc"
    with pytest.raises(IllegalTransition) as caught:
        fire(Bare(), "expire")
    assert caught.value.job_id is None
    assert "job <new>" in str(caught.value)


def test_fire_moves_any_object_with_a_status() -> None:
    class Bare:
        status = JobStatus.QUEUED

    bare = Bare()
    assert fire(bare, "expire") is JobStatus.EXPIRED
    assert bare.status is JobStatus.EXPIRED


def test_the_lean_machine_classes_still_run_callbacks_and_conditions_when_there_are_any() -> None:
    # The shared machine's states and transitions skip the callback machinery only because the
    # lifecycle has no callbacks: a machine of the same classes that has some runs them all.
    calls: list[str] = []

    class Model:
        status = JobStatus.QUEUED

    machine = lifecycle._LifecycleMachine(
        model=None,
        states=list(JobStatus),
        initial=JobStatus.QUEUED,
        transitions=[
            {
                "trigger": "start",
                "source": JobStatus.QUEUED,
                "dest": JobStatus.PROCESSING,
                "before": lambda: calls.append("before"),
                "after": lambda: calls.append("after"),
            },
            {
                "trigger": "complete",
                "source": JobStatus.PROCESSING,
                "dest": JobStatus.COMPLETED,
                "conditions": lambda: False,
            },
        ],
        model_attribute="status",
        auto_transitions=False,
        send_event=False,
    )
    machine.get_state(JobStatus.QUEUED).add_callback("exit", lambda: calls.append("exit"))
    machine.get_state(JobStatus.PROCESSING).add_callback("enter", lambda: calls.append("enter"))
    model = Model()
    assert machine.events["start"].trigger(model) is True
    assert model.status is JobStatus.PROCESSING
    assert calls == ["before", "exit", "enter", "after"]
    assert machine.events["complete"].trigger(model) is False  # its condition holds it back
    assert model.status is JobStatus.PROCESSING
    with pytest.raises(ValueError, match="not a registered state"):
        machine.get_state("processing")  # a value is not a state name
    # Each machine finds its own states: the shared lifecycle machine got no callbacks from this one.
    assert machine.get_state(JobStatus.QUEUED) is not lifecycle._MACHINE.get_state(JobStatus.QUEUED)
    assert lifecycle._MACHINE.get_state(JobStatus.QUEUED).on_exit == []
    assert lifecycle._MACHINE.get_state(JobStatus.PROCESSING).on_enter == []


def test_the_lean_event_runs_machine_callbacks_and_reports_invalid_sources_when_there_are_any() -> None:
    # The shared machine's events skip the base protocol only when the machine has nothing to run
    # around a transition: a machine of the same classes with such callbacks runs them.
    calls: list[str] = []

    class Model:
        status = JobStatus.QUEUED

    def machine_with(**callbacks: Any) -> Machine:
        return lifecycle._LifecycleMachine(
            model=None,
            states=list(JobStatus),
            initial=JobStatus.QUEUED,
            transitions=[{"trigger": "start", "source": JobStatus.QUEUED, "dest": JobStatus.PROCESSING}],
            model_attribute="status",
            auto_transitions=False,
            send_event=False,
            **callbacks,
        )

    machine = machine_with(
        prepare_event=lambda: calls.append("prepare"), finalize_event=lambda: calls.append("finalize")
    )
    model = Model()
    assert machine.events["start"].trigger(model) is True
    assert model.status is JobStatus.PROCESSING
    assert calls == ["prepare", "finalize"]
    with pytest.raises(MachineError, match="Can't trigger event start from state PROCESSING"):
        machine.events["start"].trigger(model)

    handled: list[BaseException] = []
    failing = machine_with(on_exception=lambda *a: handled.append(MachineError("seen")))
    failing.get_state(JobStatus.PROCESSING).add_callback("enter", lambda: 1 / 0)
    failing.events["start"].trigger(Model())
    assert len(handled) == 1

    final = machine_with(on_final=lambda: calls.append("final"))
    final.get_state(JobStatus.PROCESSING).final = True
    calls.clear()
    final.events["start"].trigger(Model())
    assert calls == ["final"]
    # The lean path is the shared machine's: its events are the lean class.
    assert all(type(e) is lifecycle._LifecycleEvent for e in lifecycle._MACHINE.events.values())


def test_fire_moves_a_job_exactly_as_the_shared_machine_s_event_does() -> None:
    # fire's fast path sets the status read from the machine at import: every move of the table,
    # because the shared machine has no callbacks; each must be what the machine's event does.
    assert set(lifecycle._PLAIN_MOVES) == {(JobStatus(src), trigger) for src, trigger in MOVES}

    class Model:
        status: JobStatus

    for (src, trigger), dst in MOVES.items():
        by_machine = Model()
        by_machine.status = JobStatus(src)
        assert lifecycle._MACHINE.events[trigger].trigger(by_machine)
        job = make_job(status=JobStatus(src))
        assert fire(job, trigger) is by_machine.status is JobStatus(dst)
        assert job.status is JobStatus(dst)


def test_a_machine_with_callbacks_has_no_plain_moves() -> None:
    # Where a callback would run, fire's fast path must not skip it: such a machine has none.
    def machine(**callbacks: Any) -> Machine:
        return lifecycle._new_machine(**callbacks)

    assert lifecycle._plain_moves(machine()) == lifecycle._PLAIN_MOVES
    for callbacks in (
        {"before_state_change": lambda: None},
        {"after_state_change": lambda: None},
        {"prepare_event": lambda: None},
        {"finalize_event": lambda: None},
        {"on_exception": lambda *a: None},
        {"on_final": lambda: None},
        {"queued": True},
    ):
        assert lifecycle._plain_moves(machine(**callbacks)) == {}, callbacks
    with_enter = machine()
    with_enter.get_state(JobStatus.PROCESSING).add_callback("enter", lambda: None)
    assert lifecycle._plain_moves(with_enter) == {}
    with_condition = machine()
    with_condition.events["start"].transitions["QUEUED"][0].add_callback("before", lambda: None)
    assert lifecycle._plain_moves(with_condition) == {}
