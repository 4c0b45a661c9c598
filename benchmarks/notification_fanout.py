"""What notifications cost on the task hot path: start_instance with the TaskCreated notification handler
on and off, for candidate groups of growing size, on PostgreSQL.

    .venv/bin/python benchmarks/notification_fanout.py [--starts 150] [--rounds 3]

The process's first task has candidateGroups="team-leads"; every member has an email, and the webhook
channel is configured, so each start writes one in-app row per member, one email outbox row per member and
one webhook outbox row (nothing is sent: the relay is not running). Reports the median time of one
start_instance (its own transaction) per group size, handler on vs off. Creates and drops its own database.
"""

from __future__ import annotations

import argparse
import statistics
import time

from _common import ROOT, private_database

from bpm.adapters.db import make_engine
from bpm.adapters.orm import load_all_models
from bpm.adapters.unit_of_work import UnitOfWork, session_factory
from bpm.config import Settings
from bpm.domain import events
from bpm.domain.model import Actor
from bpm.services import definitions, handlers, identity, instances, load_handlers, notifications

EXPENSE = ROOT / "tests" / "fixtures" / "bpmn" / "expense_approval.bpmn"
GROUP_SIZES = (1, 20, 200)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--starts", type=int, default=150)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    load_all_models()
    load_handlers()
    with private_database("bpm_fanout") as (url, _name):
        engine = make_engine(url)
        settings = Settings(database_url=url, smtp_host="127.0.0.1", webhook_url="http://127.0.0.1:9/hook")
        sessions = session_factory(engine)

        def uow():
            return UnitOfWork(sessions, settings=settings)

        definitions.deploy(definitions.DeployBpmn(EXPENSE.read_bytes(), "expense.bpmn", "bench"), uow())
        members = 0
        print(f"{'members':>8} {'handler':>8} {'median ms/start':>16} {'p90':>8}")
        for size in GROUP_SIZES:
            for n in range(members, size):
                identity.create_user(identity.CreateUser(f"lead{n}", "", f"lead{n}@example.com", ["team-leads"],
                                                         ["approver"]), uow())
            members = size
            for enabled in (False, True):
                samples = []
                for _ in range(args.rounds):
                    samples += measure(uow, args.starts, enabled)
                samples.sort()
                print(f"{size:>8} {'on' if enabled else 'off':>8} {statistics.median(samples) * 1000:>16.2f} "
                      f"{samples[int(len(samples) * 0.9)] * 1000:>8.2f}")
        engine.dispose()


def measure(uow, starts: int, enabled: bool) -> list[float]:
    registered = handlers.HANDLERS[events.TaskCreated]
    if not enabled:
        registered.remove(notifications.notify_task_created)
    actor = Actor("bench", frozenset({"admin"}), frozenset(), None)
    samples = []
    try:
        for _ in range(starts):
            began = time.perf_counter()
            instances.start_instance(instances.StartInstance("expense_approval", actor, None, {"amount": 10}),
                                     uow())
            samples.append(time.perf_counter() - began)
    finally:
        if not enabled:
            registered.append(notifications.notify_task_created)
    return samples


if __name__ == "__main__":
    main()
