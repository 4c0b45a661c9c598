"""What a request needs from the server: settings, the database engine, the clock, a unit of work."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine

from bpm.adapters.db import make_engine, pooled_reads_engine
from bpm.adapters.orm import load_all_models
from bpm.adapters.unit_of_work import UnitOfWork, read_only_session_factory, session_factory
from bpm.clock import Clock, ManualClock, SystemClock
from bpm.config import Settings
from bpm.services import load_handlers


@dataclass
class ServerContext:
    settings: Settings
    engine: Engine
    sessions: Any
    clock: Clock
    read_sessions: Any

    @classmethod
    def build(cls, settings: Settings, clock: Clock | None = None) -> ServerContext:
        load_all_models()
        load_handlers()
        engine = make_engine(settings.database_url, timeouts=settings.database_timeouts)
        clock = clock or (ManualClock() if settings.clock == "manual" else SystemClock())
        pooled_reads = pooled_reads_engine(engine, settings.database_url, settings.database_timeouts)
        return cls(settings, engine, session_factory(engine), clock, read_only_session_factory(engine, pooled_reads))

    def uow(self, read_only: bool = False) -> UnitOfWork:
        """A unit of work; `read_only` for a request that must not write (see read_only_session_factory)."""
        return UnitOfWork(self.read_sessions if read_only else self.sessions, self.clock, self.settings)
