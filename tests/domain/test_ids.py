"""Resource ids: 24 of ``[a-z0-9]``, the first a letter, unbiased, from a secure source."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from expert_jobs.domain import ids as ids_module
from expert_jobs.domain.ids import (
    ID_LENGTH,
    CheckpointIds,
    ResourceId,
    checkpoint_id,
    derived_id,
    is_id,
    new_id,
    validate_id,
)
from expert_jobs.testing import ids, invalid_ids

SPEC = re.compile(r"[a-z0-9]+", re.ASCII)  # the spec's ^[a-z0-9]+$, min 24, max 24
MADE = re.compile(r"[a-z][a-z0-9]{23}", re.ASCII)  # what the library makes: the first a letter


def spec_valid(value: str) -> bool:
    return len(value) == 24 and SPEC.fullmatch(value) is not None


def test_new_ids_match_the_spec_and_start_with_a_letter() -> None:
    made = [new_id() for _ in range(5_000)]
    assert all(MADE.fullmatch(i) for i in made)
    assert len(set(made)) == len(made)


def test_new_ids_use_every_symbol_everywhere() -> None:
    # 5,000 ids: a symbol missing at some position by chance has odds ~ 36 * (35/36)**5000 ~ 1e-59.
    made = [new_id() for _ in range(5_000)]
    assert set(Counter(i[0] for i in made)) == set("abcdefghijklmnopqrstuvwxyz")
    for position in range(1, ID_LENGTH):
        assert len({i[position] for i in made}) == 36, position


def test_new_id_draws_again_when_too_many_bytes_are_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    # bytes >= 234 cannot be letters and bytes >= 252 cannot be symbols (they would bias the draw)
    draws: Iterator[bytes] = iter([b"\xff" * 40, b"\xea" * 8 + b"\x00" * 32, b"\x00" * 40])
    monkeypatch.setattr(ids_module, "_urandom", lambda n: next(draws))
    assert new_id() == "a" * ID_LENGTH
    assert next(draws, None) is None


@given(st.lists(st.one_of(st.text(max_size=30), st.integers()), min_size=1, max_size=4))
def test_derived_ids_match_the_spec_and_are_stable(parts: list[str | int]) -> None:
    made = derived_id(*parts)
    assert MADE.fullmatch(made)
    assert derived_id(*parts) == made


@given(st.text(max_size=20), st.text(max_size=20))
def test_derived_ids_of_different_parts_differ(a: str, b: str) -> None:
    if a != b:
        assert derived_id("job", a) != derived_id("job", b)


@given(ids(), st.integers(0, 2**32 - 1))
def test_checkpoint_ids_are_ids_stable_and_ordered_by_sequence(job_id: str, seq: int) -> None:
    made = checkpoint_id(job_id, seq)
    assert MADE.fullmatch(made)
    assert made == checkpoint_id(job_id, seq)
    assert made.startswith(job_id[:15])
    if seq < 2**32 - 1:
        assert made < checkpoint_id(job_id, seq + 1)


@given(ids())
def test_kit_ids_are_valid(value: str) -> None:
    assert MADE.fullmatch(value)
    assert is_id(value)
    assert validate_id(value) == value


@given(invalid_ids())
def test_kit_invalid_ids_are_rejected(value: str) -> None:
    assert not spec_valid(value)
    assert not is_id(value)
    with pytest.raises(ValueError):
        validate_id(value)


@given(st.text(alphabet="abcz09AZ-_ \n", max_size=30))
def test_is_id_and_validate_id_agree_with_the_spec(value: str) -> None:
    assert is_id(value) is spec_valid(value)
    if spec_valid(value):
        assert validate_id(value) == value
    else:
        with pytest.raises(ValueError):
            validate_id(value)


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("a" * 23, "must be exactly 24 characters, got 23"),
        ("a" * 25, "must be exactly 24 characters, got 25"),
        ("A" * 24, "must match ^[a-z0-9]+$"),
        ("a" * 23 + "\n", "must match ^[a-z0-9]+$"),
    ],
)
def test_validate_id_says_why(value: str, why: str) -> None:
    with pytest.raises(ValueError, match=re.escape(why)):
        validate_id(value)


def test_is_id_refuses_a_trailing_newline_and_non_strings() -> None:
    assert not is_id("a" * 24 + "\n")
    assert not is_id(None)
    assert not is_id(12345678901234567890)
    assert is_id("test12345678901234567890")  # the spec's own example


def test_resource_id_fields_validate() -> None:
    class Thing(BaseModel):
        id: ResourceId

    assert Thing(id="test12345678901234567890").id == "test12345678901234567890"
    with pytest.raises(ValidationError, match="exactly 24 characters"):
        Thing(id="short")


@pytest.mark.parametrize("seq", [-1, 2**32])
def test_checkpoint_sequences_outside_the_id_width_are_refused(seq: int) -> None:
    with pytest.raises(ValueError, match=r"outside 0\.\.4294967295"):
        checkpoint_id("a" * 24, seq)
    with pytest.raises(ValueError, match=r"outside 0\.\.4294967295"):
        CheckpointIds("a" * 24)(seq)
    with pytest.raises(ValueError, match=r"outside 0\.\.4294967295"):
        ids_module.prefixed_checkpoint_id(ids_module.checkpoint_id_prefix("a" * 24), seq)


@pytest.mark.parametrize("seq", [0, 1, 9, 10, 255, 256, 257, 4096, 2**32 - 1])
def test_checkpoint_ids_are_the_prefix_c_and_eight_hex_digits_on_both_sides_of_the_cache(seq: int) -> None:
    job_id = "abcdefghijklmnopqrstu123"
    expected = f"abcdefghijklmnoc{seq:08x}"
    assert checkpoint_id(job_id, seq) == expected
    assert CheckpointIds(job_id)(seq) == expected
    # What the engine uses: the prefix kept as a string, then each sequence number.
    assert ids_module.prefixed_checkpoint_id(ids_module.checkpoint_id_prefix(job_id), seq) == expected


@given(st.one_of(st.text(max_size=30), st.integers()), st.one_of(st.text(max_size=30), st.integers()))
def test_derived_ids_of_two_strings_are_those_of_their_text(a: str | int, b: str | int) -> None:
    # Two strings take a shorter way to the seed (the engine's root and child run ids): the same id.
    seed = "\x1f".join([str(a), str(b)]).encode()
    digest = ids_module.hashlib.blake2b(seed, digest_size=64).digest()
    expected = ids_module._encode(digest)
    if expected is not None:  # else drawn again from the digest: the same code either way
        assert derived_id(a, b) == expected


def test_id_and_expert_key_schemas_state_their_patterns() -> None:
    from expert_jobs.domain.wire import ExpertJob

    schema = ExpertJob.model_json_schema(by_alias=True)["properties"]
    assert schema["id"]["pattern"] == "^[a-z0-9]+$"
    assert schema["id"]["minLength"] == schema["id"]["maxLength"] == 24
    assert schema["expertKey"]["pattern"].startswith("^((?:@[a-z0-9][a-z0-9_.-]*\\/)?")
    assert schema["expertKey"]["maxLength"] == 511
