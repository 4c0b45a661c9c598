"""Forms by key: the newest version a designer saved, else the form shipped in forms/.

Saved forms live in the database (every save a new version), so every API and worker process sees the same
form, and the form a task shows is the one its completion is checked against.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select

from bpm import forms
from bpm.adapters.orm_forms import FormVersion
from bpm.adapters.unit_of_work import UnitOfWork
from bpm.domain.errors import NotFound, ValidationFailed

SAVE_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")


@dataclass(frozen=True)
class FormView:
    key: str
    id: str | None
    source: str  # "saved" or "shipped"
    version: int | None
    fields_count: int
    updated_at: datetime | None
    saved_by: str | None
    schema: dict[str, Any]


def resolve(form_key: str | None, uow: UnitOfWork) -> dict[str, Any] | None:
    """The schema a task with this camunda:formKey shows and is validated against, or None."""
    key = forms.plain_key(form_key)
    if key is None:
        return None
    saved = _newest(uow, key)
    return saved.schema if saved is not None else forms.find(key)


def list_forms(uow: UnitOfWork) -> list[FormView]:
    with uow:
        saved = {row.form_key: row for row in _newest_of_each(uow)}
    views = {key: _shipped_view(key) for key in forms.shipped_keys()}
    views.update({key: _saved_view(row) for key, row in saved.items()})
    return [views[key] for key in sorted(views)]


def get_form(raw_key: str, uow: UnitOfWork) -> FormView:
    key = forms.plain_key(raw_key)
    with uow:
        saved = _newest(uow, key) if key else None
    if saved is not None:
        return _saved_view(saved)
    if key is None or forms.find(key) is None:
        raise NotFound(f"no form '{raw_key}'")
    return _shipped_view(key)


def save_form(raw_key: str, schema: dict[str, Any], saved_by: str, uow: UnitOfWork) -> FormView:
    """Check the schema, then store it as the key's next version (create or replace)."""
    key = forms.plain_key(raw_key)
    if key is None or not SAVE_KEY.match(key):
        raise ValidationFailed("a form key is 1-100 letters, digits, '_', '-' or '.', starting with a letter or digit",
                               {"key": [f"'{raw_key}' is not a form key"]})
    problems = forms.schema_problems(schema)
    if problems:
        raise ValidationFailed("the form is not valid", problems)
    with uow:
        version = (uow.session.scalar(select(func.max(FormVersion.version)).where(FormVersion.form_key == key))
                   or 0) + 1
        row = FormVersion(form_key=key, version=version, schema=schema, saved_by=saved_by,
                          saved_at=uow.clock.now())
        uow.session.add(row)
        uow.commit()
        return _saved_view(row)


def _newest(uow: UnitOfWork, key: str) -> FormVersion | None:
    return uow.session.scalar(select(FormVersion).where(FormVersion.form_key == key)
                              .order_by(FormVersion.version.desc()).limit(1))


def _newest_of_each(uow: UnitOfWork) -> list[FormVersion]:
    newest = (select(FormVersion.form_key, func.max(FormVersion.version).label("version"))
              .group_by(FormVersion.form_key).subquery())
    return list(uow.session.scalars(select(FormVersion).join(
        newest, (FormVersion.form_key == newest.c.form_key) & (FormVersion.version == newest.c.version))))


def _saved_view(row: FormVersion) -> FormView:
    return FormView(row.form_key, row.schema.get("id"), "saved", row.version,
                    len(list(forms.input_fields(row.schema.get("components", [])))), row.saved_at, row.saved_by,
                    row.schema)


def _shipped_view(key: str) -> FormView:
    schema = forms.find(key) or {}
    return FormView(key, schema.get("id"), "shipped", None, len(list(forms.input_fields(schema.get("components", [])))),
                    None, None, schema)
