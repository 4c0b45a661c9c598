"""Load the shipped form-js (Camunda Forms) schemas and validate submitted task data against them on the server.

A browser validates too, but only the server's check counts: completing a task with data that breaks its form
is a 422 naming each field, and the task stays open.

What is checked, per form-js component: `validate.required`, `min`/`max` (number), `minLength`/`maxLength`,
`pattern` (a JavaScript-style search: the pattern must match somewhere, as form-js does), `validationType`
email/phone, the value type (number, checkbox -> boolean, text -> string, datetime -> ISO text) and that a
select/radio/checklist/taglist value is one of its static `values`. `dynamiclist` and `group` components with a
`path` are checked item by item ("line_items[0].quantity").

Conditional visibility: `conditional.hide` is honoured for the simple FEEL forms `=field = value`,
`=field != value`, `=field` and `=not(field)` (value: a string in quotes, a number, true/false/null). A hidden
field is not validated. Conditions read the submitted data. A condition in any other form cannot be
evaluated here, so the field is treated as hidden and not validated (never a false 422).
"""

from __future__ import annotations

import json
import re
from datetime import date, datetime
from pathlib import Path
from typing import Any

FORMS_DIR = Path(__file__).resolve().parent.parent / "forms"
KEY_PREFIXES = ("camunda-forms:deployment:", "camunda-forms:app:", "embedded:deployment:", "deployment:")
SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,150}$")
NON_INPUT = frozenset({"text", "html", "image", "button", "spacer", "separator", "iframe", "table",
                       "expression", "filepicker"})
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
PHONE = re.compile(r"^\+?[0-9 ()-]{5,20}$")
MISSING = object()

_cache: dict[Path, tuple[float, dict]] = {}


def find(form_key: str | None) -> dict | None:
    """The form schema for a task's formKey (`camunda-forms:deployment:x.form`, `x.form` or `x`), or None."""
    path = _path_for(form_key)
    if path is None or not path.is_file():
        return None
    mtime = path.stat().st_mtime
    cached = _cache.get(path)
    if cached is None or cached[0] != mtime:
        cached = (mtime, json.loads(path.read_text(encoding="utf-8")))
        _cache[path] = cached
    return cached[1]


def _path_for(form_key: str | None) -> Path | None:
    key = plain_key(form_key)
    return None if key is None else FORMS_DIR / f"{key}.form"  # a form key never reaches outside forms/


def plain_key(form_key: str | None) -> str | None:
    """`camunda-forms:deployment:quote_approve.form`, `quote_approve.form`, `quote_approve` -> `quote_approve`."""
    if not form_key:
        return None
    name = form_key.strip()
    for prefix in KEY_PREFIXES:
        if name.startswith(prefix):
            name = name[len(prefix):]
    name = name[:-len(".form")] if name.endswith(".form") else name
    if not SAFE_NAME.match(name) or ".." in name:
        return None
    return name


def shipped_keys() -> list[str]:
    """The keys of the forms shipped in forms/."""
    return sorted(path.stem for path in FORMS_DIR.glob("*.form") if plain_key(path.stem) == path.stem)


# --- checking a form schema a designer saves --------------------------------------------------------------------

FIELD_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
MAX_SCHEMA_BYTES = 1_000_000


def input_fields(components):
    """Every input component of a schema (nested ones included)."""
    for component in components:
        if not isinstance(component, dict):
            continue
        if component.get("key") and component.get("type") not in NON_INPUT:
            yield component
        yield from input_fields(component.get("components") or [])


def schema_problems(schema: dict) -> dict[str, list[str]]:
    """What keeps a schema from being a form this server can render and check data against, by location."""
    problems: dict[str, list[str]] = {}
    components = schema.get("components")
    if not isinstance(components, list) or not components:
        problems["components"] = ["must be a non-empty list of form fields"]
    elif schema.get("type", "default") != "default":
        problems["type"] = ["must be 'default'"]
    else:
        _check_components(components, "components", problems, seen={})
    if len(json.dumps(schema)) > MAX_SCHEMA_BYTES:
        problems["schema"] = [f"is larger than {MAX_SCHEMA_BYTES} bytes"]
    if not problems:
        try:
            validate(schema, {})  # the server must be able to check data against it
        except (TypeError, ValueError, AttributeError, KeyError) as error:
            problems["schema"] = [f"cannot be used to validate task data: {error}"]
    return problems


