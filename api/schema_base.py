"""The base of the API's marshmallow schemas: marshmallow's Schema, with the attribute reads of a dump made direct.

Dumping an object, marshmallow asks each field for its value through three calls (Field.serialize, Field.get_value,
utils.get_value, which tries `obj[key]` before `getattr`) and then formats it (the field's `_serialize`). For an
object that cannot be indexed (an ORM row, a dataclass), `getattr(obj, attribute)` is what that chain ends in, so
`_serialize` here reads it directly and hands it to the same `_serialize`: a task dumped in 10.4 instead of 23.5 us
(BENCHMARKS.md, "Engine floor vs server", sixteenth round), 50 of them in 0.51 instead of 1.16 ms. A field
that does anything else (no attribute to check, a dump default, a dotted attribute, its own `serialize` or
`get_value`), a schema with its own `get_attribute`, and an indexable object (a dict) go through marshmallow's own
path, as do the schema's hooks, which `dump` runs around `_serialize` as before.
"""

from __future__ import annotations

from typing import Any

import marshmallow
from marshmallow import fields
from marshmallow.utils import missing

_DIRECT = object()  # a plan step's marker: read the attribute and format it; otherwise marshmallow's own field call


class Schema(marshmallow.Schema):
    _plan: list[tuple] | None = None  # the schema instance's dump plan, made at its first dump

    def _serialize(self, obj: Any, *, many: bool = False):
        if many and obj is not None:
            return [self._serialize(item, many=False) for item in obj]
        plan = self._plan
        if plan is None:
            plan = self._plan = _dump_plan(self)
        if not plan or hasattr(obj, "__getitem__"):
            return super()._serialize(obj, many=False)
        dumped = self.dict_class()
        for key, attr_name, source, field, how in plan:
            if how is _DIRECT:
                value = getattr(obj, source, missing)
                if value is missing:
                    continue
                value = field._serialize(value, attr_name, obj)
            else:
                value = field.serialize(attr_name, obj, accessor=self.get_attribute)
            if value is missing:
                continue
            dumped[key] = value
        return dumped


def _dump_plan(schema: Schema) -> list[tuple]:
    """(output key, field name, attribute, field, how) per dumped field, or an empty list when the schema reads
    attributes its own way (all of it goes through marshmallow then)."""
    if type(schema).get_attribute is not marshmallow.Schema.get_attribute:
        return []
    return [(field.data_key if field.data_key is not None else name, name, field.attribute or name, field,
             _DIRECT if _reads_its_attribute(field, field.attribute or name) else None)
            for name, field in schema.dump_fields.items()]


def _reads_its_attribute(field: fields.Field, source: str) -> bool:
    """Whether marshmallow's call for the field comes down to `field._serialize(getattr(obj, source))` for an
    object that cannot be indexed (a missing attribute: the field is left out)."""
    kind = type(field)
    return (field._CHECK_ATTRIBUTE and field.dump_default is missing and "." not in source
            and kind.serialize is fields.Field.serialize and kind.get_value is fields.Field.get_value)
