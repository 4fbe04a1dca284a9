"""SDKs stay out of the import path: ``expert_jobs``, its providers package and the registry import none."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

import pytest

import expert_jobs.providers
from expert_jobs.providers._common import MIN_SDK_VERSIONS

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


PRETEND = """
import importlib.metadata, sys
real_version = importlib.metadata.version
def version(name):
    if name in VERSIONS:
        if VERSIONS[name] is None:
            raise importlib.metadata.PackageNotFoundError(name)
        return VERSIONS[name]
    return real_version(name)
importlib.metadata.version = version
for module in BLOCKED:
    sys.modules[module] = None  # as if it could not be imported
try:
    import expert_jobs.providers.MODULE
except ImportError as exc:
    print(exc)
else:
    print("imported")
"""


def pretend(module: str, versions: dict[str, str | None], blocked: tuple[str, ...] = ()) -> str:
    """Import an adapter module with the SDK versions ``importlib.metadata`` reports and modules blocked."""
    code = f"VERSIONS = {versions!r}\nBLOCKED = {blocked!r}\n" + PRETEND.replace("MODULE", module)
    result = run(code)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_a_missing_sdk_names_the_extra_to_install() -> None:
    message = pretend("gemini", {"google-genai": None}, ("google.genai",))

    assert message == (
        "the 'google-genai' package is needed for this provider and is not installed; "
        "install it with pip install 'expert-jobs[google]'"
    )


def test_an_sdk_too_old_for_httpx2_says_which_version_it_found_and_needs() -> None:
    # anthropic 0.70 (the old lower bound) installs without httpx2, so importing the adapter failed
    # and the message told the user to install the extra they had.
    message = pretend("anthropic", {"anthropic": "0.70.0"}, ("httpx2",))

    assert message == (
        "the 'anthropic' package is too old for this provider: found version 0.70.0, need >= 1.0; "
        "upgrade it with pip install --upgrade 'expert-jobs[anthropic]'"
    )


@pytest.mark.parametrize(
    ("module", "package", "found", "needed", "extra"),
    [
        ("openai", "openai", "2.54.0", "3.0", "openai"),
        ("deepseek", "openai", "2.0.0", "3.0", "openai"),
        ("gemini", "google-genai", "3.3.0", "3.4", "google"),
        ("anthropic", "anthropic", "0.125.0", "1.0", "anthropic"),
    ],
)
def test_an_sdk_older_than_the_bound_is_refused_even_when_it_imports(
    module: str, package: str, found: str, needed: str, extra: str
) -> None:
    message = pretend(module, {package: found})

    assert f"found version {found}, need >= {needed}" in message
    assert f"pip install --upgrade 'expert-jobs[{extra}]'" in message


def test_a_recent_sdk_that_fails_to_import_names_the_cause() -> None:
    message = pretend("openai", {"openai": "3.60.0"}, ("httpx2",))

    assert message.startswith("the 'openai' package (version 3.60.0) is installed but could not be imported")
    assert "httpx2" in message


def test_the_bounds_match_pyproject() -> None:
    pyproject = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())
    extras = pyproject["project"]["optional-dependencies"]
    declared = {
        requirement.split(">=")[0]: requirement.split(">=")[1].split(",")[0]
        for extra in ("anthropic", "openai", "google")
        for requirement in extras[extra]
    }
    assert declared == dict(MIN_SDK_VERSIONS)


def test_public_names() -> None:
    assert expert_jobs.providers.__all__ == sorted(expert_jobs.providers.__all__)
    for name in expert_jobs.providers.__all__:
        assert getattr(expert_jobs.providers, name).__name__ == name
