"""Server-side validation of form-js schemas: required, types, ranges, lengths, patterns, options, nested
lists and the simple `conditional.hide` conditions."""

from __future__ import annotations

import pytest

from bpm import forms

FORM = {"components": [
    {"type": "text", "text": "# heading"},
    {"type": "textfield", "key": "code", "validate": {"required": True, "pattern": "^[A-Z]{3}$", "maxLength": 3}},
    {"type": "textarea", "key": "notes", "validate": {"minLength": 2}},
    {"type": "number", "key": "score", "decimalDigits": 0, "validate": {"required": True, "min": 1, "max": 5}},
    {"type": "checkbox", "key": "agree"},
    {"type": "select", "key": "kind", "values": [{"label": "A", "value": "a"}, {"label": "B", "value": "b"}]},
    {"type": "checklist", "key": "tags", "values": [{"label": "X", "value": "x"}]},
    {"type": "datetime", "key": "day", "subtype": "date"},
    {"type": "textfield", "key": "email", "validate": {"validationType": "email"}},
    {"type": "textfield", "key": "reason", "validate": {"required": True},
     "conditional": {"hide": '=kind != "b"'}},
    {"type": "number", "key": "odd", "validate": {"required": True}, "conditional": {"hide": "=some(x, y)"}},
    {"type": "dynamiclist", "path": "items", "components": [
        {"type": "textfield", "key": "product", "validate": {"required": True}},
        {"type": "number", "key": "quantity", "validate": {"min": 1}}]},
]}
VALID = {"code": "ABC", "score": 3}


@pytest.mark.parametrize(("data", "errors"), [
    (VALID, set()),
    ({}, {"code", "score"}),
    ({**VALID, "code": "abc"}, {"code"}),
    ({**VALID, "code": "ABCD"}, {"code"}),
    ({**VALID, "notes": "x"}, {"notes"}),
    ({**VALID, "score": 0}, {"score"}),
    ({**VALID, "score": 6}, {"score"}),
    ({**VALID, "score": 2.5}, {"score"}),
    ({**VALID, "score": "3"}, {"score"}),
    ({**VALID, "score": True}, {"score"}),
    ({**VALID, "agree": "yes"}, {"agree"}),
    ({**VALID, "kind": "c"}, {"kind"}),
    ({**VALID, "kind": "a"}, set()),
    ({**VALID, "kind": "b"}, {"reason"}),  # shown when kind = b, and required
    ({**VALID, "kind": "b", "reason": "why"}, set()),
    ({**VALID, "tags": ["x", "y"]}, {"tags"}),
    ({**VALID, "day": "2026-02-30"}, {"day"}),
    ({**VALID, "day": "2026-02-28"}, set()),
    ({**VALID, "email": "nope"}, {"email"}),
    ({**VALID, "items": [{"product": "p", "quantity": 0}, {}]}, {"items[0].quantity", "items[1].product"}),
    ({**VALID, "items": "p"}, {"items"}),
])
def test_validation_names_each_bad_field(data, errors):
    assert set(forms.validate(FORM, data)) == errors


def test_messages_say_what_is_wrong():
    problems = forms.validate(FORM, {"code": "abc", "score": 9})
    assert problems == {"code": ["must match the pattern ^[A-Z]{3}$"], "score": ["must be at most 5"]}


@pytest.mark.parametrize(("condition", "data", "hidden"), [
    ('=kind = "b"', {"kind": "b"}, True),
    ('=kind = "b"', {"kind": "a"}, False),
    ("=score = 3", {"score": 3}, True),
    ("=agree", {"agree": True}, True),
    ("=not(agree)", {"agree": True}, False),
    ("=not(agree)", {}, True),
    ("=flag = true", {"flag": True}, True),
    ("=a.b = 1", {"a": {"b": 1}}, True),
    ("=count(items) > 2", {}, True),  # cannot evaluate: treated as hidden, never a false 422
])
def test_conditional_hide(condition, data, hidden):
    assert forms.is_hidden({"conditional": {"hide": condition}}, data) is hidden


@pytest.mark.parametrize("key", ["camunda-forms:deployment:quote_approve.form", "quote_approve.form",
                                 "quote_approve"])
def test_find_accepts_camunda_form_keys(key):
    assert forms.find(key)["id"] == "quote_approve"


@pytest.mark.parametrize("key", [None, "", "../setup.cfg", "camunda-forms:deployment:../../etc/passwd",
                                 "/etc/passwd", "missing.form"])
def test_find_never_leaves_the_forms_directory(key):
    assert forms.find(key) is None
