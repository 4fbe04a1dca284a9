"""SDKs stay out of the import path: ``expert_jobs``, its providers package and the registry import none."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import expert_jobs.providers

SDK_MODULES = ("anthropic", "openai", "google.genai", "httpx2", "httpx")


def run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, check=False, timeout=60
    )


def test_importing_the_providers_package_and_registry_imports_no_sdk() -> None:
    result = run(
        f"""
        import sys
        import expert_jobs
        import expert_jobs.providers
        from expert_jobs.providers import ProviderRegistry
        from expert_jobs.providers.registry import BUILTIN_FACTORIES
        ProviderRegistry(environ={{"OPENAI_API_KEY": "k"}}).check_key("gpt-5")
        assert set(BUILTIN_FACTORIES) == {{"anthropic", "google", "openai", "deepseek"}}
        loaded = [name for name in {SDK_MODULES!r} if name in sys.modules]
        print(",".join(loaded))
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ""


def test_an_adapter_is_loaded_on_first_access() -> None:
    result = run(
        """
        import sys
        import expert_jobs.providers as providers
        assert "anthropic" not in sys.modules
        cls = providers.AnthropicProvider
        assert cls.__module__ == "expert_jobs.providers.anthropic"
        assert "anthropic" in sys.modules and "openai" not in sys.modules
        """
    )
    assert result.returncode == 0, result.stderr


def test_a_missing_sdk_names_the_extra_to_install() -> None:
    result = run(
        """
        import sys
        sys.modules["google.genai"] = None  # as if google-genai were not installed
        try:
            import expert_jobs.providers.gemini
        except ImportError as exc:
            print(exc)
        """
    )
    assert "pip install 'expert-jobs[google]'" in result.stdout, result.stderr


def test_public_names() -> None:
    assert expert_jobs.providers.__all__ == sorted(expert_jobs.providers.__all__)
    for name in expert_jobs.providers.__all__:
        assert getattr(expert_jobs.providers, name).__name__ == name
