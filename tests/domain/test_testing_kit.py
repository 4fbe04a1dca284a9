"""The user-facing test kit: its surface, its lifecycle strategies, and that its state machine
catches broken lifecycles (each mutant below breaks one promise and must be caught)."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, run_state_machine_as_test

import expert_jobs.testing as kit
from expert_jobs import IllegalTransition, JobStatus
from expert_jobs.domain import lifecycle
from expert_jobs.domain.lifecycle import TRIGGERS, allowed_triggers, next_status
from expert_jobs.domain.status import FINAL_STATUSES
from expert_jobs.testing import (
    LifecycleStateMachine,
    illegal_triggers_for,
    legal_trigger_sequences,
    statuses,
    triggers,
)


def test_all_is_sorted_and_documented() -> None:
    assert kit.__all__ == sorted(kit.__all__, key=lambda n: (not n.isupper(), n))
    for name in kit.__all__:
        value = getattr(kit, name)
        if callable(value):
            assert value.__doc__, f"{name} has no docstring"


def test_the_kit_says_which_extra_to_install_when_hypothesis_is_missing() -> None:
    code = "import sys; sys.modules['hypothesis'] = None; import expert_jobs.testing"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode != 0
    assert "pip install 'expert-jobs[testing]'" in result.stderr


@given(statuses(final=True))
def test_final_statuses_strategy(status: JobStatus) -> None:
    assert status in FINAL_STATUSES


@given(statuses(final=False))
def test_non_final_statuses_strategy(status: JobStatus) -> None:
    assert status not in FINAL_STATUSES


@given(triggers())
def test_triggers_strategy(trigger: str) -> None:
    assert trigger in TRIGGERS


@given(st.data())
def test_legal_sequences_are_legal_step_by_step_and_bounded(data: st.DataObject) -> None:
    start = data.draw(statuses())
    size = data.draw(st.integers(0, 8))
    walk = data.draw(legal_trigger_sequences(start=start.value, max_size=size))
    assert len(walk) <= size
    status: JobStatus | None = start
    for trigger in walk:
        assert status is not None
        assert trigger in allowed_triggers(status)
        status = next_status(status, trigger)
    assert status is not None


@given(legal_trigger_sequences(start=JobStatus.CANCELED))
def test_no_legal_sequence_leaves_a_final_status(walk: list[str]) -> None:
    assert walk == []


def test_legal_sequences_refuse_a_negative_size() -> None:
    with pytest.raises(ValueError, match="max_size"):
        legal_trigger_sequences(max_size=-1)


@given(st.data())
def test_illegal_triggers_are_illegal(data: st.DataObject) -> None:
    status = data.draw(statuses())
    trigger = data.draw(illegal_triggers_for(status))
    assert next_status(status, trigger) is None


# --- the state machine catches broken lifecycles ---------------------------------------------

MUTANT_SETTINGS = settings(
    max_examples=300,
    deadline=None,
    database=None,
    derandomize=True,
    report_multiple_bugs=False,
    phases=[Phase.generate],
    suppress_health_check=list(HealthCheck),
)


class WrongDestination(LifecycleStateMachine):
    """``start`` lands in ``failed`` instead of ``processing``."""

    def fire(self, job: Any, trigger: str) -> Any:
        status = lifecycle.fire(job, trigger)
        if trigger == "start":
            job.status = status = JobStatus.FAILED
        return status


class WrongReturnValue(LifecycleStateMachine):
    """Moves right but reports the old status."""

    def fire(self, job: Any, trigger: str) -> Any:
        before = job.status
        lifecycle.fire(job, trigger)
        return before


class SilentIllegal(LifecycleStateMachine):
    """Swallows illegal moves."""

    def fire(self, job: Any, trigger: str) -> Any:
        try:
            return lifecycle.fire(job, trigger)
        except IllegalTransition:
            return job.status


class DirtyIllegal(LifecycleStateMachine):
    """Raises on an illegal move but bumps the job's version first."""

    def fire(self, job: Any, trigger: str) -> Any:
        try:
            return lifecycle.fire(job, trigger)
        except IllegalTransition:
            job.version += 1
            raise


class AnonymousError(LifecycleStateMachine):
    """Raises on an illegal move without naming the job."""

    def fire(self, job: Any, trigger: str) -> Any:
        try:
            return lifecycle.fire(job, trigger)
        except IllegalTransition as exc:
            raise IllegalTransition(None, exc.status, exc.asked, exc.allowed) from None


class LeakyFinal(LifecycleStateMachine):
    """Lets a canceled job take a follow-up."""

    def fire(self, job: Any, trigger: str) -> Any:
        if job.status is JobStatus.CANCELED and trigger == "follow_up":
            job.status = JobStatus.QUEUED
            return job.status
        return lifecycle.fire(job, trigger)


@pytest.mark.parametrize(
    "mutant",
    [WrongDestination, WrongReturnValue, SilentIllegal, DirtyIllegal, AnonymousError, LeakyFinal],
)
def test_the_state_machine_catches_a_broken_lifecycle(mutant: type[RuleBasedStateMachine]) -> None:
    with pytest.raises(AssertionError):
        run_state_machine_as_test(mutant, settings=MUTANT_SETTINGS)
