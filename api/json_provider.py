"""The API's JSON: Flask's own provider, with orjson writing the responses and bpm.json_text reading the requests.

A response's JSON cost the HTTP worker about as much CPU as writing the instance's state (BENCHMARKS.md, "Engine
floor vs server", sixteenth round). orjson writes the same text as Flask's provider does in its compact form (keys
sorted, no spaces, non-ASCII as it is): values it cannot write itself go to the provider's `default` as before
(dates, decimals, dataclasses); what orjson refuses (an integer beyond 64 bits, a key that is not a string, a
named tuple) and any other form (indented in debug mode, ASCII only, other arguments) are written by the standard
library. Two differences: a float's negative exponent has no leading zero (1e-7, where Python writes 1e-07: the
same number), and NaN or Infinity, which JSON has no words for, is written as null instead of a token no JSON
parser reads.
"""

from __future__ import annotations

from typing import Any

import orjson
from flask.json.provider import DefaultJSONProvider

from bpm import json_text

_PASSED_TO_DEFAULT = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS  # as json.dumps does
_COMPACT = {"separators": (",", ":")}


class JSONProvider(DefaultJSONProvider):
    def dumps(self, obj: Any, **kwargs: Any) -> str:
        if kwargs != _COMPACT or self.ensure_ascii:  # only the form responses take is written by orjson
            return super().dumps(obj, **kwargs)
        options = _PASSED_TO_DEFAULT | (orjson.OPT_SORT_KEYS if self.sort_keys else 0)
        try:
            return orjson.dumps(obj, default=self.default, option=options).decode()
        except TypeError:  # orjson's JSONEncodeError is one, as is its error for an integer beyond 64 bits
            return super().dumps(obj, **kwargs)  # the standard library's text, or its error

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        return super().loads(s, **kwargs) if kwargs else json_text.loads(s)
