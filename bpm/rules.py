"""Business rules as json-logic documents, so thresholds and routing tables change without redeploying BPMN.

A rule document is either a plain json-logic expression, or an object with named `outputs` (each a json-logic
expression) when a process needs several answers at once, e.g. which approval steps a quote needs:

    {"outputs": {"sales_manager": {"<=": [{"var": "amount"}, 500000]}, ...}}

json-logic is data, not code, but json-logic-qubit has two operators that reach into Python: `method` calls any
attribute of a value (a way out of the sandbox) and `log` writes to stdout. Both are refused when a rule is
saved and again before it runs.
"""

from __future__ import annotations

from typing import Any

import json_logic

FORBIDDEN_OPERATORS = frozenset({"method", "log"})
SPECIAL_OPERATORS = frozenset({"var", "missing", "missing_some", "if", "?:", "and", "or", "filter", "map", "reduce",
                               "all", "none", "some", "count"})
MAX_DEPTH = 50
DOCUMENT_KEYS = frozenset({"logic", "outputs"})


class RuleError(ValueError):
    """A rule document is invalid or failed on the data it was given."""


def known_operators() -> frozenset[str]:
    return (frozenset(json_logic.operations) | SPECIAL_OPERATORS) - FORBIDDEN_OPERATORS


def validate(document: Any) -> list[str]:
    """Problems with a rule document, each naming where it is (empty list: the document is valid)."""
    if isinstance(document, dict) and "outputs" in document:
        outputs = document["outputs"]
        if not isinstance(outputs, dict) or not outputs:
            return ["outputs: must be a non-empty object of name -> json-logic expression"]
        return [problem for name, logic in outputs.items() for problem in _check(logic, f"outputs.{name}", 0)]
    return _check(_logic_of(document), "logic", 0)


def _logic_of(document: Any) -> Any:
    if isinstance(document, dict) and "logic" in document and len(document) == 1:
        return document["logic"]
    return document


def _check(logic: Any, where: str, depth: int) -> list[str]:
    if depth > MAX_DEPTH:
        return [f"{where}: nested deeper than {MAX_DEPTH} levels"]
    if isinstance(logic, list):
        return [p for i, item in enumerate(logic) for p in _check(item, f"{where}[{i}]", depth + 1)]
    if not isinstance(logic, dict):
        return []
    if len(logic) != 1:
        return [f"{where}: an operation is an object with exactly one operator key, got {sorted(logic)}"]
    [(operator, arguments)] = logic.items()
    if operator in FORBIDDEN_OPERATORS:
        return [f"{where}: operator '{operator}' is not allowed"]
    if operator not in known_operators():
        return [f"{where}: unknown operator '{operator}'"]
    return _check(arguments, f"{where}.{operator}", depth + 1)


def evaluate(rule: Any, data: dict[str, Any]) -> Any:
    """Apply a rule document to data: the expression's value, or a dict of the named outputs' values."""
    problems = validate(rule)
    if problems:
        raise RuleError("; ".join(problems))
    try:
        if isinstance(rule, dict) and "outputs" in rule:
            return {name: json_logic.jsonLogic(logic, data) for name, logic in rule["outputs"].items()}
        return json_logic.jsonLogic(_logic_of(rule), data)
    except RuleError:
        raise
    except Exception as error:  # noqa: BLE001 - a rule failing on odd data is reported, never a crash
        raise RuleError(f"the rule failed on this data: {error}") from error


def variables_read(rule: Any) -> set[str]:
    """The top-level variable names a rule reads (for the decision trace: "amount=600000, discount=5")."""
    names: set[str] = set()
    _collect_vars(rule, names)
    return names


def _collect_vars(logic: Any, names: set[str]) -> None:
    if isinstance(logic, list):
        for item in logic:
            _collect_vars(item, names)
    elif isinstance(logic, dict):
        for operator, arguments in logic.items():
            if operator == "var":
                name = arguments[0] if isinstance(arguments, list) and arguments else arguments
                if isinstance(name, str) and name:
                    names.add(name.split(".")[0])
            else:
                _collect_vars(arguments, names)
