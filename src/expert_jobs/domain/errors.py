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
    ├── ProviderError                  a model call failed; ``retryable`` says whether to try again
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
"""

from __future__ import annotations

from typing import Any, ClassVar

__all__ = [
    "BadRequest",
    "CannotContinue",
    "Conflict",
    "ExpertJobsError",
    "IllegalTransition",
    "InvalidExpertKey",
    "JobNotFound",
    "MethodNotAllowed",
    "NotFound",
    "ProviderError",
    "ProviderKeyMissing",
    "ServiceError",
    "StaleJobVersion",
    "StoreError",
    "Unauthorized",
    "UnknownExpert",
    "UnknownModel",
    "UsageError",
    "ValidationFailed",
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


class ProviderError(ExpertJobsError):
    """A model call failed.

    ``kind`` is one of ``rate_limit``, ``overloaded``, ``server``, ``timeout``, ``connection``,
    ``empty_output``, ``invalid_response`` (the provider answered something that is not a valid
    response: a non-JSON body, JSON of the wrong shape, absurd usage figures), ``authentication``,
    ``bad_request``, ``not_found``, ``billing`` (out of credit, quota or spend limit), ``other``.
    """

    RETRYABLE_KINDS: ClassVar[frozenset[str]] = frozenset(
        {"rate_limit", "overloaded", "server", "timeout", "connection", "empty_output", "invalid_response"}
    )

    def __init__(
        self,
        message: str,
        *,
        kind: str = "other",
        retryable: bool | None = None,
        retry_after: float | None = None,
        status_code: int | None = None,
        provider: str | None = None,
        usage: Any = None,
    ) -> None:
        self.kind = kind
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
