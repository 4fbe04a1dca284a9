"""Hypothesis strategies for the domain's values: statuses, triggers, ids, expert keys, start
requests and usages."""

from __future__ import annotations

import math
import string
from dataclasses import dataclass
from typing import Any

from hypothesis import strategies as st
from hypothesis.strategies import SearchStrategy

from expert_jobs.domain.expert_key import EXPERT_KEY_MAX_LENGTH
from expert_jobs.domain.ids import ID_LENGTH
from expert_jobs.domain.lifecycle import TRIGGERS
from expert_jobs.domain.models import SPEC_MODEL_IDS
from expert_jobs.domain.status import FINAL_STATUSES, JobStatus
from expert_jobs.domain.usage import Usage
from expert_jobs.domain.wire import MAX_FILE_NAME_LENGTH, MAX_QUERY_LENGTH
from expert_jobs.testing._table import ALLOWED, FORBIDDEN, MOVES

__all__ = [
    "START_REQUEST_FIELDS",
    "expert_keys",
    "ids",
    "illegal_triggers_for",
    "invalid_expert_keys",
    "invalid_ids",
    "invalid_start_requests",
    "legal_trigger_sequences",
    "start_requests",
    "statuses",
    "triggers",
    "usages",
]

_LETTERS = string.ascii_lowercase
_SYMBOLS = string.ascii_lowercase + string.digits
_KEY_FIRST = _SYMBOLS
_KEY_REST = _SYMBOLS + "_.-"
_SEMVER_EXTRA = string.ascii_letters + string.digits + "_.-"  # ``[\w.-]`` under re.ASCII


# --- lifecycle ------------------------------------------------------------------------------


def statuses(*, final: bool | None = None) -> SearchStrategy[JobStatus]:
    """Job statuses: all ten, or only the final ones (``final=True``: ``canceled``, ``expired``),
    or only those some trigger leaves (``final=False``)."""
    chosen = [s for s in JobStatus if final is None or (s in FINAL_STATUSES) == final]
    return st.sampled_from(chosen)


def triggers() -> SearchStrategy[str]:
    """Lifecycle trigger names (``start``, ``complete``, ... ``expire``), legal or not anywhere."""
    return st.sampled_from(TRIGGERS)


def legal_trigger_sequences(
    start: JobStatus | str = JobStatus.QUEUED, *, max_size: int = 20
) -> SearchStrategy[list[str]]:
    """Sequences of triggers that are each legal in turn from ``start`` (a walk through the table).

    A walk has at most ``max_size`` triggers and ends early when it reaches a final status.
    For walks from any status: ``statuses().flatmap(lambda s: legal_trigger_sequences(start=s))``.
    """
    if max_size < 0:
        raise ValueError(f"max_size must be >= 0, got {max_size}")
    first = JobStatus(start)

    @st.composite
    def walk(draw: st.DrawFn) -> list[str]:
        size = draw(st.integers(0, max_size), label="size")
        status, moves = first, list[str]()
        while len(moves) < size and ALLOWED[status]:
            trigger = draw(st.sampled_from(ALLOWED[status]))
            moves.append(trigger)
            status = MOVES[(status, trigger)]
        return moves

    return walk()


def illegal_triggers_for(status: JobStatus | str) -> SearchStrategy[str]:
    """Triggers the table does not allow from ``status`` (every trigger for a final status)."""
    return st.sampled_from(FORBIDDEN[JobStatus(status)])


# --- ids --------------------------------------------------------------------------------------


def ids() -> SearchStrategy[str]:
    """Resource ids as the library makes them: 24 of ``[a-z0-9]``, the first a letter."""
    return st.tuples(
        st.sampled_from(_LETTERS), st.text(_SYMBOLS, min_size=ID_LENGTH - 1, max_size=ID_LENGTH - 1)
    ).map("".join)


def invalid_ids() -> SearchStrategy[str]:
    """Strings the spec's id validator rejects: a wrong length, or a character outside ``[a-z0-9]``
    (upper case, punctuation, non-ASCII, a trailing newline)."""
    wrong_length = st.one_of(
        st.text(_SYMBOLS, max_size=ID_LENGTH - 1),
        st.text(_SYMBOLS, min_size=ID_LENGTH + 1, max_size=ID_LENGTH + 16),
    )
    bad_char = st.tuples(
        ids(),
        st.integers(0, ID_LENGTH - 1),
        st.sampled_from(["A", "Z", "-", "_", " ", ".", "/", "é", "٣", "\n"]),
    ).map(lambda t: t[0][: t[1]] + t[2] + t[0][t[1] + 1 :])
    return st.one_of(wrong_length, bad_char, ids().map(lambda i: i + "\n"))


