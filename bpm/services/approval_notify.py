"""Tell people about approval work (delegated to you, please sign, reminders, @mentions) through the outbox.

The outbox is optional here: when the module is absent the history row is the only record.
"""

from __future__ import annotations

import importlib


def users(uow, usernames, title: str, body: str | None, task) -> None:
    enqueue = _enqueue()
    if enqueue is None:
        return
    for username in dict.fromkeys(u for u in usernames if u):
        enqueue(uow, "inapp", {"username": username, "title": title[:300], "body": body or "",
                               "link": f"/tasks/{task.id}", "task_id": task.id, "instance_id": task.instance_id})


def _enqueue():
    try:
        module = importlib.import_module("bpm.services.outbox")
    except ImportError:
        return None
    return getattr(module, "enqueue", None)
