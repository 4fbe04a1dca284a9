"""The service layer: the API's operations as typed async methods (:class:`ExpertJobsService`),
and the applications and keys allowed to call them."""

from expert_jobs.service.applications import (
    Application,
    KeyRing,
    Principal,
    SystemPrincipal,
    generate_key,
    hash_key,
)
from expert_jobs.service.service import (
    PROVIDER_KEY_NOT_FOUND,
    QUERY_OR_FILES_REQUIRED,
    CheckpointPage,
    CheckpointPageQuery,
    ExpertJobsService,
    JobPage,
)

__all__ = [
    "PROVIDER_KEY_NOT_FOUND",
    "QUERY_OR_FILES_REQUIRED",
    "Application",
    "CheckpointPage",
    "CheckpointPageQuery",
    "ExpertJobsService",
    "JobPage",
    "KeyRing",
    "Principal",
    "SystemPrincipal",
    "generate_key",
    "hash_key",
]
