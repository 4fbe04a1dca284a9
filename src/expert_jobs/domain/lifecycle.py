"""The job lifecycle: one ``transitions`` machine, defined once, shared by every job.

Jobs are never registered with the machine (no ``add_model``, no per-job machine): a job only
carries a ``status`` attribute and :func:`fire` runs the shared machine's event on it. The table in
:data:`TRANSITIONS` is the single source of truth for the engine, the system status-update
endpoint, the Mermaid diagram and the property tests.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from transitions import Event, EventData, Machine, MachineError, State, Transition

from expert_jobs.domain.errors import IllegalTransition, UsageError
from expert_jobs.domain.status import JobStatus

__all__ = [
    "TRANSITIONS",
    "TRIGGERS",
    "HasStatus",
    "allowed_triggers",
    "can_transition",
    "can_trigger",
    "fire",
    "mermaid_diagram",
    "next_status",
    "trigger_for",
]

S = JobStatus

TRANSITIONS: tuple[tuple[str, tuple[JobStatus, ...], JobStatus], ...] = (
    ("start", (S.QUEUED,), S.PROCESSING),
    ("complete", (S.PROCESSING,), S.COMPLETED),
    ("exceed_max_steps", (S.PROCESSING,), S.EXCEEDED_MAX_STEPS),
    ("fail", (S.QUEUED, S.PROCESSING), S.FAILED),
    ("request_interactive_tool_result", (S.PROCESSING,), S.REQUEST_INTERACTIVE_TOOL_RESULT),
    ("request_delegate_result", (S.PROCESSING,), S.REQUEST_DELEGATE_RESULT),
    ("resume", (S.REQUEST_INTERACTIVE_TOOL_RESULT, S.REQUEST_DELEGATE_RESULT), S.QUEUED),
    ("follow_up", (S.COMPLETED, S.EXCEEDED_MAX_STEPS, S.FAILED), S.QUEUED),
    ("requeue", (S.PROCESSING,), S.QUEUED),
    (
        "cancel",
        (S.QUEUED, S.PROCESSING, S.REQUEST_INTERACTIVE_TOOL_RESULT, S.REQUEST_DELEGATE_RESULT),
        S.CANCELING,
    ),
    ("finish_cancel", (S.CANCELING,), S.CANCELED),
    ("expire", (S.QUEUED, S.REQUEST_INTERACTIVE_TOOL_RESULT, S.REQUEST_DELEGATE_RESULT), S.EXPIRED),
)
"""``(trigger, sources, destination)`` rows, exactly the lifecycle table of docs/architecture.md."""

TRIGGERS: tuple[str, ...] = tuple(row[0] for row in TRANSITIONS)


class HasStatus(Protocol):
    """Anything with a mutable ``status`` can go through the lifecycle (a job, a test double)."""

    status: JobStatus


class _LifecycleState(State):
    """A lifecycle state. The lifecycle has no enter or exit callbacks, so entering or leaving a
    state has nothing to run (the base class logs and walks its empty callback lists each time);
    its name is read once (the base class converts the enum member on every access)."""

    def __init__(self, name: JobStatus | str, *args: Any, **kwargs: Any) -> None:
        super().__init__(name, *args, **kwargs)
        self._plain_name: str = name.name if isinstance(name, JobStatus) else name

    @property
    def name(self) -> str:
        """The state's name (the ``JobStatus`` member's name)."""
        return self._plain_name

    def enter(self, event_data: EventData) -> None:
        """Run the enter callbacks, if the state has any."""
        if self.on_enter:
            super().enter(event_data)

    def exit(self, event_data: EventData) -> None:
        """Run the exit callbacks, if the state has any."""
        if self.on_exit:
            super().exit(event_data)


class _LifecycleTransition(Transition):
    """A lifecycle transition. With no callbacks or conditions on it or on the machine (the
    lifecycle has none) executing it is changing the state; otherwise the base class runs them."""

    def execute(self, event_data: EventData) -> bool:
        """Move the model to ``dest`` (running callbacks and conditions if there are any)."""
        machine = event_data.machine
        if (
            self.prepare
            or self.conditions
            or self.before
            or self.after
            or machine.before_state_change
            or machine.after_state_change
        ):
            return bool(super().execute(event_data))
        if self.dest is not None:  # None: an internal transition, which changes no state
            self._change_state(event_data)
        return True

    def _change_state(self, event_data: EventData) -> None:
        machine = event_data.machine
        assert self.dest is not None
        dest = machine.get_state(self.dest)
        if machine.get_state(self.source).on_exit or dest.on_enter or (dest.final and machine.on_final):
            super()._change_state(event_data)
            return
        # What Machine.set_state does for one model, without making a list of it.
        setattr(event_data.model, machine.model_attribute, dest.value)
        event_data.state = dest


class _LifecycleEvent(Event):
    """A lifecycle event. With nothing to run around it (no arguments, no event queue, no
    prepare/finalize/exception callbacks on the machine: the lifecycle has none) triggering it is
    executing its transition from the model's state, without the base class's wrapping of that
    in a deferred call and two callback passes; otherwise the base class runs the whole protocol.
    """

    def trigger(self, model: Any, *args: Any, **kwargs: Any) -> bool:
        """Execute the event's transition from ``model``'s state (``MachineError`` if none)."""
        machine = self.machine
        if args or kwargs or machine.has_queue or machine.prepare_event or machine.finalize_event:
            return bool(super().trigger(model, *args, **kwargs))
        attribute = machine.model_attribute
        state = machine.get_state(getattr(model, attribute))  # what get_model_state does
        transitions = self.transitions.get(state.name)
        if transitions is None or machine.on_exception:
            return bool(super().trigger(model))  # an invalid source is the base class's to report
        if len(transitions) == 1:
            # One transition with nothing to run before, around or after it (the lifecycle's): its
            # execution is setting the model's state, which needs no EventData for callbacks.
            transition = transitions[0]
            dest_name = transition.dest
            if dest_name is not None and not (
                transition.prepare
                or transition.conditions
                or transition.before
                or transition.after
                or machine.before_state_change
                or machine.after_state_change
                or state.on_exit
            ):
                dest = machine.get_state(dest_name)
                if not (dest.on_enter or (dest.final and machine.on_final)):
                    setattr(model, attribute, dest.value)
                    return True
        event_data = EventData(state, self, machine, model, args=(), kwargs={})
        for transition in transitions:
            event_data.transition = transition
            if transition.execute(event_data):
                return True
        return False


class _LifecycleMachine(Machine):
    """The ``transitions`` machine with lifecycle states, transitions and events; states are found
    by member or name in one lookup."""

    state_cls = _LifecycleState
    transition_cls = _LifecycleTransition
    event_cls = _LifecycleEvent

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._by_status: dict[JobStatus, State] = {}
        super().__init__(*args, **kwargs)
        self._by_status.update({s: self.states[s.name] for s in JobStatus if s.name in self.states})

    def get_state(self, state: Any) -> State:
        """The state of ``state`` (a ``JobStatus`` member or its name)."""
        found = self._by_status.get(state) if type(state) is JobStatus else self.states.get(state)
        return found if found is not None else super().get_state(state)


def _new_machine(**options: Any) -> _LifecycleMachine:
    """A machine of the lifecycle table (``options``: more of ``Machine``'s, e.g. callbacks)."""
    return _LifecycleMachine(
        model=None,
        states=list(JobStatus),
        initial=S.QUEUED,
        transitions=[{"trigger": t, "source": list(src), "dest": dst} for t, src, dst in TRANSITIONS],
        model_attribute="status",
        auto_transitions=False,
        ignore_invalid_triggers=False,
        send_event=False,
        **options,
    )


_MACHINE = _new_machine()

_EVENTS: Mapping[str, Any] = {name: _MACHINE.events[name] for name in TRIGGERS}
_NEXT: dict[tuple[JobStatus, str], JobStatus] = {}
_TRIGGER_FOR: dict[tuple[JobStatus, JobStatus], str] = {}
_ALLOWED: dict[JobStatus, list[str]] = {status: [] for status in JobStatus}
for _name, _event in _EVENTS.items():
    for _source_name, _transitions in _event.transitions.items():
        _source = JobStatus[_source_name]
        _dest = JobStatus[_transitions[0].dest]
        _NEXT[(_source, _name)] = _dest
        _TRIGGER_FOR[(_source, _dest)] = _name
        _ALLOWED[_source].append(_name)


def _plain_moves(machine: Machine) -> dict[tuple[JobStatus, str], JobStatus]:
    """The moves of ``machine`` whose whole execution is setting the model's status: every move,
    when the machine, its states and its transitions have no callbacks, conditions or queue (the
    lifecycle's machine, which this module builds once and never changes); else none."""
    if (
        machine.has_queue
        or machine.prepare_event
        or machine.finalize_event
        or machine.on_exception
        or machine.before_state_change
        or machine.after_state_change
        or machine.on_final
        or any(state.on_enter or state.on_exit or state.final for state in machine.states.values())
    ):
        return {}
    moves: dict[tuple[JobStatus, str], JobStatus] = {}
    for name, event in machine.events.items():
        for source, transitions in event.transitions.items():
            only = transitions[0]
            if len(transitions) > 1 or only.dest is None:
                return {}
            if only.prepare or only.conditions or only.before or only.after:
                return {}
            moves[(JobStatus[source], name)] = JobStatus[only.dest]
    return moves


# What the shared machine's events do, read from it once: the lifecycle has no callbacks, so each
# move is a status change (``fire``'s fast path; a machine with callbacks would have none here).
_PLAIN_MOVES = _plain_moves(_MACHINE)


def fire(job: HasStatus, trigger: str, *, job_id: str | None = None) -> JobStatus:
    """Run ``trigger`` on ``job`` through the shared machine and return its new status.

    Raises :class:`IllegalTransition` (and leaves the job unchanged) when the table has no such
    move from the job's status, and :class:`UsageError` for a trigger name that does not exist.
    """
    status = job.status
    if type(status) is JobStatus:
        # The shared machine's move, as read from it at import (see _plain_moves): setting the
        # status is all its event would do (2 µs less a move than the event's own checks).
        dest = _PLAIN_MOVES.get((status, trigger))
        if dest is not None:
            job.status = dest
            return dest
    event = _EVENTS.get(trigger)
    if event is None:
        raise UsageError(f"unknown lifecycle trigger {trigger!r}; known: {', '.join(TRIGGERS)}")
    if (status, trigger) not in _NEXT:
        raise IllegalTransition(_job_id(job, job_id), status, trigger, _ALLOWED[JobStatus(status)])
    try:
        event.trigger(job)
    except MachineError as exc:  # pragma: no cover - the pre-check above mirrors the machine
        raise IllegalTransition(_job_id(job, job_id), status, trigger, _ALLOWED[JobStatus(status)]) from exc
    return job.status


def _job_id(job: object, job_id: str | None) -> str | None:
    return job_id if job_id is not None else getattr(job, "id", None)


def next_status(status: JobStatus, trigger: str) -> JobStatus | None:
    """Where ``trigger`` leads from ``status``, or ``None`` if it is not allowed there."""
    return _NEXT.get((status, trigger))


def can_trigger(status: JobStatus, trigger: str) -> bool:
    """Whether ``trigger`` is allowed from ``status``."""
    return (status, trigger) in _NEXT


def can_transition(src: JobStatus | str, dst: JobStatus | str) -> bool:
    """Whether some trigger moves a job from ``src`` to ``dst``."""
    return (JobStatus(src), JobStatus(dst)) in _TRIGGER_FOR


def trigger_for(src: JobStatus | str, dst: JobStatus | str) -> str | None:
    """The trigger that moves ``src`` to ``dst`` (used by the system status update), or ``None``."""
    return _TRIGGER_FOR.get((JobStatus(src), JobStatus(dst)))


def allowed_triggers(status: JobStatus | str) -> list[str]:
    """The triggers allowed from ``status`` (empty for the final statuses)."""
    return list(_ALLOWED[JobStatus(status)])


def mermaid_diagram() -> str:
    """The lifecycle as a Mermaid ``stateDiagram-v2``, read from the shared machine itself."""
    lines = ["stateDiagram-v2", f"    [*] --> {S.QUEUED.value}"]
    for name, event in _EVENTS.items():
        for source_name, transitions in event.transitions.items():
            dest = JobStatus[transitions[0].dest].value
            lines.append(f"    {JobStatus[source_name].value} --> {dest}: {name}")
    for status in (S.CANCELED, S.EXPIRED):
        lines.append(f"    {status.value} --> [*]")
    return "\n".join(lines)
