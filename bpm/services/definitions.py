"""Deploying BPMN: validate at upload, store a new version per process key, parse each version once."""

from __future__ import annotations

import functools
import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, bindparam, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import defer

from bpm import engine
from bpm.adapters import loaded_rows
from bpm.adapters.orm import ProcessDefinition
from bpm.adapters.unit_of_work import UnitOfWork
from bpm.domain.errors import ConcurrencyConflict, DeploymentRejected, NotFound, PayloadTooLarge


@dataclass
class DeployBpmn:
    data: bytes
    filename: str = "upload.bpmn"
    actor: str | None = None
    force: bool = False  # deploy even if a saved scenario of the key fails


# f(uow, new_definition_rows, DeployBpmn) run inside the deploy transaction; raising rejects the upload.
DEPLOY_HOOKS: list = []


def compile_options(uow: UnitOfWork) -> engine.CompileOptions:
    settings = uow.settings
    if settings is None:
        return engine.CompileOptions()
    return engine.CompileOptions(allow_scripts=settings.allow_scripts == "restricted",
                                 max_bytes=settings.max_upload_bytes)


def deploy(cmd: DeployBpmn, uow: UnitOfWork) -> list[ProcessDefinition]:
    """Compile first (nothing is stored if any process fails), then store one new version per process."""
    xml, compiled = _compile(cmd, compile_options(uow))
    checksum = hashlib.sha256(cmd.data).hexdigest()
    with uow:
        rows = [_new_version(uow, process, xml, checksum, cmd.actor) for process in compiled]
        for hook in DEPLOY_HOOKS:
            hook(uow, rows, cmd)
        try:
            uow.commit()
        except IntegrityError as error:
            raise ConcurrencyConflict("another deployment of the same process key won the race; retry") from error
        return rows


def _compile(cmd: DeployBpmn, options: engine.CompileOptions):
    try:
        return engine.compile_bpmn(cmd.data, options)
    except engine.CompileError as error:
        problems = [p.to_dict() for p in error.problems]
        kind = PayloadTooLarge if error.too_large else DeploymentRejected
        raise kind(f"{cmd.filename}: {_summary(error.problems)}", problems) from error


MAX_PROBLEMS_IN_DETAIL = 10


def _summary(problems) -> str:
    """The detail line: the problem, or every problem numbered (the first MAX_PROBLEMS_IN_DETAIL of them)."""
    if len(problems) == 1:
        return _describe_problem(problems[0])
    listed = "; ".join(f"({number}) {_describe_problem(problem)}"
                       for number, problem in enumerate(problems[:MAX_PROBLEMS_IN_DETAIL], start=1))
    rest = len(problems) - MAX_PROBLEMS_IN_DETAIL
    more = f"; and {rest} more (see `problems`)" if rest > 0 else ""
    return f"{len(problems)} problems: {listed}{more}"


def _describe_problem(problem) -> str:
    where = f" ({problem.element_type or 'element'} '{problem.element_id}'" if problem.element_id else ""
    where += f", line {problem.line})" if where and problem.line else (")" if where else "")
    return f"{problem.message}{where}"


def _new_version(uow, process: engine.CompiledProcess, xml: str, checksum: str, actor: str | None):
    latest = uow.session.scalar(select(func.max(ProcessDefinition.version)).where(ProcessDefinition.key == process.key))
    row = ProcessDefinition(key=process.key, version=(latest or 0) + 1, name=process.name, bpmn_xml=xml,
                            spec_json=process.spec_json, model=process.model, checksum=checksum,
                            deployed_by=actor, deployed_at=uow.clock.now())
    uow.session.add(row)
    uow.session.flush()
    return row


# Loading a definition for running it: its large columns are not needed once cached, so they are loaded on first
# access only: the BPMN text and the spec JSON (the parsed spec: `runtime_for`) and the model (`model_of`; a
# 500-step process's model alone is 100 KB of JSON).
TEXTS = ("bpmn_xml", "spec_json", "model")
WITHOUT_TEXTS = tuple(defer(getattr(ProcessDefinition, name)) for name in TEXTS)
# The same for a Core row read with bpm.adapters.loaded_rows.
DEFINITION_WITHOUT_TEXTS = loaded_rows.loaded(ProcessDefinition, TEXTS)


def latest_definition(uow: UnitOfWork, key: str, texts: bool = True) -> ProcessDefinition:
    return get_definition(uow, key, None, texts)


def get_definition(uow: UnitOfWork, key: str, version: int | None = None, texts: bool = True) -> ProcessDefinition:
    """The latest or the given version; `texts=False` defers the BPMN and spec texts (commands that run it)."""
    row = uow.session.scalar(definition_query(version is not None, texts), definition_parameters(key, version))
    return definition_found(row, key, version)


