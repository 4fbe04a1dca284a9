"""expert-jobs: a fast, durable job runtime for LLM expert jobs.

An expert (instruction + tools + delegates) works on a query step by step through a model
provider until it answers, pauses for a person or another expert, runs out of steps, fails, is
canceled or expires. See the README for a tour; ``docs/architecture.md`` for the design.
"""

from expert_jobs.domain.checkpoint import Checkpoint, Delegation
from expert_jobs.domain.cost import Cost, format_cost
from expert_jobs.domain.errors import (
    BadRequest,
    CannotContinue,
    Conflict,
    ExpertJobsError,
    IllegalTransition,
    InvalidExpertKey,
    JobError,
    JobErrorKind,
    JobNotFound,
    NotFound,
    ProviderError,
    ProviderErrorKind,
    ProviderKeyMissing,
    ServiceError,
    StaleJobVersion,
    StoreError,
    Unauthorized,
    UnknownExpert,
    UnknownModel,
    UsageError,
    ValidationFailed,
)
from expert_jobs.domain.events import JobEvent
from expert_jobs.domain.expert_key import ExpertKey, parse_expert_key
from expert_jobs.domain.experts import ExpertDefinition, ExpertRegistry, InteractiveToolSpec
from expert_jobs.domain.ids import new_id
from expert_jobs.domain.job import Job, JobQuery
from expert_jobs.domain.lifecycle import can_transition, mermaid_diagram, trigger_for
from expert_jobs.domain.messages import (
    AssistantMessage,
    FilePart,
    TextPart,
    ThinkingPart,
    ToolCall,
    ToolResult,
    ToolResultsMessage,
    UserMessage,
)
from expert_jobs.domain.models import MODELS, ModelCatalogue, ModelInfo
from expert_jobs.domain.output import JobResult, OutputInvalid, OutputSpec
from expert_jobs.domain.status import JobStatus
from expert_jobs.domain.usage import Usage
from expert_jobs.domain.wire import ExpertJob, StartJobRequest
from expert_jobs.engine.files import Workspace
from expert_jobs.engine.mcp import McpHttpServer, McpStdioServer
from expert_jobs.engine.pricing import PricesUnavailable, job_cost, price_usage
from expert_jobs.engine.runtime import Runtime
from expert_jobs.engine.settings import RuntimeSettings
from expert_jobs.engine.tools import Tool, tool
from expert_jobs.engine.tracing import JobTracing, enable_tracing
from expert_jobs.engine.worker import Worker
from expert_jobs.ports.clock import Clock, FakeClock, SystemClock
from expert_jobs.ports.provider import (
    GenerationRequest,
    GenerationResponse,
    Provider,
    ProviderResolver,
    ReasoningSettings,
    ToolDeclaration,
)
from expert_jobs.ports.store import JobStore
from expert_jobs.providers.scripted import (
    Call,
    Fail,
    FunctionProvider,
    Reply,
    ScriptedProvider,
    TestProvider,
    ToolCalls,
)
from expert_jobs.service.service import ExpertJobsService
from expert_jobs.stores.memory import MemoryStore
from expert_jobs.stores.sqlite import SQLiteStore
from expert_jobs.stores.url import open_store

__version__ = "0.1.0"

__all__ = [
    "MODELS",
    "AssistantMessage",
    "BadRequest",
    "Call",
    "CannotContinue",
    "Checkpoint",
    "Clock",
    "Conflict",
    "Cost",
    "Delegation",
    "ExpertDefinition",
    "ExpertJob",
    "ExpertJobsError",
    "ExpertJobsService",
    "ExpertKey",
    "ExpertRegistry",
    "Fail",
    "FakeClock",
    "FilePart",
    "FunctionProvider",
    "GenerationRequest",
    "GenerationResponse",
    "IllegalTransition",
    "InteractiveToolSpec",
    "InvalidExpertKey",
    "Job",
    "JobError",
    "JobErrorKind",
    "JobEvent",
    "JobNotFound",
    "JobQuery",
    "JobResult",
    "JobStatus",
    "JobStore",
    "JobTracing",
    "McpHttpServer",
    "McpStdioServer",
    "MemoryStore",
    "ModelCatalogue",
    "ModelInfo",
    "NotFound",
    "OutputInvalid",
    "OutputSpec",
    "PricesUnavailable",
    "Provider",
    "ProviderError",
    "ProviderErrorKind",
    "ProviderKeyMissing",
    "ProviderResolver",
    "ReasoningSettings",
    "Reply",
    "Runtime",
    "RuntimeSettings",
    "SQLiteStore",
    "ScriptedProvider",
    "ServiceError",
    "StaleJobVersion",
    "StartJobRequest",
    "StoreError",
    "SystemClock",
    "TestProvider",
    "TextPart",
    "ThinkingPart",
    "Tool",
    "ToolCall",
    "ToolCalls",
    "ToolDeclaration",
    "ToolResult",
    "ToolResultsMessage",
    "Unauthorized",
    "UnknownExpert",
    "UnknownModel",
    "Usage",
    "UsageError",
    "UserMessage",
    "ValidationFailed",
    "Worker",
    "Workspace",
    "__version__",
    "can_transition",
    "enable_tracing",
    "format_cost",
    "job_cost",
    "mermaid_diagram",
    "new_id",
    "open_store",
    "parse_expert_key",
    "price_usage",
    "tool",
    "trigger_for",
]
