"""Expert keys: the full pattern, its groups, the round trip and the 511-character limit."""

from __future__ import annotations

import re
import string

import pytest
from hypothesis import given
from hypothesis import strategies as st

from expert_jobs import ExpertKey, InvalidExpertKey, parse_expert_key
from expert_jobs.domain.expert_key import EXPERT_KEY_MAX_LENGTH, EXPERT_KEY_PATTERN
from expert_jobs.testing import expert_keys, invalid_expert_keys

# The issue's pattern, verbatim.
ISSUE_PATTERN = (
    r"^((?:@[a-z0-9][a-z0-9_.-]*\/)?[a-z0-9][a-z0-9_.-]*)"
    r"(?:@((?:0|[1-9]\d*)\.(?:0|[1-9]\d*)\.(?:0|[1-9]\d*)(?:-[\w.-]+)?(?:\+[\w.-]+)?)"
    r"|@([a-z0-9][a-z0-9_.-]*))?$"
)
FIRST = string.ascii_lowercase + string.digits
REST = FIRST + "_.-"
WORD = string.ascii_letters + string.digits + "_.-"


def segment() -> st.SearchStrategy[str]:
    return st.tuples(st.sampled_from(FIRST), st.text(REST, max_size=12)).map("".join)


@st.composite
def semver(draw: st.DrawFn) -> str:
    core = ".".join(str(draw(st.integers(0, 10**4))) for _ in range(3))
    if draw(st.booleans()):
        core += "-" + draw(st.text(WORD, min_size=1, max_size=8))
    if draw(st.booleans()):
        core += "+" + draw(st.text(WORD, min_size=1, max_size=8))
    return core


def looks_like_semver(text: str) -> bool:
    """An independent check of SemVer 2.0's shape (with the pattern's looser ``[\\w.-]`` parts)."""
    core, _, build = text.partition("+")
    if "+" in text and not build:
        return False
    main, dash, pre = core.partition("-")
    if dash and not pre:
        return False
    numbers = main.split(".")
    return (
        len(numbers) == 3
        and all(n.isascii() and n.isdigit() and (n == "0" or not n.startswith("0")) for n in numbers)
        and all(set(p) <= set(WORD) for p in (pre, build))
    )


@st.composite
def key_parts(draw: st.DrawFn) -> tuple[str | None, str, str | None, str | None]:
    scope = draw(st.none() | segment())
    name = draw(segment())
    kind = draw(st.sampled_from(["bare", "version", "tag"]))
    version = draw(semver()) if kind == "version" else None
    tag = draw(segment()) if kind == "tag" else None
    return scope, name, version, tag


def test_the_pattern_is_the_issues_pattern_in_ascii_mode() -> None:
    assert EXPERT_KEY_PATTERN.pattern == ISSUE_PATTERN
    assert EXPERT_KEY_PATTERN.flags & re.ASCII
    assert EXPERT_KEY_MAX_LENGTH == 511


@given(key_parts())
def test_groups_name_with_scope_then_semver_first_then_tag(
    parts: tuple[str | None, str, str | None, str | None],
) -> None:
    scope, name, version, tag = parts
    full_name = f"@{scope}/{name}" if scope else name
    suffix = version if version is not None else tag
    key = full_name + (f"@{suffix}" if suffix is not None else "")
    parsed = parse_expert_key(key)
    assert parsed.name == full_name
    assert parsed.scope == scope
    assert parsed.bare_name == name
    if version is not None:
        assert (parsed.version, parsed.tag) == (version, None)
    elif tag is not None:
        # a tag shaped like a version is read as the version (group 2 is tried first)
        expected = (tag, None) if looks_like_semver(tag) else (None, tag)
        assert (parsed.version, parsed.tag) == expected
    else:
        assert (parsed.version, parsed.tag) == (None, None)
    assert str(parsed) == key


@given(expert_keys())
def test_kit_keys_round_trip_and_match_the_pattern(key: str) -> None:
    assert len(key) <= EXPERT_KEY_MAX_LENGTH
    assert re.fullmatch(ISSUE_PATTERN, key, re.ASCII)
    assert str(parse_expert_key(key)) == key


@given(invalid_expert_keys())
def test_kit_invalid_keys_are_rejected(key: str) -> None:
    assert len(key) > EXPERT_KEY_MAX_LENGTH or not re.fullmatch(ISSUE_PATTERN, key, re.ASCII)
    with pytest.raises(InvalidExpertKey):
        parse_expert_key(key)


@given(st.text(alphabet="ab01@/.-_+Z \n", max_size=24))
def test_parse_accepts_exactly_what_the_pattern_fully_matches(text: str) -> None:
    matches = re.fullmatch(ISSUE_PATTERN, text, re.ASCII) is not None
    try:
        parsed = parse_expert_key(text)
    except InvalidExpertKey:
        assert not matches
    else:
        assert matches
        assert str(parsed) == text


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("writer", ExpertKey("writer", None, None, None)),
        ("@acme/writer", ExpertKey("@acme/writer", "acme", None, None)),
        ("writer@1.2.3", ExpertKey("writer", None, "1.2.3", None)),
        ("writer@1.0.0-rc.1+build.5", ExpertKey("writer", None, "1.0.0-rc.1+build.5", None)),
        ("writer@1.0.0-RC1", ExpertKey("writer", None, "1.0.0-RC1", None)),
        ("@a.b/c_d-e@0.0.0", ExpertKey("@a.b/c_d-e", "a.b", "0.0.0", None)),
        ("writer@latest", ExpertKey("writer", None, None, "latest")),
        ("writer@1.2", ExpertKey("writer", None, None, "1.2")),
        ("writer@01.2.3", ExpertKey("writer", None, None, "01.2.3")),
        ("writer@1.2.3-", ExpertKey("writer", None, None, "1.2.3-")),
        ("@acme/writer@beta", ExpertKey("@acme/writer", "acme", None, "beta")),
    ],
)
def test_examples(key: str, expected: ExpertKey) -> None:
    assert parse_expert_key(key) == expected
    assert str(expected) == key


@pytest.mark.parametrize("key", ["writer\n", "writer@1.2.3\n", "@acme/writer@latest\n"])
def test_a_trailing_newline_is_not_part_of_a_key(key: str) -> None:
    with pytest.raises(InvalidExpertKey):
        parse_expert_key(key)


def test_the_length_limit_is_511() -> None:
    assert str(parse_expert_key("a" * 511)) == "a" * 511
    assert str(parse_expert_key("@s/" + "a" * 502 + "@1.0.0")) == "@s/" + "a" * 502 + "@1.0.0"
    with pytest.raises(InvalidExpertKey, match="longer than 511 characters"):
        parse_expert_key("a" * 512)


def test_invalid_keys_say_why() -> None:
    with pytest.raises(InvalidExpertKey, match=r"invalid expert key 'Writer': expected name, name@x.y.z"):
        parse_expert_key("Writer")
    with pytest.raises(InvalidExpertKey, match="must be a string"):
        parse_expert_key(12)  # type: ignore[arg-type]
