"""Test kit for users of expert-jobs: hypothesis strategies (of what a model does to your expert,
and of the domain's values) and a lifecycle state machine. The guide is ``docs/testing.md``.

Needs hypothesis (``pip install 'expert-jobs[testing]'``); ``import expert_jobs`` never imports it.

::

    from hypothesis import given
    from expert_jobs.testing import LifecycleStateMachine, scripts_for, start_requests

    @given(scripts_for(make_runtime(), "calculator@1.0.0"))   # whatever the model does...
    def test_my_expert(scripts): ...                          # ...ScriptedProvider(scripts)

    TestLifecycle = LifecycleStateMachine.TestCase       # the lifecycle, checked against its table

    @given(start_requests(expert_key="writer@1.0.0"))
    def test_my_api_starts_jobs(body): ...

Your expert: :func:`scripts_for`, :func:`turns_for`, :func:`arguments_for`, for an expert with
an output schema :func:`valid_answers` and :func:`invalid_answers`, and to state
invariants :func:`run_until_settled` and :func:`run_histories`. The domain: :func:`statuses`,
:func:`triggers`, :func:`legal_trigger_sequences`, :func:`illegal_triggers_for`, :func:`ids`,
:func:`invalid_ids`, :func:`expert_keys`, :func:`invalid_expert_keys`, :func:`start_requests`,
:func:`invalid_start_requests`, :func:`usages`.
"""

try:
    import hypothesis  # noqa: F401
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError("expert_jobs.testing needs hypothesis: pip install 'expert-jobs[testing]'") from exc

from expert_jobs.testing._scripts import (
    FAILURE_KINDS,
    NON_RETRYABLE_KINDS,
    RETRYABLE_KINDS,
    arguments_for,
    invalid_answers,
    run_histories,
    run_until_settled,
    scripts_for,
    turns_for,
    valid_answers,
)
from expert_jobs.testing._statemachine import LifecycleStateMachine
from expert_jobs.testing._strategies import (
    START_REQUEST_FIELDS,
    expert_keys,
    ids,
    illegal_triggers_for,
    invalid_expert_keys,
    invalid_ids,
    invalid_start_requests,
    legal_trigger_sequences,
    start_requests,
    statuses,
    triggers,
    usages,
)

__all__ = [
    "FAILURE_KINDS",
    "NON_RETRYABLE_KINDS",
    "RETRYABLE_KINDS",
    "START_REQUEST_FIELDS",
    "LifecycleStateMachine",
    "arguments_for",
    "expert_keys",
    "ids",
    "illegal_triggers_for",
    "invalid_answers",
    "invalid_expert_keys",
    "invalid_ids",
    "invalid_start_requests",
    "legal_trigger_sequences",
    "run_histories",
    "run_until_settled",
    "scripts_for",
    "start_requests",
    "statuses",
    "triggers",
    "turns_for",
    "usages",
    "valid_answers",
]
