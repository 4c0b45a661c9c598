"""api.schema_base.Schema dumps what marshmallow's own Schema dumps, for every schema of the API."""

from __future__ import annotations

import importlib
import pkgutil
from datetime import UTC, datetime
from types import SimpleNamespace

import marshmallow
import pytest
from marshmallow import fields

import api.blueprints
from api import schema_base

NOW = datetime(2026, 1, 5, 9, 30, 15, 123456, tzinfo=UTC)


def all_schemas() -> list[type[schema_base.Schema]]:
    for module in ("api.schemas", "api.schemas_approvals", "api.schemas_records"):
        importlib.import_module(module)
    for info in pkgutil.iter_modules(api.blueprints.__path__):
        importlib.import_module(f"api.blueprints.{info.name}")
    found, pending = [], [schema_base.Schema]
    while pending:
        for subclass in pending.pop().__subclasses__():
            found.append(subclass)
            pending.append(subclass)
    return sorted(set(found), key=lambda schema: (schema.__module__, schema.__name__))


SCHEMAS = all_schemas()


def marshmallows_dump(schema: schema_base.Schema, obj, many: bool = False):
    """The dump marshmallow's own `_serialize` gives, nested schemas included."""
    original = schema_base.Schema._serialize
    schema_base.Schema._serialize = marshmallow.Schema._serialize
    try:
        return schema.dump(obj, many=many)
    finally:
        schema_base.Schema._serialize = original


def sample(field: fields.Field, depth: int = 0):
    """A value a field of this kind dumps without error."""
    if isinstance(field, fields.Nested):
        nested = field.schema
        value = SimpleNamespace(**{name: sample(inner, depth + 1) for name, inner in nested.fields.items()
                                   if depth < 2})
        return [value, value] if field.many or nested.many else value
    if isinstance(field, fields.List):
        return [sample(field.inner, depth), sample(field.inner, depth)]
    if isinstance(field, fields.DateTime):
        return NOW
    if isinstance(field, fields.Date):
        return NOW.date()
    if isinstance(field, fields.Boolean):
        return True
    if isinstance(field, fields.Integer):
        return 7
    if isinstance(field, fields.Float | fields.Decimal | fields.Number):
        return 2.5
    if isinstance(field, fields.Dict):
        return {"k": 1, "nested": {"x": [1, "y"]}}
    return "text é"


def test_every_schema_of_the_api_is_found():
    names = {schema.__name__ for schema in SCHEMAS}
    assert {"TaskSchema", "InstanceDetailSchema", "InboxPageSchema", "QuoteSchema", "WebhookSchema"} <= names
    assert len(SCHEMAS) > 80


def assert_same_dump(schema: schema_base.Schema, obj, many: bool = False) -> None:
    """The same dump, keys in the same order, or the same error (a method field may need more than a sample)."""
    try:
        expected = marshmallows_dump(schema, obj, many)
    except Exception as error:  # noqa: BLE001 - whatever marshmallow raises, ours must raise too
        with pytest.raises(type(error)):
            schema.dump(obj, many=many)
        return
    dumped = schema.dump(obj, many=many)
    assert dumped == expected
    assert [list(item) for item in dumped] == [list(item) for item in expected] if many else \
        list(dumped) == list(expected)


@pytest.mark.parametrize("schema_class", SCHEMAS, ids=lambda schema: schema.__name__)
def test_a_dump_is_marshmallows_for_full_empty_and_partial_objects(schema_class):
    schema = schema_class()
    full = SimpleNamespace(**{name: sample(field) for name, field in schema.fields.items()})
    nones = SimpleNamespace(**dict.fromkeys(schema.fields))
    partial = SimpleNamespace(**{name: value for index, (name, value) in enumerate(vars(full).items())
                                 if index % 2 == 0})
    for obj in (full, nones, partial, SimpleNamespace(), vars(full)):  # a mapping: marshmallow's own reading
        assert_same_dump(schema, obj)
    assert_same_dump(schema, [full, nones], many=True)


def test_a_field_read_its_own_way_goes_through_marshmallow():
    class Schema(schema_base.Schema):
        plain = fields.String()
        renamed = fields.String(attribute="source", data_key="shown")
        dotted = fields.String(attribute="inner.value")
        defaulted = fields.String(dump_default="fallback")
        computed = fields.Method("compute")

        def compute(self, obj):
            return obj.plain.upper()

    obj = SimpleNamespace(plain="a", source="b", inner=SimpleNamespace(value="c"))
    assert Schema().dump(obj) == {"plain": "a", "shown": "b", "dotted": "c", "defaulted": "fallback",
                                  "computed": "A"}
    steps = {name: how for _key, name, _source, _field, how in schema_base._dump_plan(Schema())}
    assert steps["plain"] is schema_base._DIRECT and steps["renamed"] is schema_base._DIRECT
    assert steps["dotted"] is None and steps["defaulted"] is None and steps["computed"] is None


def test_a_schema_reading_attributes_its_own_way_is_left_to_marshmallow():
    class Schema(schema_base.Schema):
        name = fields.String()

        def get_attribute(self, obj, attr, default):
            return "always"

    assert Schema().dump(SimpleNamespace(name="x")) == {"name": "always"}
    assert schema_base._dump_plan(Schema()) == []
