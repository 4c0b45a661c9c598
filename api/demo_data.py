"""Demo data for the shipped processes: staff in the groups the BPMN names, customers, leads, a quote, a ticket,
and a customer nobody talked to for weeks (the dormant-customer check raises its owner's task at once).

Run by `bpm seed-demo` / `bpm serve --seed-demo` after the core demo users; safe to run again (everything is
looked up by name first). Demo tokens follow the core pattern `demo-<username>`.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

from sqlalchemy import select

from bpm.adapters.orm_records import Customer, Lead
from bpm.services import complaints, leads, quotes, records

PROCESSES_DIR = Path(__file__).resolve().parent.parent / "processes"

# username, display name, groups, supervisor (all approvers)
STAFF = [
    ("victor", "Victor Liu 刘副总", ["vice-presidents"], None),
    ("lily", "Lily Xu 徐法务", ["legal"], "carol"),
    ("frank", "Frank He 何前台", ["front-line-service"], "sam"),
    ("eric", "Eric Sun 孙工", ["engineers-product", "engineers-general"], "sam"),
    ("emma", "Emma Guo 郭工", ["engineers-delivery", "engineers-installation", "engineers-billing"], "sam"),
    ("diana", "Diana Ma 马总监", ["service-directors"], "carol"),
    ("eason", "Eason Wu 吴东", ["sales-east"], "alice"),
    ("elsa", "Elsa Zhao 赵东", ["sales-east"], "alice"),
    ("nina", "Nina Qian 钱北", ["sales-north"], "alice"),
    ("sonny", "Sonny Lin 林南", ["sales-south"], "alice"),
    ("wendy", "Wendy Yang 杨西", ["sales-west"], "alice"),
    ("kevin", "Kevin Hu 胡大客户", ["sales-key-accounts"], "carol"),
]

CUSTOMERS = [
    {"name": "上海星辰科技有限公司", "industry": "manufacturing", "region": "east", "tier": "gold", "owner": "alice"},
    {"name": "Beijing Northwind Trading", "industry": "retail", "region": "north", "tier": "standard",
     "owner": "alice"},
    {"name": "深圳南海物流", "industry": "logistics", "region": "south", "tier": "silver", "owner": "alice"},
    # no interaction for 45 days: dormant (the seed runs the daily check once, so its task shows at once)
    {"name": "重庆山城机电", "industry": "manufacturing", "region": "west", "tier": "standard", "owner": "alice",
     "quiet_days": 45},
]

LEADS = [
    {"name": "杭州青木家具", "region": "east", "industry": "retail", "source": "trade fair"},
    {"name": "Tianjin Harbour Foods", "region": "north", "industry": "food", "source": "website"},
    {"name": "招商城市银行", "region": "south", "industry": "banking", "source": "referral"},
    {"name": "Chengdu Panda Tools", "region": "west", "industry": "manufacturing", "source": "cold call"},
]


def seed_staff(context, announce: Callable[[str], None]) -> None:
    from api import demo

    for username, display_name, groups, supervisor in STAFF:
        demo._ensure_user(context, username, display_name, ["approver"], groups, supervisor)
    announce("process staff (token demo-<username>): " + ", ".join(f"{u} ({','.join(g)})" for u, _, g, _ in STAFF))


def seed_records(context, announce: Callable[[str], None]) -> None:
    from api import demo

    demo.deploy_shipped_processes(context, PROCESSES_DIR, announce)
    created = [_ensure_customer(context, fields) for fields in CUSTOMERS]
    if created[0] is not None:
        _demo_quote_and_ticket(context, created[0])
    for fields in LEADS:
        _ensure_lead(context, fields)
    dormant = records.raise_dormant_customer_tasks(context.uow)
    announce(f"demo records: {len(CUSTOMERS)} customers, {len(LEADS)} leads, a quote in approval, a complaint, "
             f"{dormant} dormant-customer task(s) raised")


def _ensure_customer(context, fields: dict) -> int | None:
    """The new customer's id, or None when it was there already."""
    with context.uow() as uow:
        if uow.session.scalar(select(Customer.id).where(Customer.name == fields["name"])) is not None:
            return None
    fields = dict(fields)
    quiet_days = fields.pop("quiet_days", None)
    if quiet_days:
        fields["last_interaction_at"] = context.clock.now() - timedelta(days=quiet_days)
    return records.create_customer(fields, records.SYSTEM, context.uow()).id


def _ensure_lead(context, fields: dict) -> None:
    with context.uow() as uow:
        if uow.session.scalar(select(Lead.id).where(Lead.name == fields["name"])) is not None:
            return
    leads.create_lead(fields, records.SYSTEM, context.uow())


def _demo_quote_and_ticket(context, customer_id: int) -> None:
    quote = quotes.create_quote(
        {"customer_id": customer_id, "owner": "alice", "discount": 12, "valid_until": None,
         "notes": "含安装与一年保修 (installation and one year warranty included)",
         "line_items": [{"product": "工业水泵 A型", "quantity": 4, "unit_price": 150_000},
                        {"product": "安装服务", "quantity": 1, "unit_price": 80_000}]},
        records.SYSTEM, context.uow())
    quotes.submit_quote(quote.id, records.SYSTEM, context.uow())
    complaints.create_ticket({"customer_id": customer_id, "subject": "水泵漏油 pump leaking", "priority": "high",
                              "category": "product", "description": "oil under the pump since Monday"},
                             records.SYSTEM, context.uow())


SEEDERS = [seed_staff, seed_records]
