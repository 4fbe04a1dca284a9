"""Reading PostgreSQL ``json`` columns: the same values as psycopg's loader, for less work.

psycopg hands every ``json`` value to :func:`json.loads` as bytes, which first sniffs the encoding
and then runs the decoder's Python wrapper (two regular-expression matches for the surrounding
whitespace). The store's JSON is compact text it wrote itself, so the C scanner alone reads it;
anything else (whitespace around the value, trailing text, invalid JSON) goes to
:func:`json.loads`, whose answer or error it is. A claim reads four such values per job.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from json.scanner import make_scanner
from typing import Any, cast

from psycopg.abc import Buffer
from psycopg.adapt import AdaptersMap, Loader

__all__ = ["load_json", "register_json_loader"]

# The C scanner (what JSONDecoder.raw_decode runs), with json.loads' defaults.
_scan: Callable[[str, int], tuple[Any, int]] = make_scanner(cast(Any, json.JSONDecoder()))


def load_json(text: str) -> Any:
    """``json.loads(text)``: the C scanner's value when it consumed the whole text, else the full
    parser's (which also raises the usual ``JSONDecodeError``)."""
    try:
        value, end = _scan(text, 0)
    except StopIteration:
        return json.loads(text)
    if end != len(text):
        return json.loads(text)
    return value


class _JsonLoader(Loader):
    def load(self, data: Buffer) -> Any:
        return load_json(str(data, "utf-8"))


def register_json_loader(adapters: AdaptersMap) -> None:
    """Read ``json`` columns (text format) with :func:`load_json`."""
    adapters.register_loader("json", _JsonLoader)