# --- expert keys ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _KeyParts:
    scope: str | None
    name: str
    version: str | None
    tag: str | None

    def key(self, name: str | None = None) -> str:
        text = f"@{self.scope}/" if self.scope is not None else ""
        text += self.name if name is None else name
        if self.version is not None:
            text += f"@{self.version}"
        elif self.tag is not None:
            text += f"@{self.tag}"
        return text


def _segments(max_rest: int = 20) -> SearchStrategy[str]:
    """``[a-z0-9][a-z0-9_.-]*``: a name, a scope or a tag."""
    return st.tuples(st.sampled_from(_KEY_FIRST), st.text(_KEY_REST, max_size=max_rest)).map("".join)


def _semvers() -> SearchStrategy[str]:
    number = st.integers(0, 10**6).map(str)
    extra = st.text(_SEMVER_EXTRA, min_size=1, max_size=12)
    return st.tuples(number, number, number, st.none() | extra, st.none() | extra).map(
        lambda p: (
            f"{p[0]}.{p[1]}.{p[2]}"
            + (f"-{p[3]}" if p[3] is not None else "")
            + (f"+{p[4]}" if p[4] is not None else "")
        )
    )


@st.composite
def _key_parts(draw: st.DrawFn) -> _KeyParts:
    scope = draw(st.none() | _segments())
    name = draw(_segments())
    suffix = draw(st.sampled_from(["none", "version", "tag"]))
    version = draw(_semvers()) if suffix == "version" else None
    tag = draw(_segments()) if suffix == "tag" else None
    return _KeyParts(scope, name, version, tag)


def expert_keys() -> SearchStrategy[str]:
    """Valid expert keys: bare (``writer``), scoped (``@acme/writer``), with a semver version
    (``writer@1.2.3``, pre-release and build included: ``writer@1.0.0-rc.1+b.7``) or a tag
    (``writer@latest``); now and then one exactly 511 characters long (the maximum)."""
    longest = st.sampled_from(_KEY_FIRST).map(lambda c: c * EXPERT_KEY_MAX_LENGTH)
    return st.one_of(_key_parts().map(_KeyParts.key), longest)


_BAD_NAME_CHARS = [*"ABCZ +!#$%&*()=[]{}:;,'\"<>?\\|~`/\n\t", "é", "ß", "ａ", "٣"]


@st.composite
def _mutated_keys(draw: st.DrawFn) -> str:
    parts = draw(_key_parts())
    how = draw(st.sampled_from(["bad_char", "bad_first", "empty_suffix"]))
    if how == "empty_suffix":
        return parts.key() + "@"
    if how == "bad_first":
        return parts.key(draw(st.sampled_from("-._")) + parts.name)
    at = draw(st.integers(0, len(parts.name)))
    return parts.key(parts.name[:at] + draw(st.sampled_from(_BAD_NAME_CHARS)) + parts.name[at:])


_INVALID_KEY_EXAMPLES = [
    "",
    "@",
    "@/writer",
    "@acme",
    "@acme/",
    "@Acme/writer",
    "@acme/@b/writer",
    "@acme/writer/x",
    "writer@",
    "writer@@1.0.0",
    "writer@1.0.0@latest",
    "writer@1.2.3+",
    "writer@-tag",
    "writer@.tag",
    "writer@_tag",
    "writer@Latest",
    "Writer",
    " writer",
    "writer ",
    "writer\n",
    "-writer",
]


def invalid_expert_keys() -> SearchStrategy[str]:
    """Strings that are not expert keys: a malformed scope, name or suffix, a character outside
    the pattern (upper case in a name, spaces, non-ASCII, a trailing newline), an empty ``@``
    suffix, or more than 511 characters."""
    too_long = st.integers(EXPERT_KEY_MAX_LENGTH + 1, EXPERT_KEY_MAX_LENGTH + 64).map(lambda n: "a" * n)
    return st.one_of(st.sampled_from(_INVALID_KEY_EXAMPLES), _mutated_keys(), too_long)


# --- start requests ---------------------------------------------------------------------------

