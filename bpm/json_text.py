"""Reading JSON text on the hot path: the standard library's values at orjson's speed.

`loads` returns what `json.loads` returns for every text, and raises what it raises. orjson reads the common case
(a few times faster); the texts where orjson would give another value or refuse one the standard library accepts
go to `json.loads`:
- an integer of 19 digits or more: orjson reads one outside 64 bits as a float, losing digits (any run of 19
  digits sends the text there, even inside a string or a float: slower, never wrong);
- the standard library's extensions to JSON, which orjson refuses: NaN, Infinity, lone surrogates, numbers out
  of a float's range, and texts it cannot decode as UTF-8 (json.loads also reads UTF-16 and UTF-32).
Writing stays with the standard library where its text is stored: orjson writes NaN and Infinity as null.
"""

from __future__ import annotations

import json
from typing import Any

import orjson

_DIGITS_AS_ZEROS = bytes.maketrans(b"123456789", b"000000000")
_NINETEEN_DIGITS = b"0" * 19


def loads(text: str | bytes | bytearray | memoryview) -> Any:
    data = _encoded(text)
    if _NINETEEN_DIGITS not in data.translate(_DIGITS_AS_ZEROS):  # 3 us for a 3 KB state; a regex took 39
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError:
            pass  # json.loads reads it the standard library's way, or raises its own error for it
    return json.loads(text if isinstance(text, str | bytes) else data)


def _encoded(text: str | bytes | bytearray | memoryview) -> bytes | bytearray:
    if isinstance(text, str):
        return text.encode("utf-8", "surrogatepass")  # a lone surrogate stays: orjson refuses it, json.loads reads it
    return bytes(text) if isinstance(text, memoryview) else text
