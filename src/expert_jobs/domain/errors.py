"""The exception tree of expert-jobs, sorted by who must act.

::

    ExpertJobsError                    base of everything raised on purpose
    ├── UsageError                     the caller misused the library (fix the code or config)
    │   ├── UnknownModel               a model id not in the catalogue
    │   ├── UnknownExpert              no expert registered under a key
    │   ├── JobNotFound                no job with that id
    │   ├── CannotContinue             the job's status or state does not allow a continue
    │   └── InvalidExpertKey           a string that is not an expert key
    ├── IllegalTransition              a lifecycle move not in the table (job, status, trigger)
    ├── ProviderError                  a model call failed; its ``kind`` says why, ``retryable`` what next
    │   └── ProviderKeyMissing         no API key for the provider of the requested model
    ├── StoreError                     the job store refused or failed
    │   └── StaleJobVersion            an optimistic-concurrency write lost the race
    └── ServiceError                   an API outcome with an HTTP status ``code`` and ``error`` word
        ├── BadRequest          400
        ├── Unauthorized        401
        ├── NotFound            404
        ├── MethodNotAllowed    405
        ├── Conflict            409
        └── ValidationFailed    422

Transports map ``ServiceError`` subclasses by type (their ``code``), never by message text.
Every error carries its context as attributes (job id, status, field) and can be turned into plain
data with :meth:`ExpertJobsError.to_data` so it survives a process hop and a store round trip.

Why a job failed is not an exception but a value: :class:`JobError` (``job.error``,
``checkpoint.error``), whose ``kind`` is a :data:`ProviderErrorKind` (a model call failed for good)
or one of the engine's own :data:`JOB_ONLY_ERROR_KINDS` (``max_steps``, ``job_timeout``, ``usage``,
``internal``, ``invalid_output``).
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Final, Literal, cast, get_args

__all__ = [
    "JOB_ERROR_KINDS",
    "JOB_ONLY_ERROR_KINDS",
    "PROVIDER_ERROR_KINDS",
    "BadRequest",
    "CannotContinue",
    "Conflict",
    "ExpertJobsError",
    "IllegalTransition",
    "InvalidExpertKey",
    "JobError",
    "JobErrorKind",
    "JobNotFound",
    "JobOnlyErrorKind",
    "MethodNotAllowed",
    "NotFound",
    "ProviderError",
    "ProviderErrorKind",
    "ProviderKeyMissing",
    "ServiceError",
    "StaleJobVersion",
    "StoreError",
    "Unauthorized",
    "UnknownExpert",
    "UnknownModel",
    "UsageError",
    "ValidationFailed",
    "check_provider_error_kind",
]


class ExpertJobsError(Exception):
    """Base class of every error expert-jobs raises on purpose."""

    def to_data(self) -> dict[str, Any]:
        """Plain, JSON-ready data describing this error (kind and message)."""
        return {"kind": type(self).__name__, "message": str(self)}


class UsageError(ExpertJobsError):
    """The library was called or configured wrongly; the caller must change something."""


class UnknownModel(UsageError):
    """A model id that is not in the catalogue."""

    def __init__(self, model: str, known: list[str]) -> None:
        self.model = model
        self.known = known
        super().__init__(f"unknown model {model!r}; known models: {', '.join(known)}")


class InvalidExpertKey(UsageError):
    """A string that does not match the expert key pattern."""

    def __init__(self, key: str, why: str) -> None:
        self.key = key
        super().__init__(f"invalid expert key {key!r}: {why}")


class IllegalTransition(ExpertJobsError):
    """A lifecycle move that the table does not allow; the job is left unchanged."""

    def __init__(self, job_id: str | None, status: str, asked: str, allowed: list[str]) -> None:
        self.job_id = job_id
        self.status = status
        self.asked = asked
        self.allowed = allowed
        allowed_text = ", ".join(allowed) if allowed else "nothing (final status)"
        super().__init__(
            f"job {job_id or '<new>'}: cannot {asked} from status {str(status)!r}; "
            f"allowed from there: {allowed_text}"
        )


RetryableProviderErrorKind = Literal[
    "rate_limit",
    "overloaded",
    "server",
    "timeout",
    "connection",
    "conflict",
    "empty_output",
    "invalid_response",
]
"""The :data:`ProviderErrorKind` values a retry may help (see there)."""
FinalProviderErrorKind = Literal["authentication", "bad_request", "not_found", "billing", "other"]
"""The :data:`ProviderErrorKind` values that fail a job at once (see there)."""
ProviderErrorKind = Literal[RetryableProviderErrorKind, FinalProviderErrorKind]
"""Why a model call failed (:attr:`ProviderError.kind`).

