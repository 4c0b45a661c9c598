"""bpm.json_text.loads gives json.loads' values, types included, and raises its errors; the API's JSON provider
writes Flask's own compact text but for the two documented differences; a state is restored with its values."""

from __future__ import annotations

import dataclasses
import json
import math
import random
import uuid
from collections import namedtuple
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from flask import Flask
from flask.json.provider import DefaultJSONProvider

from api.json_provider import JSONProvider
from bpm import engine, json_text

TEXTS = [
    '{"a": 1, "b": [true, false, null], "c": {"d": "e"}}',
    '[12345678901234567890123, -12345678901234567890123]',  # beyond 64 bits: orjson reads floats
    '[9999999999999999999, -9999999999999999999, 18446744073709551615, -9223372036854775809]',
    '[9223372036854775807, -9223372036854775808, 123456789012345678]',
    '{"id": "1234567890123456789012345"}',  # a long run of digits inside a string
    '[NaN, Infinity, -Infinity]',  # the standard library's extensions
    '[1e400, -1e400]',
    '["\\ud800", "\\udfff x"]',  # lone surrogates
    '[0.1, -0.0, 5e-324, 1.7976931348623157e308, 1e16, 1E-7, 2.5e+3]',
    '{"a": 1, "a": 2}',
    '"\\u00e9t\\u00e9 \\u2028 \\n"',
    '  {"spaced" : [ 1 , 2 ] }  ',
    '{"ünïcödé": "日本語"}',
]


def same(left, right) -> bool:
    """Equal values of the same types all the way down, NaN equal to NaN."""
    if type(left) is not type(right):
        return False
    if isinstance(left, float):
        return (math.isnan(left) and math.isnan(right)) or (left == right and math.copysign(1, left) ==
                                                            math.copysign(1, right))
    if isinstance(left, dict):
        return list(left) == list(right) and all(same(left[key], right[key]) for key in left)
    if isinstance(left, list):
        return len(left) == len(right) and all(same(a, b) for a, b in zip(left, right, strict=True))
    return left == right


@pytest.mark.parametrize("text", TEXTS)
@pytest.mark.parametrize("kind", ["str", "bytes", "memoryview"])
def test_loads_gives_the_standard_librarys_values(text, kind):
    given = {"str": text, "bytes": text.encode(), "memoryview": memoryview(text.encode())}[kind]
    assert same(json_text.loads(given), json.loads(text))


def test_loads_reads_utf16_as_the_standard_library_does():
    text = '{"ä": [1, 2.5]}'.encode("utf-16")
    assert same(json_text.loads(text), json.loads(text))


def test_random_numbers_are_read_with_their_types_and_values():
    generator = random.Random(7)
    for _ in range(3000):
        digits = generator.randint(1, 30)
        integer = generator.choice((1, -1)) * generator.randint(10 ** (digits - 1), 10 ** digits)
        real = generator.uniform(-1e6, 1e6) * 10 ** generator.randint(-30, 30)
        text = json.dumps({"i": integer, "f": real, "s": str(integer)})
        assert same(json_text.loads(text), json.loads(text)), text


@pytest.mark.parametrize("text", ['{"a": ', "[1, 2,]", "", "nan", '{"a": 1} x', b"\xff\xfe\x00", b"\x80[]"])
def test_loads_raises_the_standard_librarys_error(text):
    with pytest.raises(ValueError) as theirs:
        json.loads(text)
    with pytest.raises(ValueError) as ours:
        json_text.loads(text)
    assert type(ours.value) is type(theirs.value) and str(ours.value) == str(theirs.value)


@pytest.fixture
def providers():
    app = Flask(__name__)
    ours, flasks = JSONProvider(app), DefaultJSONProvider(app)
    ours.ensure_ascii = flasks.ensure_ascii = False  # as the API sets it
    return ours, flasks


@dataclasses.dataclass
class Point:
    x: int
    label: str


Pair = namedtuple("Pair", "left right")


def test_a_response_is_the_text_flasks_provider_writes(providers):
    ours, flasks = providers
    payload = {"zeta": 1, "alpha": [1, 2.5, -0.0, "é", None, True], "when": datetime(2026, 1, 5, 9, tzinfo=UTC),
               "day": date(2026, 1, 5), "money": Decimal("10.50"), "id": uuid.UUID(int=7),
               "point": Point(1, "p"), "nested": {"b": {"d": 1, "c": 2}, "a": []}, "control": "a\u0001\u2028b",
               "floats": [1e16, 0.1, 2.5e300, 1e-4, 123.456]}
    compact = {"separators": (",", ":")}
    assert ours.dumps(payload, **compact) == flasks.dumps(payload, **compact)
    assert ours.dumps({"b": 1, "a": 2}, **compact) == '{"a":2,"b":1}'
    # what orjson refuses, written by the standard library
    for refused in ({"big": 10 ** 30}, {"pair": Pair(1, 2)}, {3: "integer key", 4: [5]}):
        assert ours.dumps(refused, **compact) == flasks.dumps(refused, **compact)


def test_a_response_differs_only_in_negative_exponents_and_non_numbers(providers):
    ours, flasks = providers
    assert ours.dumps([1e-7, 2.5e-10], separators=(",", ":")) == "[1e-7,2.5e-10]"
    assert flasks.dumps([1e-7, 2.5e-10], separators=(",", ":")) == "[1e-07,2.5e-10]"
    assert ours.dumps([float("nan"), float("inf")], separators=(",", ":")) == "[null,null]"
    assert flasks.dumps([float("nan"), float("inf")], separators=(",", ":")) == "[NaN,Infinity]"


def test_other_forms_and_unwritable_values_go_to_the_standard_library(providers):
    ours, flasks = providers
    assert ours.dumps({"b": [1], "a": "é"}, indent=2) == flasks.dumps({"b": [1], "a": "é"}, indent=2)
    assert ours.dumps({"b": 1}) == flasks.dumps({"b": 1}) == '{"b": 1}'
    with pytest.raises(TypeError):
        ours.dumps({"a": {1, 2}}, separators=(",", ":"))
    assert same(ours.loads("[NaN, 12345678901234567890123]"), [float("nan"), 12345678901234567890123])


def test_a_state_written_by_the_standard_library_is_restored_with_its_values():
    from conftest import bpmn_fixture

    _xml, compiled = engine.compile_bpmn(bpmn_fixture("expense_approval.bpmn"))
    runtime = engine.ProcessRuntime(compiled[0].spec_json)
    workflow = runtime.new_workflow()
    variables = {"amount": 5000, "account": 12345678901234567890123, "ratio": float("nan"), "note": "été"}
    engine.start(workflow, variables)
    state = engine.snapshot(workflow).state_json
    assert "NaN" in state and "12345678901234567890123" in state
    data = runtime.restore(state).get_tasks(state=engine.TaskState.READY, manual=True)[0].data
    assert same({key: data[key] for key in variables}, variables)
