"""Reading JSON text on the hot path: the standard library's values at orjson's speed.

`loads` returns what `json.loads` returns for every text, and raises what it raises. orjson reads the common case
(a few times faster); the texts where orjson would give another value or refuse one the standard library accepts
go to `json.loads`:
- an integer of 19 digits or more: orjson reads one outside 64 bits as a float, losing digits (any run of 19
  digits sends the text there, even inside a string: slower, never wrong);
- the standard library's extensions to JSON, which orjson refuses: NaN, Infinity, lone surrogates, numbers out
  of a float's range, and texts it cannot decode as UTF-8 (json.loads also reads UTF-16 and UTF-32).
Writing stays with the standard library where its text is stored: orjson writes NaN and Infinity as null.
"""

from __future__ import annotations

import json
import re
from typing import Any

import orjson

_LONG_DIGITS_TEXT = re.compile(r"[0-9]{19}")
_LONG_DIGITS_BYTES = re.compile(rb"[0-9]{19}")


def loads(text: str | bytes | bytearray | memoryview) -> Any:
    long_digits = _LONG_DIGITS_TEXT if isinstance(text, str) else _LONG_DIGITS_BYTES
    if long_digits.search(text) is None:
        try:
            return orjson.loads(text)
        except orjson.JSONDecodeError:
            pass  # json.loads reads it the standard library's way, or raises its own error for it
    return json.loads(bytes(text) if isinstance(text, memoryview) else text)
