"""A reusable hypothesis ``RuleBasedStateMachine`` of the job lifecycle."""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from expert_jobs.domain import lifecycle
from expert_jobs.domain.errors import IllegalTransition
from expert_jobs.domain.ids import new_id
from expert_jobs.domain.job import Job
from expert_jobs.domain.models import DEFAULT_MODEL
from expert_jobs.domain.status import FINAL_STATUSES, JobStatus
from expert_jobs.domain.usage import Usage
from expert_jobs.testing._strategies import statuses, triggers
from expert_jobs.testing._table import ALLOWED, FORBIDDEN, MOVES

__all__ = ["LifecycleStateMachine"]


def _attributes(obj: object) -> dict[str, Any]:
    """Every attribute ``obj`` holds (slots and ``__dict__``), deep-copied."""
    names: list[str] = []
    for klass in type(obj).__mro__:
        slots = klass.__dict__.get("__slots__", ())
        names.extend([slots] if isinstance(slots, str) else slots)
    values = {n: getattr(obj, n) for n in names if n not in ("__dict__", "__weakref__") and hasattr(obj, n)}
    values.update(getattr(obj, "__dict__", {}))
    return copy.deepcopy(values)


class LifecycleStateMachine(RuleBasedStateMachine):
    """The job lifecycle as a hypothesis state machine, checked against the ``TRANSITIONS`` table.

    Each run makes one job in a status drawn from all ten, then fires triggers at it:

    - a legal trigger moves the job to exactly the table's destination, and :meth:`fire` returns it;
    - an illegal trigger raises :class:`~expert_jobs.IllegalTransition` naming the job id, its status
      and the trigger, and leaves every attribute of the job unchanged;
    - the final statuses (``canceled``, ``expired``) absorb everything: every trigger is illegal there.

    Run it as it is (``TestLifecycle = LifecycleStateMachine.TestCase``) or subclass it to check your
    own job-like object: override :meth:`make_job` to build it and :meth:`fire` if it moves some
    other way than :func:`expert_jobs.domain.lifecycle.fire` (your own method, a store, a service).
    Add rules and invariants of your own in the subclass; ``self.job`` is the job under test and
    ``self.expected`` the status the table says it has. Settings go on the test case:
    ``TestLifecycle.settings = hypothesis.settings(max_examples=200)``.
    """

    def __init__(self) -> None:
        super().__init__()
        self.job: Any = None
        self.expected: JobStatus = JobStatus.QUEUED
        self.moves: list[str] = []

    # --- hooks a subclass may override -----------------------------------------------------

    def make_job(self, status: JobStatus) -> Any:
        """A new job-like object in ``status``; by default an :class:`~expert_jobs.Job` with fresh ids."""
        return Job(
            id=new_id(),
            organization_id=new_id(),
            application_id=new_id(),
            expert_key="lifecycle@1.0.0",
            expert={"key": "lifecycle@1.0.0"},
            model=DEFAULT_MODEL,
            temperature=0.0,
            max_steps=100,
            max_retries=5,
            created_at=0.0,
            status=status,
            usage=Usage.of(10, 2),
        )

    def fire(self, job: Any, trigger: str) -> Any:
        """Fire ``trigger`` on ``job`` and return its new status (the shared machine by default)."""
        return lifecycle.fire(job, trigger)

    def status_of(self, job: Any) -> Any:
        """The job's current status (``job.status`` by default)."""
        return job.status

    def job_id_of(self, job: Any) -> str | None:
        """The id an :class:`~expert_jobs.IllegalTransition` must name (``job.id`` by default)."""
        return getattr(job, "id", None)

    def snapshot(self, job: Any) -> Any:
        """A deep copy of the job's state, compared before and after an illegal trigger."""
        return _attributes(job)

    # --- the checks -----------------------------------------------------------------------

    def check_legal(self, trigger: str) -> None:
        """Fire a trigger the table allows and check the job lands exactly where the table says."""
        source = self.expected
        dest = MOVES[(source, trigger)]
        returned = self.fire(self.job, trigger)
        move = f"{trigger} from {source.value}"
        assert returned == dest, f"{move} returned {returned!r}, table says {dest.value}"
        now = self.status_of(self.job)
        assert now == dest, f"{move} moved the job to {now!r}, table says {dest.value}"
        self.expected = dest
        self.moves.append(trigger)

    def check_illegal(self, trigger: str) -> None:
        """Fire a trigger the table forbids: it must raise ``IllegalTransition`` and change nothing."""
        source = self.expected
        before = self.snapshot(self.job)
        try:
            self.fire(self.job, trigger)
        except IllegalTransition as exc:
            job_id = self.job_id_of(self.job)
            assert exc.job_id == job_id, f"error names job {exc.job_id!r}, not {job_id!r}"
            assert exc.status == source, f"error names status {exc.status!r}, not {source.value!r}"
            assert exc.asked == trigger, f"error names trigger {exc.asked!r}, not {trigger!r}"
            allowed = list(ALLOWED[source])
            assert list(exc.allowed) == allowed, (
                f"error lists {exc.allowed} as allowed from {source.value}, table says {allowed}"
            )
            message = str(exc)
            for word in (str(job_id), source.value, trigger):
                assert word in message, f"{word!r} missing from the error message {message!r}"
        else:
            raise AssertionError(
                f"{trigger} from {source.value} should raise IllegalTransition "
                f"(the job is now {self.status_of(self.job)!r})"
            )
        after = self.snapshot(self.job)
        assert after == before, f"illegal {trigger} from {source.value} changed the job: {before} -> {after}"

    # --- rules ----------------------------------------------------------------------------

    @initialize(status=statuses())
    def new_job(self, status: JobStatus) -> None:
        """Start from a fresh job in any status."""
        self.job = self.make_job(status)
        self.expected = status
        assert self.status_of(self.job) == status

    @precondition(lambda self: bool(ALLOWED[self.expected]))
    @rule(data=st.data())
    def legal_trigger(self, data: st.DataObject) -> None:
        """Fire a trigger the table allows from the current status."""
        self.check_legal(data.draw(st.sampled_from(ALLOWED[self.expected]), label="trigger"))

    @rule(data=st.data())
    def illegal_trigger(self, data: st.DataObject) -> None:
        """Fire a trigger the table forbids from the current status."""
        self.check_illegal(data.draw(st.sampled_from(FORBIDDEN[self.expected]), label="trigger"))

    @rule(trigger=triggers())
    def any_trigger(self, trigger: str) -> None:
        """Fire any trigger: it must behave as the table says, legal or not."""
        if (self.expected, trigger) in MOVES:
            self.check_legal(trigger)
        else:
            self.check_illegal(trigger)

    @precondition(lambda self: self.expected in FINAL_STATUSES)
    @rule()
    def final_absorbs_everything(self) -> None:
        """From a final status every trigger is illegal and leaves the job as it is."""
        for trigger in lifecycle.TRIGGERS:
            self.check_illegal(trigger)

    @invariant()
    def status_matches_the_table(self) -> None:
        """The job's status is always the one the table predicts."""
        if self.job is not None:
            now = self.status_of(self.job)
            expected = self.expected.value
            assert now == self.expected, f"job is {now!r} after {self.moves}, table says {expected}"