def _check_components(components, where: str, problems: dict, seen: dict) -> None:
    for index, component in enumerate(components):
        here = f"{where}[{index}]"
        if not isinstance(component, dict) or not isinstance(component.get("type"), str):
            problems[here] = ["must be an object with a 'type'"]
            continue
        _check_rules(component, here, problems)
        key = component.get("key")
        if key is not None and component["type"] not in NON_INPUT:
            if not isinstance(key, str) or not FIELD_KEY.match(key):
                problems[f"{here}.key"] = ["must be a name of letters, digits and _ (not starting with a digit)"]
            elif key in seen:
                problems[f"{here}.key"] = [f"'{key}' is already used by {seen[key]}"]
            else:
                seen[key] = here
        children = component.get("components")
        if children is not None:
            if not isinstance(children, list):
                problems[f"{here}.components"] = ["must be a list"]
            else:
                scope = {} if component.get("path") else seen  # a list's items have their own keys
                _check_components(children, f"{here}.components", problems, scope)


def _check_rules(component: dict, here: str, problems: dict) -> None:
    """The `validate` rules the server applies to submitted data must have the types it compares with."""
    rules = component.get("validate")
    if rules is None:
        return
    if not isinstance(rules, dict):
        problems[f"{here}.validate"] = ["must be an object"]
        return
    for name in ("min", "max", "minLength", "maxLength"):
        value = rules.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
            problems[f"{here}.validate.{name}"] = ["must be a number"]
    pattern = rules.get("pattern")
    if pattern is not None:
        try:
            re.compile(pattern)
        except (re.error, TypeError):
            problems[f"{here}.validate.pattern"] = ["must be a valid regular expression"]


def validate(form: dict, data: dict[str, Any]) -> dict[str, list[str]]:
    """Problems per field name (dotted path for nested lists); empty when the data fits the form."""
    errors: dict[str, list[str]] = {}
    _validate_components(form.get("components", []), data if isinstance(data, dict) else {}, "", errors, data)
    return errors


def _validate_components(components, data: dict, prefix: str, errors: dict, root: dict) -> None:
    for component in components:
        kind = component.get("type")
        if is_hidden(component, root if not prefix else {**root, **data}):
            continue
        if kind in ("dynamiclist", "group") and component.get("path"):
            _validate_nested(component, data, prefix, errors, root)
        elif kind == "group" or (kind not in NON_INPUT and not component.get("key")):
            _validate_components(component.get("components", []), data, prefix, errors, root)
        elif kind not in NON_INPUT:
            problems = check_field(component, data.get(component["key"], MISSING))
            if problems:
                errors[prefix + component["key"]] = problems


def _validate_nested(component, data: dict, prefix: str, errors: dict, root: dict) -> None:
    path = component["path"]
    value = data.get(path, MISSING)
    children = component.get("components", [])
    if component["type"] == "group":
        if isinstance(value, dict):
            _validate_components(children, value, f"{prefix}{path}.", errors, root)
        elif value is not MISSING:
            errors[prefix + path] = ["must be an object"]
        return
    if value is MISSING or value is None:
        if (component.get("validate") or {}).get("required"):
            errors[prefix + path] = ["is required"]
        return
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        errors[prefix + path] = ["must be a list of objects"]
        return
    for index, item in enumerate(value):
        _validate_components(children, item, f"{prefix}{path}[{index}].", errors, root)


def check_field(component: dict, value: Any) -> list[str]:
    rules = component.get("validate") or {}
    if value is MISSING or value is None or value == "" or value == []:
        return ["is required"] if rules.get("required") else []
    checker = TYPE_CHECKS.get(component.get("type"), _check_text)
    return checker(component, value, rules)


def _check_number(component, value, rules) -> list[str]:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return ["must be a number"]
    problems = []
    if component.get("decimalDigits") == 0 and value != int(value):
        problems.append("must be a whole number")
    if rules.get("min") is not None and value < rules["min"]:
        problems.append(f"must be at least {rules['min']}")
    if rules.get("max") is not None and value > rules["max"]:
        problems.append(f"must be at most {rules['max']}")
    return problems


