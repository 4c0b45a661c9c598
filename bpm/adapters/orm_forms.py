"""Form definitions saved by designers: every save is a new version row; the newest version of a key is in use.

A key nobody saved falls back to the form shipped in forms/ (see bpm.forms).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from bpm.adapters.orm import Base, BigId, JSONType


class FormVersion(Base):
    __tablename__ = "form_versions"
    __table_args__ = (UniqueConstraint("form_key", "version", name="uq_form_versions"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    form_key: Mapped[str] = mapped_column(String(100))
    version: Mapped[int] = mapped_column(Integer)
    schema: Mapped[dict[str, Any]] = mapped_column(JSONType)
    saved_by: Mapped[str] = mapped_column(String(150))
    saved_at: Mapped[datetime]
