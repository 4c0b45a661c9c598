"""The shipped business rules: used until an admin saves a version of the same name over the API.

Quote routing (amount in the quote's currency, discount in percent):
- up to 500,000 with a standard discount (<= 10%): the sales manager alone;
- over 500,000: technical director -> sales director -> general manager; over 1,000,000 also a vice-president
  and a parallel countersign by finance and legal;
- whatever the amount, a discount over 10% needs the sales director and over 20% the general manager.
"""

from __future__ import annotations

from typing import Any

AMOUNT = {"var": "amount"}
DISCOUNT = {"var": "discount"}


def _over(value: Any, threshold: float) -> dict:
    return {">": [value, threshold]}


QUOTE_ROUTING = {
    "outputs": {
        "sales_manager": {"<=": [AMOUNT, 500000]},
        "technical_director": _over(AMOUNT, 500000),
        "sales_director": {"or": [_over(AMOUNT, 500000), _over(DISCOUNT, 10)]},
        "general_manager": {"or": [_over(AMOUNT, 500000), _over(DISCOUNT, 20)]},
        "vice_president": _over(AMOUNT, 1000000),
        "countersign": _over(AMOUNT, 1000000),
    }
}

QUOTE_COUNTERSIGNERS = {"if": [_over(AMOUNT, 1000000), ["finance", "legal"], []]}

COMPLAINT_ROUTING = {
    "if": [
        {"==": [{"var": "category"}, "product"]}, "engineers-product",
        {"==": [{"var": "category"}, "delivery"]}, "engineers-delivery",
        {"==": [{"var": "category"}, "installation"]}, "engineers-installation",
        {"==": [{"var": "category"}, "billing"]}, "engineers-billing",
        "engineers-general",
    ]
}

LEAD_ASSIGNMENT = {
    "if": [
        {"in": [{"var": "industry"}, ["banking", "government"]]}, "sales-key-accounts",
        {"==": [{"var": "region"}, "east"]}, "sales-east",
        {"==": [{"var": "region"}, "north"]}, "sales-north",
        {"==": [{"var": "region"}, "south"]}, "sales-south",
        "sales-west",
    ]
}

DEFAULTS: dict[str, tuple[str, Any]] = {
    "quote_routing": ("Which approval steps a quote needs, by amount and discount", QUOTE_ROUTING),
    "quote_countersigners": ("Groups that countersign a large deal in parallel", QUOTE_COUNTERSIGNERS),
    "complaint_routing": ("The engineer group responsible for a complaint, by category", COMPLAINT_ROUTING),
    "lead_assignment": ("The sales team a new lead goes to, by industry and region", LEAD_ASSIGNMENT),
}
