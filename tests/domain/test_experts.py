"""Expert definitions (limits, tool names, digest) and the registry's key resolution."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from expert_jobs import ExpertDefinition, ExpertRegistry, InteractiveToolSpec

SemverKey = tuple[tuple[int, ...], tuple[Any, ...]]


def semver_precedence(version: str) -> SemverKey:
    """SemVer 2.0 precedence, written from the spec (item 11), independent of the library."""
    core = version.split("+", 1)[0]
    numbers, dash, pre = core.partition("-")
    main = tuple(int(n) for n in numbers.split("."))
    if not dash:
        return main, (1,)
    identifiers = tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in pre.split("."))
    return main, (0, identifiers)


def expert(key: str, **fields: Any) -> ExpertDefinition:
    return ExpertDefinition(key=key, instruction=fields.pop("instruction", "Help."), **fields)


# --- definitions ------------------------------------------------------------------------------


def test_description_is_at_most_2048_characters() -> None:
    assert len(expert("w", description="d" * 2048).description) == 2048
    with pytest.raises(ValidationError, match="description"):
        expert("w", description="d" * 2049)


@pytest.mark.parametrize(("size", "ok"), [(0, False), (1, True), (20_480, True), (20_481, False)])
def test_instruction_is_1_to_20480_characters(size: int, ok: bool) -> None:
    if ok:
        assert len(expert("w", instruction="i" * size).instruction) == size
    else:
        with pytest.raises(ValidationError, match="instruction"):
            expert("w", instruction="i" * size)


@pytest.mark.parametrize("key", ["Writer", "writer\n", "a" * 512, ""])
def test_the_key_must_be_an_expert_key(key: str) -> None:
    with pytest.raises(ValidationError, match="key"):
        expert(key)


def test_delegates_must_be_expert_keys() -> None:
    assert expert("lead", delegates=("@acme/writer@1.0.0",)).delegates == ("@acme/writer@1.0.0",)
    with pytest.raises(ValidationError, match="delegates"):
        expert("lead", delegates=("Not A Key",))


@pytest.mark.parametrize("name", ["search", "_private", "get-page", "a" * 64, "A1_b-2"])
def test_good_tool_names(name: str) -> None:
    assert expert("w", tools=(name,)).tools == (name,)
    assert InteractiveToolSpec(name=name).name == name


@pytest.mark.parametrize("name", ["", "1st", "has space", "a" * 65, "dot.name", "search\n", "émoji"])
def test_bad_tool_names_are_refused(name: str) -> None:
    with pytest.raises(ValidationError, match="tool name"):
        expert("w", tools=(name,))
    with pytest.raises(ValidationError, match="tool name"):
        InteractiveToolSpec(name=name)


def test_tool_names_are_distinct_across_tools_interactive_tools_and_delegates() -> None:
    ask = InteractiveToolSpec(name="ask")
    with pytest.raises(ValidationError, match=r"distinct.*\['ask'\]"):
        expert("w", tools=("ask",), interactive_tools=(ask,))
    with pytest.raises(ValidationError, match=r"distinct.*\['writer'\]"):
        expert("w", tools=("writer",), delegates=("@acme/writer@1.0.0",))


def test_interactive_tools_have_a_description_and_a_json_input_schema() -> None:
    spec = InteractiveToolSpec.model_validate(
        {"name": "ask", "description": "Ask a person.", "input_schema": {"type": "object"}}
    )
    assert spec.input_schema == {"type": "object"}
    assert InteractiveToolSpec(name="ask", input_schema={"type": "object"}) == spec.model_copy(
        update={"description": ""}
    )
    assert InteractiveToolSpec(name="ok").input_schema == {"type": "object", "properties": {}}
    with pytest.raises(ValidationError, match="description"):
        InteractiveToolSpec(name="ask", description="d" * 2049)


def test_the_digest_a_job_carries() -> None:
    definition = expert(
        "@acme/lead@2.1.0",
        description="Leads.",
        tags=("latest",),
        tools=("search",),
        interactive_tools=(InteractiveToolSpec(name="ask"),),
        delegates=("writer@1.0.0",),
    )
    assert definition.digest() == {
        "key": "@acme/lead@2.1.0",
        "name": "@acme/lead",
        "version": "2.1.0",
        "description": "Leads.",
        "tags": ["latest"],
        "tools": ["search"],
        "interactiveTools": ["ask"],
        "delegates": ["writer@1.0.0"],
    }
    assert (definition.name, definition.version) == ("@acme/lead", "2.1.0")


# --- the registry -----------------------------------------------------------------------------


def test_exact_keys_tags_and_misses() -> None:
    v1 = expert("writer@1.0.0", tags=("stable",))
    v2 = expert("writer@2.0.0", tags=("beta",))
    registry = ExpertRegistry([v1, v2])
    assert registry.get("writer@1.0.0") is v1
    assert registry.get("writer@stable") is v1
    assert registry.get("writer@beta") is v2
    assert registry.get("writer@3.0.0") is None
    assert registry.get("writer@nightly") is None
    assert registry.get("writer@latest") is None
    assert registry.get("reader") is None
    assert "writer" in registry and "reader" not in registry and 3 not in registry
    assert len(registry) == 2
    assert set(registry.as_mapping()) == {"writer@1.0.0", "writer@2.0.0"}


def test_a_bare_name_takes_the_latest_tag_before_the_highest_version() -> None:
    old = expert("writer@1.0.0", tags=("latest",))
    registry = ExpertRegistry([old, expert("writer@2.0.0")])
    assert registry.get("writer") is old
    assert registry.get("writer@latest") is old


def test_a_bare_name_without_versions_takes_the_last_registered() -> None:
    first, second = expert("writer@draft"), expert("writer@final")
    assert ExpertRegistry([first, second]).get("writer") is second
    bare = expert("writer")
    assert ExpertRegistry([bare]).get("writer") is bare


def test_scoped_names_resolve_apart_from_unscoped_ones() -> None:
    scoped, plain = expert("@acme/writer@1.0.0"), expert("writer@9.0.0")
    registry = ExpertRegistry([scoped, plain])
    assert registry.get("@acme/writer") is scoped
    assert registry.get("writer") is plain


def test_adding_the_same_key_replaces_the_expert() -> None:
    registry = ExpertRegistry([expert("writer@1.0.0", instruction="old")])
    registry.add(expert("writer@1.0.0", instruction="new"))
    assert len(registry) == 1
    found = registry.get("writer")
    assert found is not None and found.instruction == "new"


@pytest.mark.parametrize(
    ("versions", "highest"),
    [
        (["1.9.0", "1.10.0"], "1.10.0"),
        (["1.0.0-rc.1", "1.0.0"], "1.0.0"),
        (["1.0.0-rc.9", "1.0.0-rc.10"], "1.0.0-rc.10"),
        (["1.0.0-2", "1.0.0-10"], "1.0.0-10"),
        (["1.0.0-alpha.1", "1.0.0-alpha.beta"], "1.0.0-alpha.beta"),
        (["1.0.0-alpha.1", "1.0.0-alpha"], "1.0.0-alpha.1"),
        (["2.0.0+build.1", "1.99.99"], "2.0.0+build.1"),
        # SemVer 2.0's own example chain, shuffled
        (
            ["1.0.0-beta.11", "1.0.0-alpha", "1.0.0", "1.0.0-rc.1", "1.0.0-beta.2", "1.0.0-alpha.beta"],
            "1.0.0",
        ),
        (["1.0.0-beta.11", "1.0.0-alpha", "1.0.0-beta.2", "1.0.0-alpha.1"], "1.0.0-beta.11"),
    ],
)
def test_a_bare_name_takes_the_highest_semver(versions: list[str], highest: str) -> None:
    registry = ExpertRegistry([expert(f"writer@{v}") for v in versions])
    found = registry.get("writer")
    assert found is not None and found.version == highest


IDENTIFIER = st.one_of(st.integers(0, 30).map(str), st.sampled_from(["alpha", "beta", "rc", "x-y", "a1"]))


@st.composite
def versions(draw: st.DrawFn) -> str:
    core = ".".join(str(draw(st.integers(0, 3))) for _ in range(3))
    if draw(st.booleans()):
        core += "-" + ".".join(draw(st.lists(IDENTIFIER, min_size=1, max_size=3)))
    if draw(st.booleans()):
        core += "+b" + str(draw(st.integers(0, 9)))
    return core


@given(st.lists(versions(), min_size=1, max_size=8, unique=True))
def test_the_highest_semver_agrees_with_the_semver_spec(found_versions: list[str]) -> None:
    registry = ExpertRegistry([expert(f"writer@{v}") for v in found_versions])
    found = registry.get("writer")
    assert found is not None and found.version is not None
    assert semver_precedence(found.version) == max(semver_precedence(v) for v in found_versions)


@pytest.mark.parametrize("other", ["inputSchema", "inputJsonSchema", "input_json_schema"])
def test_an_interactive_tool_schema_has_one_name_in_python(other: str) -> None:
    with pytest.raises(ValidationError, match=f"not '{other}' .*: use input_schema"):
        InteractiveToolSpec.model_validate({"name": "ask", other: {"type": "object"}})
    with pytest.raises(ValidationError, match="use input_schema"):
        InteractiveToolSpec(name="ask", **{other: {"type": "object"}})


def test_an_interactive_tool_schema_describes_an_object() -> None:
    with pytest.raises(ValidationError, match="the input schema's type must be 'object', got 'string'"):
        InteractiveToolSpec(name="ask", input_schema={"type": "string"})


@pytest.mark.parametrize("other", ["inputSchema", "input_schema", "input_json_schema"])
def test_the_configuration_file_names_the_schema_input_json_schema_only(other: str) -> None:
    from expert_jobs.config import ConfigError, parse_config

    skill = {"type": "interactiveSkill", "tools": {"ask": {other: {"type": "object"}}}}
    with pytest.raises(ConfigError) as caught:
        parse_config({"experts": {"x": {"instruction": "i", "skills": {"people": {**skill}}}}})
    [(where, problem)] = caught.value.problems
    assert where == 'experts."x".skills."people".tools."ask"'
    assert f"unknown key '{other}' (did you mean 'inputJsonSchema'?)" in problem