Retryable (the engine tries again, up to the job's ``maxRetries``): ``rate_limit`` (HTTP 429),
``overloaded`` (529, 503 "overloaded"), ``server`` (other 5xx), ``timeout`` (the call took longer
than the generation timeout), ``connection`` (the connection failed or dropped), ``conflict``
(409: a request that collided with another, such as a lock timeout), ``empty_output`` (the model
answered nothing), ``invalid_response`` (the provider answered something that is not a
valid response: a non-JSON body, JSON of the wrong shape, absurd usage figures). Final (the job
fails at once): ``authentication`` (401/403, no or a bad API key), ``bad_request`` (400, 413, 422),
``not_found`` (404: an unknown model), ``billing`` (out of credit, quota or spend limit),
``other`` (anything not classified)."""

PROVIDER_ERROR_KINDS: Final[tuple[ProviderErrorKind, ...]] = get_args(ProviderErrorKind)
"""Every :data:`ProviderErrorKind`, in the order above."""


def check_provider_error_kind(kind: object, what: str = "provider error kind") -> ProviderErrorKind:
    """``kind`` if it is a :data:`ProviderErrorKind`, else :class:`UsageError` naming the known
    kinds (and the closest one: ``"overlaoded"`` is refused, never a silent non-retryable
    failure)."""
    if kind in PROVIDER_ERROR_KINDS:
        return kind
    close = difflib.get_close_matches(str(kind), PROVIDER_ERROR_KINDS, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise UsageError(f"unknown {what} {kind!r}{hint}; known kinds: {', '.join(PROVIDER_ERROR_KINDS)}")


class ProviderError(ExpertJobsError):
    """A model call failed.

    ``kind`` is a :data:`ProviderErrorKind` (anything else raises :class:`UsageError` naming the
    known kinds); ``retryable`` defaults to whether the kind is in :attr:`RETRYABLE_KINDS`.
    ``retry_after``: the seconds the provider asked to wait (``Retry-After``); ``status_code``: the
    HTTP status, when there was one; ``usage``: tokens the failed attempt still cost.
    """

    RETRYABLE_KINDS: ClassVar[frozenset[ProviderErrorKind]] = frozenset(get_args(RetryableProviderErrorKind))

    def __init__(
        self,
        message: str,
        *,
        kind: ProviderErrorKind = "other",
        retryable: bool | None = None,
        retry_after: float | None = None,
        status_code: int | None = None,
        provider: str | None = None,
        usage: Any = None,
    ) -> None:
        self.kind: ProviderErrorKind = check_provider_error_kind(kind)
        self.retryable = kind in self.RETRYABLE_KINDS if retryable is None else retryable
        self.retry_after = retry_after
        self.status_code = status_code
        self.provider = provider
        self.usage = usage
        super().__init__(message)

    def to_data(self) -> dict[str, Any]:
        """Plain data: kind, message, retryable, status code and provider."""
        return {
            "kind": self.kind,
            "message": str(self),
            "retryable": self.retryable,
            "statusCode": self.status_code,
            "provider": self.provider,
        }


class ProviderKeyMissing(ProviderError):
    """No API key is configured for the provider a model needs."""

    def __init__(self, provider: str, env_vars: tuple[str, ...] = ()) -> None:
        hint = f" (set {' or '.join(env_vars)})" if env_vars else ""
        super().__init__(
            f"Provider API key not found for {provider}{hint}",
            kind="authentication",
            retryable=False,
            provider=provider,
        )


class StoreError(ExpertJobsError):
    """The job store refused an operation or failed."""


class StaleJobVersion(StoreError):
    """A conditional job write found another version than expected (someone else moved the job)."""

    def __init__(self, job_id: str, expected: int, actual: int | None) -> None:
        self.job_id = job_id
        self.expected = expected
        self.actual = actual
        super().__init__(f"job {job_id}: expected version {expected}, store has {actual}")


class ServiceError(ExpertJobsError):
    """An API outcome: an HTTP status ``code``, its exact ``error`` word and a ``reason``."""

    code: ClassVar[int] = 500
    error: ClassVar[str] = "Internal Server Error"

    def __init__(self, reason: Any) -> None:
        self.reason = reason
        super().__init__(reason if isinstance(reason, str) else repr(reason))

    def body(self) -> dict[str, Any]:
        """The wire error body ``{"code", "error", "reason"}``."""
        return {"code": self.code, "error": self.error, "reason": self.reason}


class BadRequest(ServiceError):
    """400: the request is well-formed but cannot be served."""

    code = 400
    error = "Bad Request"


class Unauthorized(ServiceError):
    """401: missing or bad credentials; the reason is always the spec's fixed text."""

    code = 401
    error = "Unauthorized"

    def __init__(self, reason: str = "Failed to authenticate") -> None:
        super().__init__(reason)


class NotFound(ServiceError):
    """404: the job, expert or route does not exist (or belongs to another application)."""

    code = 404
    error = "Not Found"


class MethodNotAllowed(ServiceError):
    """405: the route exists but not for this method."""

    code = 405
    error = "Method Not Allowed"


class Conflict(ServiceError):
    """409: the job's current status does not allow the asked-for change."""

    code = 409
    error = "Conflict"


class ValidationFailed(ServiceError):
    """422: a path, query or body failed schema validation; the reason names the fields."""

    code = 422
    error = "Validation Failed"


class UnknownExpert(UsageError):
    """No expert is registered under the key (the service answers 404)."""

    def __init__(self, key: str) -> None:
        self.key = key
        super().__init__(f"Expert not found: {key}")


class JobNotFound(UsageError):
    """No job with this id (the service answers 404)."""

    def __init__(self, job_id: str) -> None:
        self.job_id = job_id
        super().__init__(f"Expert job not found: {job_id}")


class CannotContinue(UsageError):
    """A continue that the job's status or state does not allow (the service answers 400)."""

    def __init__(
        self, job_id: str, status: str, reason: str = "Current status is unable to continue"
    ) -> None:
        self.job_id = job_id
        self.status = status
        self.reason = reason
        super().__init__(f"job {job_id} ({status}): {reason}")


JobOnlyErrorKind = Literal["max_steps", "job_timeout", "usage", "internal", "invalid_output"]
"""The kinds of :class:`JobError` that are not a model call's failure: ``max_steps`` (the job
reached its ``maxSteps``: status ``exceededMaxSteps``), ``job_timeout`` (its running time passed
the runtime's ``job_timeout``), ``usage`` (a configuration problem found while running: an unknown
expert, a file refused, a missing API key of an offline setup...; ``exception`` names it),
``internal`` (an unexpected exception: a bug in a tool, a provider adapter or the store;
``exception`` names it, ``step`` is the step that was running) and ``invalid_output`` (the model
kept answering something that does not match the expert's output schema: more than
``maxRetries`` invalid answers in a row)."""

JobErrorKind = Literal[ProviderErrorKind, JobOnlyErrorKind]
"""The kind of a :class:`JobError`: a :data:`ProviderErrorKind` (the job's model call failed for
good) or a :data:`JobOnlyErrorKind`."""

JOB_ONLY_ERROR_KINDS: Final[tuple[JobOnlyErrorKind, ...]] = get_args(JobOnlyErrorKind)
"""Every :data:`JobOnlyErrorKind`."""
JOB_ERROR_KINDS: Final[tuple[JobErrorKind, ...]] = (*PROVIDER_ERROR_KINDS, *JOB_ONLY_ERROR_KINDS)
"""Every :data:`JobErrorKind`: the provider kinds, then the job's own."""

_TYPED_KEYS = {
    "kind": "kind",
    "message": "message",
    "retryable": "retryable",
    "attempt": "attempt",
    "statusCode": "status_code",
    "provider": "provider",
    "jobId": "job_id",
    "step": "step",
    "exception": "exception",
}
"""The data keys :class:`JobError` has a typed field for (data key -> attribute)."""


def _int_or_none(value: Any) -> int | None:
    return value if type(value) is int else None


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) else None


