"""json-logic rules: the shipped routing tables on both sides of each threshold, and what a rule may not do."""

from __future__ import annotations

import pytest

from bpm import rules
from bpm.rule_defaults import COMPLAINT_ROUTING, LEAD_ASSIGNMENT, QUOTE_COUNTERSIGNERS, QUOTE_ROUTING

STEPS = ("sales_manager", "technical_director", "sales_director", "general_manager", "vice_president",
         "countersign")


def route(amount, discount):
    result = rules.evaluate(QUOTE_ROUTING, {"amount": amount, "discount": discount})
    return [step for step in STEPS if result[step]]


@pytest.mark.parametrize(("amount", "discount", "steps"), [
    (100_000, 0, ["sales_manager"]),
    (500_000, 10, ["sales_manager"]),
    (500_000, 10.01, ["sales_manager", "sales_director"]),
    (500_000, 20, ["sales_manager", "sales_director"]),
    (500_000, 20.5, ["sales_manager", "sales_director", "general_manager"]),
    (500_000.01, 0, ["technical_director", "sales_director", "general_manager"]),
    (1_000_000, 30, ["technical_director", "sales_director", "general_manager"]),
    (1_000_001, 0, ["technical_director", "sales_director", "general_manager", "vice_president", "countersign"]),
])
def test_quote_routing_thresholds(amount, discount, steps):
    assert route(amount, discount) == steps


def test_countersigners_only_for_large_deals():
    assert rules.evaluate(QUOTE_COUNTERSIGNERS, {"amount": 1_000_000}) == []
    assert rules.evaluate(QUOTE_COUNTERSIGNERS, {"amount": 1_000_001}) == ["finance", "legal"]


@pytest.mark.parametrize(("category", "group"), [("product", "engineers-product"),
                                                 ("delivery", "engineers-delivery"),
                                                 ("billing", "engineers-billing"), ("other", "engineers-general")])
def test_complaint_routing(category, group):
    assert rules.evaluate(COMPLAINT_ROUTING, {"category": category}) == group


@pytest.mark.parametrize(("region", "industry", "team"), [("east", "retail", "sales-east"),
                                                          ("north", "retail", "sales-north"),
                                                          ("east", "banking", "sales-key-accounts"),
                                                          (None, None, "sales-west")])
def test_lead_assignment(region, industry, team):
    assert rules.evaluate(LEAD_ASSIGNMENT, {"region": region, "industry": industry}) == team


@pytest.mark.parametrize(("document", "problem"), [
    ({"method": ["", "__class__"]}, "operator 'method' is not allowed"),
    ({"if": [True, {"log": "x"}, 1]}, "operator 'log' is not allowed"),
    ({"nope": [1]}, "unknown operator 'nope'"),
    ({"==": [1, 1], "!=": [1, 2]}, "exactly one operator key"),
    ({"outputs": {}}, "non-empty object"),
    ({"outputs": {"a": {"eval": "x"}}}, "outputs.a: unknown operator 'eval'"),
])
def test_invalid_documents_are_refused_with_where(document, problem):
    problems = rules.validate(document)
    assert problems and problem in problems[0]
    with pytest.raises(rules.RuleError):
        rules.evaluate(document, {})


def test_variables_read_for_the_decision_trace():
    assert rules.variables_read(QUOTE_ROUTING) == {"amount", "discount"}
    assert rules.variables_read({"var": ["customer.region", "x"]}) == {"customer"}