@functools.cache
def definition_query(pinned: bool, texts: bool = True) -> Select:
    """The SELECT of `get_definition`: of the given version when `pinned`, else of the newest. Built once per
    shape, with the key and version as bound parameters (`definition_parameters`): building a statement and
    computing its cache key costs about as much CPU as running it. A caller may add columns to it."""
    return _of_key_and_version(select(ProcessDefinition), pinned).options(*(() if texts else WITHOUT_TEXTS))


@functools.cache
def definition_row_query(pinned: bool) -> Select:
    """`definition_query` without the texts as a Core SELECT of the columns of DEFINITION_WITHOUT_TEXTS (its
    rows read with bpm.adapters.loaded_rows). A caller may add columns to it."""
    return _of_key_and_version(select(*loaded_rows.columns(DEFINITION_WITHOUT_TEXTS)), pinned)


def _of_key_and_version(query: Select, pinned: bool) -> Select:
    query = query.where(ProcessDefinition.key == bindparam("key"))
    return (query.where(ProcessDefinition.version == bindparam("version")) if pinned
            else query.order_by(ProcessDefinition.version.desc()).limit(1))


def definition_parameters(key: str, version: int | None) -> dict[str, Any]:
    return {"key": key} if version is None else {"key": key, "version": version}


def definition_found(row: ProcessDefinition | None, key: str, version: int | None) -> ProcessDefinition:
    if row is None:
        raise NotFound(f"process definition '{key}' not found" if version is None
                       else f"version {version} of process definition '{key}' not found")
    return row


def list_latest(uow: UnitOfWork) -> list[ProcessDefinition]:
    newest = (select(ProcessDefinition.key, func.max(ProcessDefinition.version).label("version"))
              .group_by(ProcessDefinition.key).subquery())
    query = select(ProcessDefinition).join(newest, (ProcessDefinition.key == newest.c.key)
                                           & (ProcessDefinition.version == newest.c.version))
    return list(uow.session.scalars(query.order_by(ProcessDefinition.key)))


def list_versions(uow: UnitOfWork, key: str) -> list[ProcessDefinition]:
    rows = list(uow.session.scalars(select(ProcessDefinition).where(ProcessDefinition.key == key)
                                    .order_by(ProcessDefinition.version)))
    if not rows:
        raise NotFound(f"process definition '{key}' not found")
    return rows


# Process-level camunda:property giving user tasks without a due date of their own one (an ISO duration).
DEFAULT_DUE = "bpm.defaultDue"
MAX_CACHED_PER_VERSION = 1024
_PER_VERSION: dict[tuple[str, int, str, str], Any] = {}


def _once_per_version(kind: str, definition: ProcessDefinition, load: Callable[[], Any]) -> Any:
    """What `load` derives from a definition version, computed once per version and process: definitions never
    change (one upload holds several processes, hence the key)."""
    key = (kind, definition.id, definition.checksum, definition.key)
    found = _PER_VERSION.get(key)
    if found is None:
        if len(_PER_VERSION) >= MAX_CACHED_PER_VERSION:
            _PER_VERSION.clear()
        found = _PER_VERSION[key] = load()
    return found


def process_properties(definition: ProcessDefinition) -> dict[str, str]:
    """The process-level camunda:properties of a definition version; the BPMN text is read only on the first
    call (hot paths load definitions without their large texts)."""
    return _once_per_version("properties", definition,
                             lambda: engine.process_properties(definition.bpmn_xml, definition.key))


def model_of(definition: ProcessDefinition) -> dict[str, Any]:
    """The definition version's model (user tasks, gateways, element names); hot paths load definitions without
    it (WITHOUT_TEXTS). Callers only read it."""
    return _once_per_version("model", definition, lambda: definition.model or {})


# Parsed specs per definition version: definitions never change, so a process keeps each one it has used.
_RUNTIMES: OrderedDict[tuple[int, str, str, bool], engine.ProcessRuntime] = OrderedDict()
_RUNTIMES_LOCK = threading.Lock()
MAX_CACHED_RUNTIMES = 256


def runtime_for(definition: ProcessDefinition, allow_scripts: bool = False) -> engine.ProcessRuntime:
    key = (definition.id, definition.checksum, definition.key, allow_scripts)
    with _RUNTIMES_LOCK:
        runtime = _RUNTIMES.get(key)
        if runtime is not None:
            _RUNTIMES.move_to_end(key)
            return runtime
    runtime = engine.ProcessRuntime(definition.spec_json, allow_scripts)
    with _RUNTIMES_LOCK:
        _RUNTIMES[key] = runtime
        while len(_RUNTIMES) > MAX_CACHED_RUNTIMES:
            _RUNTIMES.popitem(last=False)
    return runtime


def clear_runtime_cache() -> None:
    with _RUNTIMES_LOCK:
        _RUNTIMES.clear()