@dataclass(frozen=True, slots=True)
class JobError:
    """Why a job (or a delegate's run) ended without its answer: ``job.error`` and
    ``checkpoint.error`` (``None`` while nothing went wrong).

    ``kind`` is a :data:`JobErrorKind`; ``message`` says what happened, with the numbers
    (``"3 consecutive failed attempts exhausted maxRetries=2: ..."``); ``retryable`` whether the
    last failure was of a kind worth trying again (the engine already did, ``maxRetries`` times).
    Where known: ``attempt`` (the failed model call's attempt number, 1 for the first),
    ``status_code`` (the provider's HTTP status) and ``provider``; ``job_id`` and ``step`` (the
    step that was running); ``exception`` (the exception class of a ``usage`` or ``internal``
    error). ``details`` holds the rest of the context under its data keys (``limitSeconds`` of a
    ``job_timeout``).

    Stores and the API keep it as plain data: :meth:`to_data` (camelCase keys, the same JSON as
    checkpoints always carried) and :meth:`from_data`, which also reads what earlier versions
    wrote. An unknown ``kind`` raises :class:`UsageError`.
    """

    kind: JobErrorKind
    message: str
    retryable: bool = False
    attempt: int | None = None
    status_code: int | None = None
    provider: str | None = None
    job_id: str | None = None
    step: int | None = None
    exception: str | None = None
    details: Mapping[str, Any] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        if self.kind not in JOB_ERROR_KINDS:
            close = difflib.get_close_matches(str(self.kind), JOB_ERROR_KINDS, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise UsageError(
                f"unknown job error kind {self.kind!r}{hint}; known kinds: {', '.join(JOB_ERROR_KINDS)}"
            )
        clash = sorted(set(self.details) & _TYPED_KEYS.keys())
        if clash:
            raise UsageError(f"JobError details must not repeat its fields: {', '.join(clash)}")

    @classmethod
    def from_provider(
        cls,
        error: ProviderError,
        message: str | None = None,
        *,
        attempt: int | None = None,
        job_id: str | None = None,
        step: int | None = None,
    ) -> JobError:
        """The job error of a model call that failed for good (``message`` defaults to the
        error's own)."""
        return cls(
            kind=error.kind,
            message=str(error) if message is None else message,
            retryable=error.retryable,
            attempt=attempt,
            status_code=error.status_code,
            provider=error.provider,
            job_id=job_id,
            step=step,
        )

    def with_message(self, message: str) -> JobError:
        """A copy with another ``message``."""
        return JobError(
            self.kind,
            message,
            self.retryable,
            self.attempt,
            self.status_code,
            self.provider,
            self.job_id,
            self.step,
            self.exception,
            self.details,
        )

    def to_data(self) -> dict[str, Any]:
        """Plain, JSON-ready data: ``kind``, ``message`` and ``retryable`` always; ``statusCode``
        and ``provider`` always for a provider kind (``null`` when unknown); ``attempt``,
        ``jobId``, ``step`` and ``exception`` when known; then :attr:`details`."""
        data: dict[str, Any] = {"kind": self.kind, "message": self.message, "retryable": self.retryable}
        if self.attempt is not None:
            data["attempt"] = self.attempt
        provider_kind = self.kind in PROVIDER_ERROR_KINDS
        if provider_kind or self.status_code is not None:
            data["statusCode"] = self.status_code
        if provider_kind or self.provider is not None:
            data["provider"] = self.provider
        if self.job_id is not None:
            data["jobId"] = self.job_id
        if self.step is not None:
            data["step"] = self.step
        if self.exception is not None:
            data["exception"] = self.exception
        data.update(self.details)
        return data

    @classmethod
    def from_data(cls, data: Mapping[str, Any]) -> JobError:
        """Rebuild a job error from :meth:`to_data`'s output, or from what an earlier version
        stored: an error without ``kind`` (only a ``maxSteps`` stop stored one) reads as
        ``max_steps``, one whose kind is an exception's class name (a configuration problem) as
        ``usage`` with that name as ``exception``, any other unknown kind as ``other`` with it kept
        in ``details`` under ``storedKind``."""
        details = {key: value for key, value in data.items() if key not in _TYPED_KEYS}
        kind = data.get("kind")
        exception = _str_or_none(data.get("exception"))
        if kind is None:
            kind = "max_steps"
        elif kind not in JOB_ERROR_KINDS:
            if isinstance(kind, str) and kind[:1].isupper() and kind.isidentifier():
                exception = exception or kind
                kind = "usage"
            else:
                details["storedKind"] = kind
                kind = "other"
        message = data.get("message")
        return cls(
            kind=cast(JobErrorKind, kind),
            message=message if isinstance(message, str) else "" if message is None else str(message),
            retryable=data.get("retryable") is True,
            attempt=_int_or_none(data.get("attempt")),
            status_code=_int_or_none(data.get("statusCode")),
            provider=_str_or_none(data.get("provider")),
            job_id=_str_or_none(data.get("jobId")),
            step=_int_or_none(data.get("step")),
            exception=exception,
            details=details,
        )
