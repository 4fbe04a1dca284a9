"""The README tells the truth: its embedding example runs and its diagram is the machine's."""

from __future__ import annotations

import re
from pathlib import Path

from expert_jobs import mermaid_diagram

README = (Path(__file__).parent.parent / "README.md").read_text()


def _blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README, flags=re.S)


def test_quickstart_has_exactly_two_commands() -> None:
    quickstart = README.split("## Quickstart", 1)[1]
    first_block = re.search(r"```\w*\n(.*?)```", quickstart, flags=re.S)
    assert first_block is not None
    lines = [line for line in first_block.group(1).splitlines() if line.strip()]
    assert len(lines) == 2
    assert "pytest" in lines[1]


def test_the_lifecycle_diagram_is_generated_from_the_machine() -> None:
    assert mermaid_diagram().strip() in [b.strip() for b in _blocks("mermaid")]


def test_the_embedding_example_runs(capsys: object) -> None:
    example = _blocks("python")[0]
    namespace: dict[str, object] = {"__name__": "readme_example"}
    exec(compile(example, "README.md", "exec"), namespace)
    out = capsys.readouterr().out  # type: ignore[attr-defined]
    assert "completed 2" in out
