"""What one large quote costs through the service layer on PostgreSQL: submit (rule tasks evaluated in the
engine step), each approval step, the parallel finance + legal countersign, and the last step, which renders
the quote PDF (weasyprint, CJK font) in the completing transaction.

    .venv/bin/python benchmarks/quote_approval.py [--quotes 20]

Each quote is 1,200,000 with Chinese customer and product names: technical director, sales director, general
manager, vice-president, then finance and legal. Reports median and p95 per command. Creates and drops its own
database; PDFs go to a temporary directory.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from _common import ROOT, private_database
from sqlalchemy import select

from bpm.adapters.db import make_engine
from bpm.adapters.orm import Task, load_all_models
from bpm.adapters.unit_of_work import UnitOfWork, session_factory
from bpm.clock import SystemClock
from bpm.config import Settings
from bpm.domain.model import Actor
from bpm.services import approvals, definitions, identity, load_handlers, quotes, records

STEPS = [("technical_director", "tina"), ("sales_director", "sid"), ("general_manager", "gina"),
         ("vice_president", "vic"), ("countersign", "fay"), ("countersign", "leo")]
GROUPS = {"amy": "account-managers", "tina": "technical-directors", "sid": "sales-directors",
          "gina": "general-managers", "vic": "vice-presidents", "fay": "finance", "leo": "legal"}


def actor(uow_factory, username: str) -> Actor:
    return Actor(username, frozenset({"approver"}), frozenset({GROUPS[username]}))


def timed(samples: dict, name: str, function):
    started = time.perf_counter()
    result = function()
    samples.setdefault(name, []).append((time.perf_counter() - started) * 1000)
    return result


def open_task(uow_factory, number: str, element_id: str, group: str) -> str:
    with uow_factory() as uow:
        tasks = uow.session.scalars(select(Task).where(Task.business_key == number, Task.element_id == element_id,
                                                       Task.status == "open"))
        return next(t.id for t in tasks if group in t.candidate_groups)


def run_quote(uow_factory, customer_id: int, samples: dict) -> None:
    amy = actor(uow_factory, "amy")
    quote = quotes.create_quote({"customer_id": customer_id, "discount": 5, "line_items": [
        {"product": "工业水泵 A型", "quantity": 8, "unit_price": 150_000}]}, amy, uow_factory())
    timed(samples, "submit (2 rule tasks)", lambda: quotes.submit_quote(quote.id, amy, uow_factory()))
    for index, (step, username) in enumerate(STEPS):
        task_id = open_task(uow_factory, quote.number, step, GROUPS[username])
        name = "last step + PDF" if index == len(STEPS) - 1 else "approval step"
        decision = approvals.Decide(task_id, actor(uow_factory, username), "approved", "同意")
        timed(samples, name, lambda d=decision: approvals.decide(d, uow_factory()))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quotes", type=int, default=20)
    args = parser.parse_args()
    load_all_models()
    load_handlers()
    with private_database("bpm_quotes") as (url, _name), tempfile.TemporaryDirectory() as var_dir:
        engine = make_engine(url)
        settings = Settings(database_url=url, var_dir=Path(var_dir))
        sessions = session_factory(engine)

        def uow_factory() -> UnitOfWork:
            return UnitOfWork(sessions, SystemClock(), settings)

        definitions.deploy(definitions.DeployBpmn((ROOT / "processes" / "quote_approval.bpmn").read_bytes(),
                                                  "quote_approval.bpmn", "bench"), uow_factory())
        for username, group in GROUPS.items():
            identity.create_user(identity.CreateUser(username, username, None, [group], ["approver"]), uow_factory())
        customer = records.create_customer({"name": "上海星辰科技有限公司"}, actor(uow_factory, "amy"), uow_factory())
        samples: dict[str, list[float]] = {}
        for _ in range(args.quotes):
            run_quote(uow_factory, customer.id, samples)
        engine.dispose()
    print(f"{args.quotes} quotes of 1,200,000 (6 decisions each), PostgreSQL, service layer:")
    for name, values in samples.items():
        values.sort()
        p95 = values[min(len(values) - 1, int(len(values) * 0.95))]
        print(f"  {name:<22} n={len(values):<4} median {statistics.median(values):7.1f} ms   p95 {p95:7.1f} ms")


if __name__ == "__main__":
    main()
