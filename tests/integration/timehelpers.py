"""Helpers shared by the timer, escalation, incident and clock tests (deploy, start, read rows, move time)."""

from __future__ import annotations

from datetime import timedelta

from conftest import START, bpmn_fixture, deploy
from sqlalchemy import func, select

from bpm.adapters.orm import HistoryEntry, ProcessInstance, Task, Timer
from bpm.services import escalation, timers

SECOND = timedelta(seconds=1)


def deploy_fixture(client, users, name: str):
    response = deploy(client, users["dora"], bpmn_fixture(f"{name}.bpmn"), f"{name}.bpmn")
    assert response.status_code == 201, response.json
    return response.json["definitions"]


def start(client, users, key: str, variables=None) -> str:
    response = client.post(f"/api/v1/process-definitions/{key}/instances", headers=users["ivan"],
                           json={"variables": variables or {}})
    assert response.status_code == 201, response.json
    return response.json["id"]


def move_to(context, offset: timedelta) -> None:
    """Put the manual clock at START + offset."""
    context.clock.set(START + offset)


def fire(context) -> int:
    return timers.fire_due_timers(context.uow)


def escalate(context) -> int:
    return escalation.run_due_escalations(context.uow)


def history(context, instance_id: str, event: str | None = None) -> list[HistoryEntry]:
    with context.uow() as uow:
        query = select(HistoryEntry).where(HistoryEntry.instance_id == instance_id)
        if event:
            query = query.where(HistoryEntry.event == event)
        return list(uow.session.scalars(query.order_by(HistoryEntry.id)))


def fired_elements(context, instance_id: str) -> list[str]:
    return [h.element_id for h in history(context, instance_id, "timer.fired")]


def waiting_timers(context, instance_id: str) -> list[tuple[str, object]]:
    with context.uow() as uow:
        rows = uow.session.scalars(select(Timer).where(Timer.instance_id == instance_id).order_by(Timer.element_id))
        return [(t.element_id, t.due_at) for t in rows]


def open_tasks(context, instance_id: str) -> list[str]:
    with context.uow() as uow:
        return list(uow.session.scalars(select(Task.element_id).where(Task.instance_id == instance_id,
                                                                      Task.status == "open")))


def instance(context, instance_id: str) -> ProcessInstance:
    with context.uow() as uow:
        return uow.session.get(ProcessInstance, instance_id)


def count_instances(context, key: str) -> int:
    with context.uow() as uow:
        return uow.session.scalar(select(func.count()).select_from(ProcessInstance)
                                  .where(ProcessInstance.process_key == key))
