"""Experts in the perstack.toml shape: keys, delegates, Python tools by import path and interactive
tools with JSON schemas."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from expert_jobs.config import ConfigError, build_experts, build_runtime, expert_key_of, load_config
from expert_jobs.stores.memory import MemoryStore
from tests.config.conftest import Load, WriteFile


def _module(write: WriteFile, body: str, folder: str = "") -> str:
    name = f"cfgtools_{uuid.uuid4().hex[:10]}"
    write(body, f"{folder}/{name}.py" if folder else f"{name}.py")
    return name


def test_an_expert_in_the_perstack_shape(load: Load) -> None:
    config = load(
        """
        [experts."writer"]
        version = "2.1.0"
        description = "Writes"
        instruction = "Write well."
        delegates = ["helper"]
        tags = ["prod", "writing"]
        toolTimeout = 12.5
        minRuntimeVersion = "v1.0"

        [experts."helper"]
        instruction = "Help."
        """
    )
    writer = config.experts["writer"]
    assert expert_key_of("writer", writer) == "writer@2.1.0"
    assert (writer.description, writer.delegates, writer.tags) == ("Writes", ("helper",), ("prod", "writing"))
    assert writer.min_runtime_version == "v1.0"
    assert config.experts["helper"].version == "1.0.0"  # the default
    _, experts = build_experts(config)
    by_key = {e.key: e for e in experts}
    assert set(by_key) == {"writer@2.1.0", "helper@1.0.0"}
    assert by_key["writer@2.1.0"].tags == ("prod", "writing")
    assert by_key["writer@2.1.0"].tool_timeout == 12.5
    assert by_key["helper@1.0.0"].tool_timeout is None  # the runtime's toolTimeout applies


@pytest.mark.parametrize(
    ("text", "key", "message"),
    [
        ('[experts."x"]\ndescription = "no instruction"', 'experts."x".instruction', "missing"),
        ('[experts."x"]\ninstruction = ""', 'experts."x".instruction', "at least 1 character"),
        (
            '[experts."x"]\ninstruction = "i"\nversion = "one"',
            'experts."x".version',
            "not a semantic version",
        ),
        ('[experts."x@1.0.0"]\ninstruction = "i"', 'experts."x@1.0.0"', "put the version in 'version'"),
        ('[experts."Bad Name"]\ninstruction = "i"', 'experts."Bad Name"', ""),
        (
            '[experts."x"]\ninstruction = "i"\ndelegates = ["ghost"]',
            'experts."x".delegates[0]',
            "no expert 'ghost'",
        ),
        ('[experts."x"]\ninstruction = "i"\nskill = {}', 'experts."x"', "did you mean 'skills'?"),
        (
            '[experts."x"]\ninstruction = "i"\n[experts."x".skills."fs"]\ntype = "mcpSseSkill"',
            'experts."x".skills',
            "use type = 'mcpStreamableHttpSkill'",
        ),
        (
            '[experts."x"]\ninstruction = "i"\n[experts."x".skills."fs"]\ntype = "mcpStdioSkill"',
            'experts."x".skills."fs".command',
            "missing",
        ),
        (
            '[experts."x"]\ninstruction = "i"\n[experts."x".skills."fs"]\ntype = "mcpStdioSkill"\n'
            'command = ""',
            'experts."x".skills."fs".command',
            "at least 1 character",
        ),
        (
            '[experts."x"]\ninstruction = "i"\n[experts."x".skills."web"]\n'
            'type = "mcpStreamableHttpSkill"\nendpoint = "ftp://x"',
            'experts."x".skills."web".endpoint',
            "",
        ),
        (
            '[experts."x"]\ninstruction = "i"\n[experts."x".skills."my files"]\ntype = "mcpStdioSkill"\n'
            'command = "npx"',
            'experts."x".skills',
            "an MCP skill's name must match",
        ),
        (
            '[experts."x"]\ninstruction = "i"\n[experts."x".skills."fs"]\ntype = "mcpStdioSkill"\n'
            'command = "npx"\npick = [""]',
            'experts."x".skills."fs".pick',
            "must not be empty",
        ),
        (
            '[experts."x"]\ninstruction = "i"\n[experts."x".skills."s"]\ntype = "shell"',
            'experts."x".skills."s"',
            "",
        ),
        (
            '[experts."x"]\ninstruction = "i"\n[experts."x".skills."s"]\ntype = "pythonSkill"\n'
            'module = "not a module"',
            'experts."x".skills."s".module',
            "not a dotted module path",
        ),
        (
            '[experts."x"]\ninstruction = "i"\n[experts."x".skills."s"]\ntype = "pythonSkill"',
            'experts."x".skills."s".module',
            "missing",
        ),
    ],
)
def test_expert_errors_name_the_key(write: WriteFile, text: str, key: str, message: str) -> None:
    path = write(text + "\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    problems = dict(caught.value.problems)
    assert key in problems, caught.value.problems
    assert message in problems[key]
    assert str(caught.value).startswith(str(path))


def test_python_tools_by_import_path_pick_omit_and_all(write: WriteFile) -> None:
    plain = _module(
        write,
        '''
        def first(a: int) -> int:
            """First tool.

            Args:
                a: a number
            """
            return a

        def second() -> str:
            """Second tool."""
            return "2"

        def _private() -> None:
            """Not a tool."""
        ''',
    )
    listed = _module(
        write,
        '''
        __all__ = ["shown"]

        def shown() -> str:
            """Listed in __all__."""
            return "yes"

        def hidden() -> str:
            """Not listed."""
            return "no"
        ''',
    )
    config = load_config(
        write(
            f"""
            [experts."all"]
            instruction = "i"
            [experts."all".skills."p"]
            type = "pythonSkill"
            module = "{plain}"

            [experts."picked"]
            instruction = "i"
            [experts."picked".skills."p"]
            type = "python"
            module = "{plain}"
            pick = ["second"]

            [experts."omitted"]
            instruction = "i"
            [experts."omitted".skills."p"]
            type = "pythonSkill"
            module = "{plain}"
            omit = ["second"]

            [experts."listed"]
            instruction = "i"
            [experts."listed".skills."l"]
            type = "pythonSkill"
            module = "{listed}"
            """
        )
    )
    tools, experts = build_experts(config)
    assert {t.name for t in tools} == {"first", "second", "shown"}
    by_key = {e.key: e.tools for e in experts}
    assert by_key == {
        "all@1.0.0": ("first", "second"),
        "picked@1.0.0": ("second",),
        "omitted@1.0.0": ("first",),
        "listed@1.0.0": ("shown",),
    }
    first = next(t for t in tools if t.name == "first")
    assert first.declaration.description.startswith("First tool.")
    assert first.declaration.input_schema["properties"]["a"]["type"] == "integer"


async def test_python_tools_run_in_a_job(write: WriteFile) -> None:
    name = _module(
        write,
        '''
        def shout(text: str) -> str:
            """Shout.

            Args:
                text: what to shout
            """
            return text.upper()
        ''',
        folder="lib",
    )
    config = load_config(
        write(
            f"""
            pythonPath = ["lib"]
            [provider]
            providerName = "scripted"
            [[provider.script]]
            toolCalls = [{{ name = "shout", arguments = {{ text = "hi" }} }}]
            [[provider.script]]
            text = "done"
            [experts."loud"]
            instruction = "i"
            [experts."loud".skills."s"]
            type = "pythonSkill"
            module = "{name}"
            """
        )
    )
    runtime = build_runtime(config, store=MemoryStore())
    job = await runtime.run("loud@1.0.0", "go")
    assert job.status.value == "completed"
    history = await runtime.store.load_history(
        job.id, next(iter(await runtime.store.latest_checkpoints(job.id)))
    )
    assert "HI" in repr(history)


def test_python_tool_errors(write: WriteFile) -> None:
    broken = _module(write, "raise RuntimeError('boom at import')\n")
    cases = {
        "missing_module_xyz": ("module", "cannot import 'missing_module_xyz'"),
        broken: ("module", "importing"),
    }
    for module, (suffix, message) in cases.items():
        path = write(
            f'[experts."x"]\ninstruction = "i"\n[experts."x".skills."s"]\ntype = "pythonSkill"\n'
            f'module = "{module}"\n'
        )
        with pytest.raises(ConfigError) as caught:
            build_experts(load_config(path))
        (key, text), *_ = caught.value.problems
        assert key == f'experts."x".skills."s".{suffix}'
        assert message in text
    ok = _module(write, 'def tool() -> str:\n    """A tool."""\n    return ""\nVALUE = 3\n')
    for pick, message in ((["nothing"], "has no 'nothing'"), (["VALUE"], "is not a function or a Tool")):
        path = write(
            f'[experts."x"]\ninstruction = "i"\n[experts."x".skills."s"]\ntype = "pythonSkill"\n'
            f'module = "{ok}"\npick = {pick!r}\n'.replace("'", '"')
        )
        with pytest.raises(ConfigError) as caught:
            build_experts(load_config(path))
        assert message in str(caught.value)


def test_one_tool_name_for_two_functions_is_refused(write: WriteFile) -> None:
    one = _module(write, 'def same() -> str:\n    """One."""\n    return "1"\n')
    two = _module(write, 'def same() -> str:\n    """Two."""\n    return "2"\n')
    path = write(
        f"""
        [experts."a"]
        instruction = "i"
        [experts."a".skills."s"]
        type = "pythonSkill"
        module = "{one}"
        [experts."b"]
        instruction = "i"
        [experts."b".skills."s"]
        type = "pythonSkill"
        module = "{two}"
        """
    )
    with pytest.raises(ConfigError, match=r"tool name 'same' .* is already taken"):
        build_experts(load_config(path))


def test_the_same_module_in_two_experts_shares_its_tools(write: WriteFile) -> None:
    shared = _module(write, 'def same() -> str:\n    """One."""\n    return "1"\n')
    body = "".join(
        f'[experts."{e}"]\ninstruction = "i"\n[experts."{e}".skills."s"]\ntype = "pythonSkill"\n'
        f'module = "{shared}"\n'
        for e in ("a", "b")
    )
    tools, experts = build_experts(load_config(write(body)))
    assert [t.name for t in tools] == ["same"]
    assert [e.tools for e in experts] == [("same",), ("same",)]


def test_interactive_tools_with_json_schemas_as_text_or_tables(load: Load) -> None:
    config = load(
        """
        [experts."x"]
        instruction = "Ask."
        [experts."x".skills."people"]
        type = "interactiveSkill"
        description = "People"
        rule = "Ask before acting."
        [experts."x".skills."people".tools."approve"]
        description = "Ask for approval"
        inputJsonSchema = '{"type":"object", "properties": {"what": {"type":"string"}}, "required": ["what"]}'
        [experts."x".skills."people".tools."pick"]
        description = "Pick one"
        [experts."x".skills."people".tools."pick".inputJsonSchema]
        type = "object"
        properties = { choice = { type = "string", enum = ["a", "b"] } }
        [experts."x".skills."people".tools."ping"]
        """
    )
    _, (expert,) = build_experts(config)
    tools = {t.name: t for t in expert.interactive_tools}
    assert tools["approve"].input_schema["required"] == ["what"]
    assert tools["pick"].input_schema["properties"]["choice"]["enum"] == ["a", "b"]
    assert tools["ping"].input_schema == {"type": "object", "properties": {}}  # the default
    assert tools["approve"].description == "Ask for approval"
    assert expert.instruction.endswith("Skill rules:\n- people: Ask before acting.")


@pytest.mark.parametrize(
    ("schema", "message"),
    [
        ("'{not json'", "not valid JSON"),
        ("'[1, 2]'", "must be a JSON schema object"),
        ('\'{"type": "string"}\'', "the input schema's type must be 'object', got 'string'"),
    ],
)
def test_bad_interactive_schemas(write: WriteFile, schema: str, message: str) -> None:
    path = write(
        '[experts."x"]\ninstruction = "i"\n[experts."x".skills."p"]\ntype = "interactiveSkill"\n'
        f'[experts."x".skills."p".tools."t"]\ninputJsonSchema = {schema}\n'
    )
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    problems = dict(caught.value.problems)
    assert message in problems['experts."x".skills."p".tools."t".inputJsonSchema']


def test_an_interactive_skill_needs_tools(write: WriteFile) -> None:
    path = write('[experts."x"]\ninstruction = "i"\n[experts."x".skills."p"]\ntype = "interactiveSkill"\n')
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert 'experts."x".skills."p".tools' in dict(caught.value.problems)


def test_the_bundled_example_loads(tmp_path: Path) -> None:
    from expert_jobs.examples import EXAMPLE_EXPERT, example_config

    config = example_config()
    _, experts = build_experts(config)
    assert {e.key for e in experts} == {EXAMPLE_EXPERT, "headline-writer@1.0.0"}
    assert config.provider.provider_name == "scripted"
    assert config.provider.scripts is not None
    assert set(config.provider.scripts) == {EXAMPLE_EXPERT, "headline-writer@1.0.0"}
