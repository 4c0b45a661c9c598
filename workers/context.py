"""What a worker process needs to run a service: settings, an engine and a unit-of-work factory (no Flask).

Built lazily once per process (after Celery's prefork), so every child opens its own database connections.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property

from sqlalchemy import Engine

from bpm.adapters.db import make_engine
from bpm.adapters.orm import load_all_models
from bpm.adapters.unit_of_work import UnitOfWork, session_factory
from bpm.clock import Clock, SystemClock
from bpm.config import Settings
from bpm.services import load_handlers, notifications


@dataclass
class WorkerContext:
    settings: Settings
    engine: Engine
    clock: Clock

    @classmethod
    def build(cls, settings: Settings | None = None, clock: Clock | None = None) -> WorkerContext:
        settings = settings or Settings.from_env()
        load_all_models()
        load_handlers()
        # A manual clock moves only inside the process that owns it (the embedded server), so a separate
        # worker process always reads the system clock.
        engine = make_engine(settings.database_url, timeouts=settings.database_timeouts)
        return cls(settings, engine, clock or SystemClock())

    @cached_property
    def sessions(self):
        return session_factory(self.engine)

    def uow(self) -> UnitOfWork:
        return UnitOfWork(self.sessions, self.clock, self.settings)

    @cached_property
    def channels(self) -> dict[str, Callable]:
        return notifications.build_channels(self.settings)


_contexts: dict[int, WorkerContext] = {}


def current() -> WorkerContext:
    """The context of this process (a forked child builds its own)."""
    pid = os.getpid()
    if pid not in _contexts:
        _contexts[pid] = WorkerContext.build()
    return _contexts[pid]
