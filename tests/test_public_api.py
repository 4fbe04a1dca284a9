"""The public surface: pinned, sorted, importable without SDKs or keys."""

from __future__ import annotations

import subprocess
import sys

import expert_jobs

PINNED = {
    "JobStatus",
    "Usage",
    "ExpertJob",
    "IllegalTransition",
    "can_transition",
    "MODELS",
    "Runtime",
    "Worker",
    "MemoryStore",
    "ScriptedProvider",
    "tool",
    "JobTracing",
    "enable_tracing",
    "McpStdioServer",
    "McpHttpServer",
    "JobResult",
    "OutputSpec",
    "OutputInvalid",
}


def test_all_is_sorted_and_complete() -> None:
    names = [n for n in expert_jobs.__all__ if n != "__version__"]
    assert names == sorted(names, key=lambda n: (not n.isupper(), n)) or names == sorted(names)
    assert set(expert_jobs.__all__) >= PINNED
    for name in expert_jobs.__all__:
        assert hasattr(expert_jobs, name), name


def test_typed_results_are_importable_from_the_root() -> None:
    from expert_jobs.domain.output import JobResult, OutputInvalid, OutputSpec

    assert (expert_jobs.JobResult, expert_jobs.OutputSpec, expert_jobs.OutputInvalid) == (
        JobResult,
        OutputSpec,
        OutputInvalid,
    )
    assert issubclass(expert_jobs.OutputInvalid, ValueError)


def test_the_json_schema_library_is_imported_only_when_a_schema_needs_it() -> None:
    code = (
        "import sys, expert_jobs; "
        "bad = [m for m in sys.modules if m.split('.')[0] in ('jsonschema', 'referencing')]; "
        "expert_jobs.ExpertDefinition(key='e@1.0.0', instruction='i', output={'type': 'object'}); "
        "sys.exit(1 if bad or 'jsonschema' not in sys.modules else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={"PATH": ""})
    assert result.returncode == 0, result.stdout + result.stderr


def test_models_map_ids_to_providers() -> None:
    assert len(expert_jobs.MODELS) == 22
    assert expert_jobs.MODELS["gpt-5"].provider == "openai"
    assert expert_jobs.MODELS["gemini-2.5-pro"].provider == "google"


def test_import_needs_no_sdk_and_no_keys() -> None:
    code = (
        "import sys, expert_jobs; "
        "bad = [m for m in sys.modules if m.split('.')[0] in "
        "('anthropic', 'openai', 'google', 'hypothesis', 'psycopg', 'starlette', 'typer', 'rich')]; "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={"PATH": ""})
    assert result.returncode == 0, result.stdout + result.stderr


def test_tracing_and_mcp_names_import_without_their_sdks() -> None:
    code = (
        "import sys; "
        "from expert_jobs import JobTracing, McpHttpServer, McpStdioServer, enable_tracing; "
        "McpStdioServer('fs', 'true'); McpHttpServer('search', 'http://127.0.0.1:1/mcp'); "
        "bad = [m for m in sys.modules if m.split('.')[0] in ('mcp', 'opentelemetry', 'httpx', 'anyio')]; "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={"PATH": ""})
    assert result.returncode == 0, result.stdout + result.stderr


def test_package_ships_py_typed() -> None:
    from importlib.resources import files

    assert files("expert_jobs").joinpath("py.typed").is_file()
