"""docs/testing.md tells the truth: its ```python blocks, run in order as one module, define tests
that pass (each ``test_*`` function is called; a ``unittest.TestCase`` is run)."""

from __future__ import annotations

import asyncio
import inspect
import re
import unittest
from pathlib import Path
from typing import Any

import pytest

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "testing.md"


def _blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", GUIDE.read_text(encoding="utf-8"), flags=re.S)


def _module() -> dict[str, Any]:
    source = "\n\n".join(_blocks())
    namespace: dict[str, Any] = {"__name__": "testing_guide"}
    exec(compile(source, str(GUIDE), "exec"), namespace)
    return namespace


def _tests(namespace: dict[str, Any]) -> list[str]:
    """What pytest would collect: ``test_*`` functions and ``Test*`` unittest cases."""

    def collected(name: str, value: Any) -> bool:
        if name.startswith("test_"):
            return inspect.isfunction(value)
        return name.startswith("Test") and inspect.isclass(value) and issubclass(value, unittest.TestCase)

    return [name for name, value in namespace.items() if collected(name, value)]


NAMESPACE = _module()


KIT = (
    "ScriptedProvider", "TestProvider", "FunctionProvider", "FakeClock", "scripts_for", "run_until_settled",
    "run_histories", "turns_for", "arguments_for", "LifecycleStateMachine", "next_status", "start_requests",
    "invalid_start_requests", "valid_answers", "invalid_answers",
)  # fmt: skip


def test_the_guide_has_examples_of_every_part_of_the_kit() -> None:
    text = GUIDE.read_text(encoding="utf-8")
    code = "\n".join(_blocks())
    for name in KIT:
        assert name in code and f"`{name}" in text, name
    assert len(_tests(NAMESPACE)) >= 12


@pytest.mark.parametrize("name", _tests(NAMESPACE))
def test_the_guides_example(name: str) -> None:
    test = NAMESPACE[name]
    if inspect.isclass(test):
        cases = unittest.defaultTestLoader.loadTestsFromTestCase(test)
        result = unittest.TextTestRunner(verbosity=0).run(cases)
        assert result.testsRun >= 1
        assert result.wasSuccessful(), result.failures + result.errors
    elif inspect.iscoroutinefunction(test):
        asyncio.run(test())
    else:
        test()


def test_the_guide_is_linked_from_the_readme_and_the_kit() -> None:
    import expert_jobs.testing

    readme = (GUIDE.parents[1] / "README.md").read_text(encoding="utf-8")
    assert "(docs/testing.md)" in readme
    assert "docs/testing.md" in (expert_jobs.testing.__doc__ or "")