START_REQUEST_FIELDS: tuple[str, ...] = (
    "expertKey",
    "query",
    "files",
    "temperature",
    "maxSteps",
    "maxRetries",
    "model",
)
"""The wire names of the start request's fields."""

_FILE_SEGMENT = st.text(_SYMBOLS + "_-", min_size=1, max_size=12)


def _file_names() -> SearchStrategy[str]:
    """Relative, workspace-safe file names (no ``..``, not absolute), e.g. ``docs/a-1.md``."""
    return st.tuples(
        st.lists(_FILE_SEGMENT, min_size=1, max_size=3).map("/".join),
        st.sampled_from(["", ".txt", ".md", ".json", ".png", ".pdf"]),
    ).map("".join)


def _queries(min_size: int = 0) -> SearchStrategy[str]:
    return st.one_of(st.text(min_size=min_size, max_size=200), st.just("q" * MAX_QUERY_LENGTH))


def _finite(lo: float, hi: float) -> SearchStrategy[float]:
    return st.floats(lo, hi, allow_nan=False, allow_infinity=False)


def _temperatures() -> SearchStrategy[Any]:
    """0..1 as a float, an int, or a numeric string."""
    return st.one_of(
        _finite(0, 1),
        st.sampled_from([0, 1]),
        _finite(0, 1).map(repr),
        _finite(0, 1).map(lambda x: f"{x:.2f}"),
        st.sampled_from(["0", "1", "0.5"]),
    )


def _whole_numbers(lo: int, hi: int) -> SearchStrategy[Any]:
    """Whole numbers in ``lo..hi`` as an int, a numeric string, or a float with no fraction."""
    number = st.integers(lo, hi)
    return st.one_of(number, number.map(str), number.map(float))


@st.composite
def _start_request(
    draw: st.DrawFn, keys: SearchStrategy[str], with_files: bool, require_input: bool
) -> dict[str, Any]:
    body: dict[str, Any] = {"expertKey": draw(keys)}
    query = draw(st.none() | _queries())
    files: str | list[str] | None = None
    if with_files:
        files = draw(st.none() | _file_names() | st.lists(_file_names(), max_size=4))
    if require_input and not query and not files:
        query = draw(_queries(min_size=1))
    if query is not None:
        body["query"] = query
    if files is not None:
        body["files"] = files
    optional: dict[str, SearchStrategy[Any]] = {
        "temperature": _temperatures(),
        "maxSteps": _whole_numbers(1, 10**6),
        "maxRetries": _whole_numbers(0, 100),
        "model": st.sampled_from(SPEC_MODEL_IDS),
    }
    for field, values in optional.items():
        if draw(st.booleans()):
            body[field] = draw(values)
    return body


def start_requests(
    *,
    expert_key: str | SearchStrategy[str] | None = None,
    files: bool = True,
    require_input: bool = True,
) -> SearchStrategy[dict[str, Any]]:
    """Valid ``StartJobRequest`` bodies as JSON-ready dicts (camelCase keys).

    ``temperature`` (0..1), ``maxSteps`` (>= 1) and ``maxRetries`` (>= 0) come as numbers or numeric
    strings; ``files`` as one name or a list of names (relative, workspace-safe, not necessarily
    existing); ``query`` sometimes at its 20,480-character maximum; ``model`` one of the spec's ids.

    ``expert_key``: a fixed key or a strategy of keys (default: :func:`expert_keys`); fix it to an
    expert your runtime knows when the bodies go to a service. ``files=False`` leaves ``files`` out.
    ``require_input`` (default) makes every body carry a non-empty query or files, as the API
    requires ("Query or files are required"); without it, bodies are only schema-valid.
    """
    if expert_key is None:
        keys = expert_keys()
    elif isinstance(expert_key, str):
        keys = st.just(expert_key)
    else:
        keys = expert_key
    return _start_request(keys, files, require_input)