def _check_text(component, value, rules) -> list[str]:
    if not isinstance(value, str):
        return ["must be text"]
    problems = []
    if rules.get("minLength") is not None and len(value) < rules["minLength"]:
        problems.append(f"must be at least {rules['minLength']} characters")
    if rules.get("maxLength") is not None and len(value) > rules["maxLength"]:
        problems.append(f"must be at most {rules['maxLength']} characters")
    if rules.get("pattern") and not _pattern_matches(rules["pattern"], value):
        problems.append(f"must match the pattern {rules['pattern']}")
    kind = rules.get("validationType")
    if kind == "email" and not EMAIL.match(value):
        problems.append("must be an email address")
    if kind == "phone" and not PHONE.match(value):
        problems.append("must be a phone number")
    return problems


def _pattern_matches(pattern: str, value: str) -> bool:
    try:
        return re.search(pattern, value) is not None
    except re.error:
        return True  # a broken pattern in a shipped form is the designer's bug, not the user's


def _check_checkbox(component, value, rules) -> list[str]:
    if not isinstance(value, bool):
        return ["must be true or false"]
    return ["must be checked"] if rules.get("required") and value is not True else []


def _allowed_values(component) -> list[Any] | None:
    values = component.get("values")
    if not isinstance(values, list):
        return None  # dynamic options (valuesKey / valuesExpression): not checkable here
    return [option.get("value") for option in values if isinstance(option, dict)]


def _check_choice(component, value, rules) -> list[str]:
    allowed = _allowed_values(component)
    if allowed is not None and value not in allowed:
        return [f"must be one of: {', '.join(str(v) for v in allowed)}"]
    return []


def _check_multi_choice(component, value, rules) -> list[str]:
    if not isinstance(value, list):
        return ["must be a list"]
    allowed = _allowed_values(component)
    wrong = [v for v in value if allowed is not None and v not in allowed]
    return [f"unknown values: {', '.join(map(str, wrong))}"] if wrong else []


def _check_datetime(component, value, rules) -> list[str]:
    if not isinstance(value, str):
        return ["must be an ISO date or date-time text"]
    subtype = component.get("subtype", "date")
    try:
        if subtype == "date":
            date.fromisoformat(value)
        elif subtype == "time":
            datetime.fromisoformat(f"2000-01-01T{value}")
        else:
            datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return [f"must be an ISO {'date-time' if subtype == 'datetime' else subtype}"]
    return []


TYPE_CHECKS = {
    "number": _check_number,
    "textfield": _check_text,
    "textarea": _check_text,
    "checkbox": _check_checkbox,
    "select": _check_choice,
    "radio": _check_choice,
    "checklist": _check_multi_choice,
    "taglist": _check_multi_choice,
    "datetime": _check_datetime,
}


# --- conditional.hide ------------------------------------------------------------------------------------------

_CONDITION = re.compile(r"^=\s*(?P<field>[A-Za-z_][\w.]*)\s*(?P<op>!=|=)\s*(?P<value>.+?)\s*$")
_TRUTHY = re.compile(r"^=\s*(?P<neg>not\s*\(\s*)?(?P<field>[A-Za-z_][\w.]*)\s*\)?\s*$")
_UNKNOWN = object()


def is_hidden(component: dict, data: dict) -> bool:
    """True when `conditional.hide` holds for `data`, or when it is a condition this module cannot evaluate."""
    condition = (component.get("conditional") or {}).get("hide")
    if not condition:
        return False
    result = evaluate_condition(str(condition), data)
    return True if result is _UNKNOWN else bool(result)


def evaluate_condition(condition: str, data: dict) -> Any:
    match = _CONDITION.match(condition)
    if match:
        expected = _literal(match.group("value"))
        if expected is _UNKNOWN:
            return _UNKNOWN
        actual = _lookup(data, match.group("field"))
        return (actual == expected) if match.group("op") == "=" else (actual != expected)
    match = _TRUTHY.match(condition)
    if match and bool(match.group("neg")) == condition.rstrip().endswith(")"):
        value = bool(_lookup(data, match.group("field")))
        return not value if match.group("neg") else value
    return _UNKNOWN


def _literal(text: str) -> Any:
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] == '"':
        return text[1:-1]
    if text in ("true", "false"):
        return text == "true"
    if text == "null":
        return None
    try:
        return float(text) if "." in text else int(text)
    except ValueError:
        return _UNKNOWN


def _lookup(data: dict, dotted: str) -> Any:
    value: Any = data
    for part in dotted.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value
