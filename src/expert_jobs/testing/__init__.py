"""Test kit for users of expert-jobs: hypothesis strategies and a lifecycle state machine.

Needs hypothesis (``pip install 'expert-jobs[testing]'``); ``import expert_jobs`` never imports it.

::

    from hypothesis import given
    from expert_jobs.testing import LifecycleStateMachine, legal_trigger_sequences, start_requests

    TestLifecycle = LifecycleStateMachine.TestCase       # the lifecycle, checked against its table

    @given(start_requests(expert_key="writer@1.0.0"))
    def test_my_api_starts_jobs(body): ...

Strategies: :func:`statuses`, :func:`triggers`, :func:`legal_trigger_sequences`,
:func:`illegal_triggers_for`, :func:`ids`, :func:`invalid_ids`, :func:`expert_keys`,
:func:`invalid_expert_keys`, :func:`start_requests`, :func:`invalid_start_requests`, :func:`usages`.
"""

try:
    import hypothesis  # noqa: F401
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError("expert_jobs.testing needs hypothesis: pip install 'expert-jobs[testing]'") from exc

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
    "START_REQUEST_FIELDS",
    "LifecycleStateMachine",
    "expert_keys",
    "ids",
    "illegal_triggers_for",
    "invalid_expert_keys",
    "invalid_ids",
    "invalid_start_requests",
    "legal_trigger_sequences",
    "start_requests",
    "statuses",
    "triggers",
    "usages",
]