def _out_of_range(field: str) -> SearchStrategy[Any]:
    """Values of ``field`` the start request must reject."""
    not_a_number = st.sampled_from(["", "abc", "1,5", "0x1", "nan", "NaN", "inf", "-Infinity", "1..2"])
    common = st.one_of(
        st.booleans(),
        not_a_number,
        st.sampled_from([math.nan, math.inf, -math.inf]),
        st.sampled_from([[], [1], {}, {"value": 1}]),
    )
    if field == "temperature":
        # explicit bounds, not ``.filter(lambda x: x < 0)``: hypothesis rewrites such filters into
        # bounds that let -0.0 and 0.0 through
        below = _finite(-1e6, math.nextafter(0.0, -1.0))
        above = _finite(math.nextafter(1.0, 2.0), 1e6)
        return st.one_of(common, below, above, below.map(repr), above.map(repr), st.sampled_from([-1, 2]))
    if field in ("maxSteps", "maxRetries"):
        lowest = 1 if field == "maxSteps" else 0
        too_small = st.integers(-(10**6), lowest - 1)
        fraction = _finite(-1e6, 1e6).filter(lambda x: not x.is_integer())
        return st.one_of(common, too_small, too_small.map(str), fraction, fraction.map(repr))
    if field == "query":
        too_long = st.integers(MAX_QUERY_LENGTH + 1, MAX_QUERY_LENGTH + 64).map(lambda n: "q" * n)
        return st.one_of(too_long, st.integers(), st.booleans(), st.just(["a query"]), st.just({}))
    if field == "files":
        too_long = st.integers(MAX_FILE_NAME_LENGTH + 1, MAX_FILE_NAME_LENGTH + 64).map(lambda n: "f" * n)
        return st.one_of(
            too_long,
            st.tuples(st.lists(_file_names(), max_size=3), too_long).map(lambda t: [*t[0], t[1]]),
            st.lists(_file_names(), max_size=2).map(lambda names: [*names, 7]),
            st.integers(),
            st.booleans(),
            st.just({"name": "a.txt"}),
        )
    if field == "model":
        return st.one_of(
            st.sampled_from(["", "gpt-6", "GPT-5", "claude", "gpt-5 ", "gemini-1.0-pro"]),
            st.text(max_size=30).filter(lambda m: m not in SPEC_MODEL_IDS),
            st.integers(),
            st.booleans(),
        )
    if field == "expertKey":
        return st.one_of(invalid_expert_keys(), st.integers(), st.booleans(), st.none(), st.just(["a"]))
    raise ValueError(f"unknown start request field {field!r}; known: {', '.join(START_REQUEST_FIELDS)}")


_MISSING = object()


@st.composite
def _invalid_start_request(draw: st.DrawFn, fields: tuple[str, ...]) -> tuple[dict[str, Any], str]:
    body = draw(start_requests(require_input=False))
    field = draw(st.sampled_from(fields))
    if field == "expertKey" and draw(st.booleans()):
        value: Any = _MISSING
    else:
        value = draw(_out_of_range(field))
    if value is _MISSING:
        del body[field]
    else:
        body[field] = value
    return body, field


def invalid_start_requests(
    fields: tuple[str, ...] = START_REQUEST_FIELDS,
) -> SearchStrategy[tuple[dict[str, Any], str]]:
    """``(body, field)``: a start request body with exactly one field out of range, and that field's
    wire name. Every other field is valid, so a 422 reason must name ``field`` and only it.

    Out of range: ``expertKey`` missing or not a key; ``query`` or a file name over 20,480
    characters; ``files`` not a string or a list of strings; ``temperature`` outside 0..1;
    ``maxSteps`` < 1 or ``maxRetries`` < 0 or not whole; any number that is a boolean, NaN, an
    infinity or a non-numeric string; ``model`` not a spec id. ``fields`` narrows the choice.
    """
    unknown = [f for f in fields if f not in START_REQUEST_FIELDS]
    if unknown or not fields:
        raise ValueError(f"fields must be among {', '.join(START_REQUEST_FIELDS)}; got {fields!r}")
    return _invalid_start_request(tuple(fields))


# --- usage ------------------------------------------------------------------------------------


@st.composite
def _usage(draw: st.DrawFn, max_tokens: int) -> Usage:
    input_tokens = draw(st.integers(0, max_tokens))
    output_tokens = draw(st.integers(0, max_tokens))
    return Usage.of(
        input_tokens,
        output_tokens,
        cached=draw(st.integers(0, input_tokens)),
        reasoning=draw(st.integers(0, output_tokens)),
    )


def usages(*, max_tokens: int = 10**9) -> SearchStrategy[Usage]:
    """Consistent :class:`~expert_jobs.Usage` values: cached <= input, reasoning <= output,
    total == input + output, each counter at most ``max_tokens`` (the total at most twice that)."""
    return _usage(max_tokens)
