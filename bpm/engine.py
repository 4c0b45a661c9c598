"""The one adapter around SpiffWorkflow: compile uploaded BPMN, run instances, snapshot their state.

Everything SpiffWorkflow does dangerously by default is replaced here:
- expressions go through bpm.expressions (no eval), scripts are refused unless a restricted mode is on;
- uploaded XML is parsed hardened, XSD-validated and linted before the engine sees it;
- timer arithmetic reads the injected Clock instead of the wall clock;
- instance JSON carries only the instance: the spec is stored once per definition version.
"""

from __future__ import annotations

import contextlib
import contextvars
import copy
import functools
import json
import logging
import re
import sys
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from lxml import etree
from SpiffWorkflow.bpmn.exceptions import WorkflowTaskException
from SpiffWorkflow.bpmn.parser.BpmnParser import BpmnValidator, full_tag
from SpiffWorkflow.bpmn.parser.TaskParser import TaskParser
from SpiffWorkflow.bpmn.parser.ValidationException import ValidationException
from SpiffWorkflow.bpmn.script_engine import PythonScriptEngine
from SpiffWorkflow.bpmn.script_engine.python_environment import BasePythonScriptEngineEnvironment
from SpiffWorkflow.bpmn.serializer import BpmnWorkflowSerializer
from SpiffWorkflow.bpmn.serializer.default.task_spec import MultiInstanceTaskConverter
from SpiffWorkflow.bpmn.serializer.default.workflow import BpmnWorkflowConverter, TaskConverter
from SpiffWorkflow.bpmn.specs.defaults import ParallelMultiInstanceTask as BpmnParallelMultiInstanceTask
from SpiffWorkflow.bpmn.specs.defaults import SequentialMultiInstanceTask as BpmnSequentialMultiInstanceTask
from SpiffWorkflow.bpmn.specs.event_definitions import timer as spiff_timer
from SpiffWorkflow.bpmn.specs.event_definitions.timer import TimerEventDefinition
from SpiffWorkflow.bpmn.specs.mixins.events.event_types import CatchingEvent
from SpiffWorkflow.bpmn.specs.mixins.inclusive_gateway import InclusiveGateway
from SpiffWorkflow.bpmn.specs.mixins.parallel_gateway import ParallelGateway
from SpiffWorkflow.bpmn.util.task import BpmnTaskIterator
from SpiffWorkflow.bpmn.workflow import BpmnWorkflow
from SpiffWorkflow.camunda.parser.CamundaParser import CamundaParser
from SpiffWorkflow.camunda.parser.task_spec import UserTaskParser
from SpiffWorkflow.camunda.serializer.config import CAMUNDA_CONFIG
from SpiffWorkflow.camunda.specs.user_task import UserTask
from SpiffWorkflow.exceptions import SpiffWorkflowException, WorkflowException
from SpiffWorkflow.specs.base import TaskSpec
from SpiffWorkflow.task import Task
from SpiffWorkflow.util.deep_merge import DeepMerge
from SpiffWorkflow.util.task import TaskIterator, TaskState

from bpm import bpmn_xml, expressions, json_text

BPMN_NS = "http://www.omg.org/spec/BPMN/20100524/MODEL"
CAMUNDA_NS = "http://camunda.org/schema/1.0/bpmn"
ACTIVITI_NS = "http://activiti.org/bpmn"
ASSIGNMENT_ATTRIBUTES = ("assignee", "candidateGroups", "candidateUsers", "dueDate", "priority", "formKey")
GATEWAY_TYPES = ("exclusiveGateway", "inclusiveGateway")
TIMER_KINDS = ("timeDuration", "timeDate", "timeCycle")
EXPRESSION_TAGS = ("conditionExpression", "completionCondition", "loopCardinality", "condition")

# SpiffWorkflow logs every task state change at INFO ("State changed to READY" ...): several lines per step,
# which costs a worker running at INFO more CPU than firing a timer. Our history records what happened; the
# engine's own loggers ("spiff.*") stay at WARNING unless the deployment configured them.
_SPIFF_LOGGER = logging.getLogger("spiff")
if _SPIFF_LOGGER.level == logging.NOTSET:
    _SPIFF_LOGGER.setLevel(logging.WARNING)


class EngineError(Exception):
    """A BPMN element failed at run time (an expression error, an unknown message ...)."""

    def __init__(self, message: str, element_id: str | None = None, element_name: str | None = None):
        super().__init__(message)
        self.element_id = element_id
        self.element_name = element_name


class CompileError(Exception):
    def __init__(self, problems: list[bpmn_xml.Problem], too_large: bool = False):
        super().__init__(problems[0].message if problems else "invalid BPMN")
        self.problems = problems
        self.too_large = too_large


# --- time: SpiffWorkflow's timer module asks datetime.now(); we answer from the command's clock ---------------

_clock_now: contextvars.ContextVar[Callable[[], datetime] | None] = contextvars.ContextVar("clock", default=None)


class _ClockDatetime(datetime):
    @classmethod
    def now(cls, tz=None):
        source = _clock_now.get()
        moment = source() if source is not None else datetime.now(UTC)
        return moment.astimezone(tz) if tz is not None else moment.replace(tzinfo=None)


spiff_timer.datetime = _ClockDatetime


@contextlib.contextmanager
def clock_context(now: Callable[[], datetime]) -> Iterator[None]:
    token = _clock_now.set(now)
    try:
        yield
    finally:
        _clock_now.reset(token)


# --- parsing -------------------------------------------------------------------------------------------------


class AssignableUserTaskParser(UserTaskParser):
    """Reads the assignment attributes designers set in Camunda Modeler (SpiffWorkflow ignores them)."""

    def parse_extensions(self, node=None):
        extensions = super().parse_extensions(node)
        for namespace in (CAMUNDA_NS, ACTIVITI_NS):
            for attribute in ASSIGNMENT_ATTRIBUTES:
                value = self.node.get(f"{{{namespace}}}{attribute}")
                if value is not None:
                    extensions.setdefault(attribute, value)
        return extensions


class _LocalLoopItems:
    """The input/output data items are local to each instance: without a loopDataOutputRef SpiffWorkflow merges
    a finished instance's data into the multi-instance task, item included, and then refuses to create the next
    instance ("input item ... already exists"). The items are dropped from the merged data."""

    def merge_child(self, workflow, child):
        super().merge_child(workflow, child)  # a sequential task creates the next instance in there
        self._drop_items(child.parent)

    def create_child(self, my_task, item, key_or_index=None):
        if my_task.internal_data.get("merged"):  # an instance finished and was merged: its items are not ours
            self._drop_items(my_task)
        super().create_child(my_task, item, key_or_index)

    def _drop_items(self, my_task) -> None:
        if self.data_output is None or self.output_item is None:
            for item in (self.input_item, self.output_item):
                if item is not None:
                    my_task.data.pop(item.bpmn_id, None)


class SequentialLoopDataMultiInstanceTask(_LocalLoopItems, BpmnSequentialMultiInstanceTask):
    """A sequential multi-instance task written with standard BPMN loopDataInputRef / inputDataItem."""


class ParallelLoopDataMultiInstanceTask(_LocalLoopItems, BpmnParallelMultiInstanceTask):
    """A parallel multi-instance task written with standard BPMN loopDataInputRef / inputDataItem."""


class StandardLoopDataMixin:
    """Multi-instance tasks as the BPMN standard writes them, next to Camunda's.

    SpiffWorkflow's Camunda parser only knows loopCardinality and camunda:collection/elementVariable; bpmn.io and
    spiff-arena models use the standard loopDataInputRef / inputDataItem / loopDataOutputRef / outputDataItem,
    which name task variables (nothing is evaluated). Those are read with the standard BPMN parser's rules.
    """

    SEQUENTIAL_MI_CLASS = SequentialLoopDataMultiInstanceTask
    PARALLEL_MI_CLASS = ParallelLoopDataMultiInstanceTask

    def _add_multiinstance_task(self, loop_characteristics):
        prefix = "bpmn:multiInstanceLoopCharacteristics"
        if self.attribute("collection", "camunda", loop_characteristics) is not None \
                or self.xpath(f"./{prefix}/bpmn:loopCardinality"):
            return super()._add_multiinstance_task(loop_characteristics)
        if self.xpath(f"./{prefix}/bpmn:loopDataInputRef"):
            return TaskParser._add_multiinstance_task(self, loop_characteristics)
        self.raise_validation_exception(
            "a multi-instance task needs loopCardinality, loopDataInputRef (standard BPMN) or camunda:collection; "
            "it has none of them")


@functools.cache
def _with_standard_loop_data(parser_class: type) -> type:
    return type(parser_class.__name__, (StandardLoopDataMixin, parser_class), {})


class ServerParser(CamundaParser):
    OVERRIDE_PARSER_CLASSES = {
        **CamundaParser.OVERRIDE_PARSER_CLASSES,
        full_tag("userTask"): (AssignableUserTaskParser, UserTask),
    }

    def _get_parser_class(self, tag):
        parser_class, spec_class = super()._get_parser_class(tag)
        if isinstance(parser_class, type) and issubclass(parser_class, TaskParser) \
                and not issubclass(parser_class, StandardLoopDataMixin):
            parser_class = _with_standard_loop_data(parser_class)
        return parser_class, spec_class


_VALIDATOR: BpmnValidator | None = None


def _validator() -> BpmnValidator:
    global _VALIDATOR
    if _VALIDATOR is None:
        _VALIDATOR = BpmnValidator()
    return _VALIDATOR


# --- expressions and scripts -----------------------------------------------------------------------------------


@dataclass
class Decision:
    gateway_id: str
    gateway_name: str | None
    expression: str
    values: dict[str, Any]
    result: Any


@dataclass
class ScriptOutput:
    """A line a restricted script printed: kept for the instance history, never written to stdout."""

    element_id: str | None
    element_name: str | None
    text: str


MAX_SCRIPT_OUTPUT_PER_STEP = 200  # printed lines kept per command; the rest is counted, not stored


class SafeEnvironment(BasePythonScriptEngineEnvironment):
    """Evaluates with the safe evaluator; runs scripts only in the restricted mode (see expressions.run_script)."""

    def __init__(self, allow_scripts: bool = False):
        super().__init__({})
        self.allow_scripts = allow_scripts
        self.printed: Callable[[list[str], int], None] | None = None

    def evaluate(self, expression, context, external_context=None):
        variables = {**(external_context or {}), **context}
        return expressions.evaluate(expression, variables)[0]

    def execute(self, script, context, external_context=None):
        if not self.allow_scripts:
            raise expressions.ExpressionError("script tasks are disabled on this server")
        result = run_restricted_script(script, {**(external_context or {}), **context}, context)
        if self.printed is not None and (result.printed or result.dropped_lines):
            self.printed(result.printed, result.dropped_lines)
        return True


def run_restricted_script(script: str, variables: dict, target: dict) -> expressions.ScriptResult:
    """Restricted mode: assignments, augmented assignments and print(); see expressions.run_script."""
    result = expressions.run_script(script, variables)
    target.update(result.assigned)
    return result


class RecordingScriptEngine(PythonScriptEngine):
    """Evaluates safely and records every gateway condition (expression, values read, result).

    What restricted scripts print is collected per command (`take_script_output`) for the instance history.
    """

    def __init__(self, allow_scripts: bool = False):
        super().__init__(environment=SafeEnvironment(allow_scripts))
        self.decisions: list[Decision] = []
        self.script_output: list[ScriptOutput] = []
        self.script_output_dropped = 0

    def evaluate(self, task, expression, external_context=None):
        if expression is None and _message_definition(task.task_spec) is not None:
            return None  # a message thrown without camunda:expression carries no payload
        variables = {**(external_context or {}), **task.data}
        try:
            result, values = expressions.evaluate(expression, variables)
        except expressions.ExpressionError as error:
            raise EngineError(f"expression '{expression}' failed: {error}",
                              task.task_spec.bpmn_id, task.task_spec.bpmn_name) from error
        if _is_gateway(task.task_spec):
            self.decisions.append(Decision(task.task_spec.bpmn_id, task.task_spec.bpmn_name, expression,
                                           _jsonable(values), _jsonable(result)))
        return result

    def execute(self, task, script, external_context=None):
        spec = task.task_spec

        def printed(lines: list[str], dropped: int) -> None:
            kept = lines[:max(MAX_SCRIPT_OUTPUT_PER_STEP - len(self.script_output), 0)]
            self.script_output += [ScriptOutput(spec.bpmn_id, spec.bpmn_name, line) for line in kept]
            self.script_output_dropped += dropped + len(lines) - len(kept)

        self.environment.printed = printed
        try:
            return super().execute(task, script, external_context)
        finally:
            self.environment.printed = None

    def take_script_output(self) -> list[ScriptOutput]:
        output, self.script_output = self.script_output, []
        if self.script_output_dropped:
            output.append(ScriptOutput(None, None, f"({self.script_output_dropped} more printed line(s) "
                                                   "not recorded)"))
            self.script_output_dropped = 0
        return output

    def take_decisions(self) -> list[Decision]:
        decisions, self.decisions = self.decisions, []
        return decisions


def _is_gateway(task_spec) -> bool:
    return type(task_spec).__name__ in ("ExclusiveGateway", "InclusiveGateway")


def _jsonable(value: Any) -> Any:
    try:
        json.dumps(value)
        return value
    except (TypeError, ValueError):
        return repr(value)


# --- serialization: instance JSON without the spec ---------------------------------------------------------------

_current_specs: contextvars.ContextVar[tuple[Any, dict]] = contextvars.ContextVar("specs")


class InstanceOnlyConverter(BpmnWorkflowConverter):
    """Serializes a workflow without its spec; restores it with the spec of its definition version. Each task id
    is converted between UUID and text once per call (`_TaskIds`)."""

    def to_dict(self, workflow):
        token = _task_ids.set(ids := _TaskIds())
        try:
            dct = self._without_spec(workflow, ids)
        finally:
            _task_ids.reset(token)
        archive = getattr(workflow, "bpm_archive", None)
        if archive is not None:
            cut = workflow.tasks.get(UUID(archive["cut"]))
            if cut is None or cut.parent is not workflow.task_tree:
                raise EngineError("the task the archived history hangs from is no longer in the instance")
            dct["archive"] = archive
            _with_full_data(self.registry, dct["tasks"][archive["cut"]], cut)
        return dct

    def _without_spec(self, workflow, ids: _TaskIds) -> dict:
        """SpiffWorkflow's WorkflowConverter.to_dict (the same keys, in the same order) and the top workflow's
        subprocesses and events."""
        convert = self.registry.convert
        return {
            "data": convert(self.registry.clean(workflow.data)),
            "correlations": workflow.correlations,
            "last_task": ids.text(workflow.last_task.id) if workflow.last_task is not None else None,
            "success": workflow.success,
            "completed": workflow.completed,
            "tasks": {ids.text(task_id): convert(task) for task_id, task in workflow.tasks.items()},
            "root": ids.text(workflow.task_tree.id),
            "subprocesses": self.mapping_to_dict(workflow.subprocesses),
            "bpmn_events": convert(workflow.bpmn_events),
        }

    def from_dict(self, dct):
        spec, subprocess_specs = _current_specs.get()
        token = _task_ids.set(ids := _TaskIds())
        try:
            workflow = self.target_class(spec, subprocess_specs, deserializing=True)
            restore = self.registry.restore
            workflow.tasks = {ids.uuid(task_id): restore(record, workflow=workflow)
                              for task_id, record in dct["tasks"].items()}
            workflow.task_tree = workflow.tasks.get(ids.uuid(dct["root"]))
            self.set_default_attributes(workflow, dct)
            self.subprocesses_from_dict(dct["subprocesses"], workflow)
            workflow.bpmn_events = restore(dct.pop("bpmn_events", []))
        finally:
            _task_ids.reset(token)
        workflow.bpm_archive = dct.get("archive")
        return workflow


class _TaskIds:
    """Task ids as text and back, each converted once per (de)serialization of an instance. An id appears up to
    four times in the state (the task's key and id, its parent's children, its children's parent), and UUID(text)
    and str(uuid) were the larger part of SpiffWorkflow's CPU per task record."""

    __slots__ = ("texts", "uuids")

    def __init__(self):
        self.texts: dict[int, str] = {}  # by id(): a UUID's own hash is a Python call; every id stays alive
        self.uuids: dict[str, UUID] = {}

    def text(self, uuid: UUID) -> str:
        text = self.texts.get(id(uuid))
        if text is None:
            text = self.texts[id(uuid)] = str(uuid)
        return text

    def uuid(self, text: str) -> UUID:
        uuid = self.uuids.get(text)
        if uuid is None:
            uuid = self.uuids[text] = UUID(text)
        return uuid


_task_ids: contextvars.ContextVar[_TaskIds | None] = contextvars.ContextVar("task_ids", default=None)


class InstanceTaskConverter(TaskConverter):
    """SpiffWorkflow's TaskConverter (the same records; tests/unit/test_instance_json.py compares them), with the
    ids converted through the call's `_TaskIds` and the parent looked up once per task."""

    def to_dict(self, task):
        ids = _task_ids.get() or _TaskIds()
        parent = task.parent
        if parent is None:
            data, delta = task.data, {}
        else:
            data, delta = {}, {"updates": DeepMerge.get_updated_keys(parent.data, task.data),
                               "deletions": DeepMerge.get_deleted_keys(parent.data, task.data)}
        return {
            "id": ids.text(task.id),
            "parent": ids.text(task._parent) if parent is not None else None,
            "children": [ids.text(child) for child in task._children],
            "last_state_change": task.last_state_change,
            "state": task.state,
            "task_spec": task.task_spec.name,
            "triggered": task.triggered,
            "internal_data": self.registry.convert(task.internal_data),
            "data": data,
            "delta": delta,
        }

    def from_dict(self, dct, workflow):
        ids = _task_ids.get() or _TaskIds()
        task_spec = workflow.spec.task_specs.get(dct["task_spec"])
        task = self.target_class(workflow, task_spec, state=dct["state"], id=ids.uuid(dct["id"]))
        task._parent = ids.uuid(dct["parent"]) if dct["parent"] is not None else None
        task._children = [ids.uuid(child) for child in dct["children"]]
        task.last_state_change = dct["last_state_change"]
        task.triggered = dct["triggered"]
        task.internal_data = self.registry.restore(dct["internal_data"])
        if isinstance(task_spec, CatchingEvent) and task.has_state(TaskState.WAITING):
            task.workflow.top_workflow.event_manager.add_task(task)
        delta, parent = dct.get("delta"), task.parent
        if delta and parent is not None:
            data = DeepMerge.merge({}, parent.data)
            data.update(self.registry.restore(delta.get("updates", {})))
            for key in delta.get("deletions", {}):
                data.pop(key, None)
        else:
            data = self.registry.restore(dct["data"])
        task.data = data
        return task


def _with_full_data(registry, record: dict, task) -> None:
    """A task record that carries its whole data instead of the difference to its parent's: right whichever
    parent the record is later attached to."""
    record["data"] = registry.convert(registry.clean(task.data))
    record["delta"] = {}


def _make_serializer(workflow_converter, task_converter=TaskConverter) -> BpmnWorkflowSerializer:
    config = dict(CAMUNDA_CONFIG)
    config[BpmnWorkflow] = workflow_converter
    config[Task] = task_converter
    return BpmnWorkflowSerializer(BpmnWorkflowSerializer.configure(config))


SPEC_SERIALIZER = _make_serializer(BpmnWorkflowConverter)
INSTANCE_SERIALIZER = _make_serializer(InstanceOnlyConverter, InstanceTaskConverter)
for _registry in (SPEC_SERIALIZER.registry, INSTANCE_SERIALIZER.registry):
    MultiInstanceTaskConverter(SequentialLoopDataMultiInstanceTask, _registry)
    MultiInstanceTaskConverter(ParallelLoopDataMultiInstanceTask, _registry)


# --- compile (deploy time) ---------------------------------------------------------------------------------------


@dataclass
class CompiledProcess:
    key: str
    name: str
    spec_json: str
    model: dict[str, Any]


@dataclass
class CompileOptions:
    allow_scripts: bool = False
    max_bytes: int = 5_000_000


def compile_bpmn(data: bytes, options: CompileOptions | None = None) -> tuple[str, list[CompiledProcess]]:
    """Validate and parse an upload; returns the (normalised) XML text and one compiled spec per process.

    SpiffWorkflow's parser follows a sequence flow by recursion, one level per element: a long chain (a few
    hundred tasks) needs more than the default recursion limit, so compiling runs with a deeper stack."""
    return call_with_deep_stack(_compile_bpmn, data, options)


def _compile_bpmn(data: bytes, options: CompileOptions | None = None) -> tuple[str, list[CompiledProcess]]:
    options = options or CompileOptions()
    tree = _parse_upload(data, options.max_bytes)
    original = copy.deepcopy(tree)
    # Every rule runs and every problem found is reported at once (one problem+json response lists them all).
    problems = bpmn_xml.lint(tree)
    problems += _check_scripts(tree) if options.allow_scripts else bpmn_xml.script_tasks(tree)
    problems += _translate_expressions(tree)
    problems += _check_assignments(tree)
    if problems:
        raise CompileError(problems)
    process_ids = bpmn_xml.executable_process_ids(tree)
    if not process_ids:
        raise CompileError([bpmn_xml.Problem("no-executable-process",
                                             "the file has no executable process (isExecutable=\"true\")",
                                             element_type="process")])
    parser = _parse_with_engine(tree)
    compiled, problems = [], []
    for pid in process_ids:
        try:
            compiled.append(_compile_process(parser, tree, original, pid))
        except CompileError as error:
            problems += [p for p in error.problems if p not in problems]
    if problems:
        raise CompileError(problems)
    return etree.tostring(original, encoding="unicode"), compiled


def _check_scripts(tree) -> list[bpmn_xml.Problem]:
    """Restricted mode: each script task of an executable process must pass expressions.check_script at deploy."""
    problems = []
    for process in tree.getroot().iter(f"{{{BPMN_NS}}}process"):
        if (process.get("isExecutable") or "true").strip().lower() == "false":
            continue
        for task in process.iter(f"{{{BPMN_NS}}}scriptTask"):
            label = f"scriptTask '{task.get('id')}'" + (f" (\"{task.get('name')}\")" if task.get("name") else "")
            script_format = (task.get("scriptFormat") or "python").strip().lower()
            script = task.find(f"{{{BPMN_NS}}}script")
            try:
                if script_format not in ("python", "python3", "text/x-python"):
                    raise expressions.ExpressionError(f"scriptFormat '{task.get('scriptFormat')}' is not supported "
                                                      "(restricted scripts are a Python subset)")
                if script is None or not (script.text or "").strip():
                    raise expressions.ExpressionError("the script is empty")
                expressions.check_script(script.text)
            except expressions.ExpressionError as error:
                line = task.sourceline if script is None else script.sourceline
                problems.append(bpmn_xml.Problem("script", f"{label}: {error}", task.get("id"), "scriptTask", line))
    return problems


def _parse_upload(data: bytes, max_bytes: int):
    try:
        return bpmn_xml.parse_secure(data, max_bytes=max_bytes)
    except bpmn_xml.PayloadTooLarge as error:
        raise CompileError(error.problems, too_large=True) from error
    except bpmn_xml.BpmnRejected as error:
        raise CompileError(error.problems) from error


def _translate_expressions(tree) -> list[bpmn_xml.Problem]:
    """Rewrite Camunda `${...}` conditions and bare ISO timer literals into our safe expression syntax."""
    problems = []
    for element in tree.iter(*(f"{{{BPMN_NS}}}{tag}" for tag in EXPRESSION_TAGS + TIMER_KINDS)):
        tag = etree.QName(element).localname
        problems += _translate_one(element, tag)
    return problems


def _translate_one(element, tag: str) -> list[bpmn_xml.Problem]:
    text = (element.text or "").strip()
    owner = element.getparent()
    if tag in TIMER_KINDS or tag == "condition":  # name the event, not its (usually id-less) event definition
        owner = owner.getparent()
    language = element.get("language")
    try:
        if language and "python" not in language.lower() and "juel" not in language.lower():
            raise expressions.ExpressionError(f"{tag} language '{language}' is not supported")
        if not text:
            return [] if tag == "conditionExpression" else _empty_expression(owner, tag)
        if tag in TIMER_KINDS:
            element.text = expressions.normalize_timer(text, tag)
        else:
            element.text = expressions.translate_camunda(text)
            expressions.check_expression(element.text)
    except expressions.ExpressionError as error:
        return [bpmn_xml.Problem("expression", f"{tag} '{text}': {error}", owner.get("id"),
                                 etree.QName(owner).localname, element.sourceline)]
    return []


def _check_assignments(tree) -> list[bpmn_xml.Problem]:
    """Assignment attributes may be literals or `${...}`; untranslatable expressions are refused at deploy."""
    problems = []
    for task in tree.iter(f"{{{BPMN_NS}}}userTask"):
        for namespace in (CAMUNDA_NS, ACTIVITI_NS):
            for attribute in ("assignee", "candidateGroups", "candidateUsers", "dueDate", "priority"):
                value = task.get(f"{{{namespace}}}{attribute}")
                if value is None:
                    continue
                try:
                    check_assignment_text(value)
                except expressions.ExpressionError as error:
                    problems.append(bpmn_xml.Problem("expression", f"{attribute} '{value}': {error}",
                                                     task.get("id"), "userTask", task.sourceline))
    return problems


def _empty_expression(owner, tag):
    return [bpmn_xml.Problem("expression", f"{tag} is empty", owner.get("id"), etree.QName(owner).localname,
                             owner.sourceline)]


def _parse_with_engine(tree) -> ServerParser:
    parser = ServerParser(validator=_validator())
    try:
        parser.add_bpmn_xml(tree, filename="upload.bpmn")
    except ValidationException as error:
        raise CompileError([_problem_from_validation(error)]) from error
    except (SpiffWorkflowException, KeyError, TypeError, ValueError) as error:
        raise CompileError([bpmn_xml.Problem("bpmn-invalid", f"the engine cannot read this file: {error}")]) from error
    return parser


def _problem_from_validation(error: ValidationException) -> bpmn_xml.Problem:
    tag = getattr(error, "tag", None)
    element_type = etree.QName(tag).localname if tag and tag.startswith("{") else tag
    message = str(error).split("\n")[0]
    return bpmn_xml.Problem("bpmn-invalid", message, getattr(error, "id", None) or None, element_type or None,
                            getattr(error, "line_number", None) or None)


def _compile_process(parser: ServerParser, tree, original, process_id: str) -> CompiledProcess:
    try:
        spec = parser.get_spec(process_id)
        subprocess_specs = parser.get_subprocess_specs(process_id)
    except ValidationException as error:
        raise CompileError([_problem_from_validation(error)]) from error
    except (SpiffWorkflowException, KeyError, TypeError, ValueError, AttributeError) as error:
        raise CompileError([bpmn_xml.Problem("bpmn-invalid", f"process '{process_id}': {error}",
                                             process_id, "process")]) from error
    spec_json = json.dumps({
        "spec": SPEC_SERIALIZER.to_dict(spec),
        "subprocess_specs": {name: SPEC_SERIALIZER.to_dict(s) for name, s in subprocess_specs.items()},
    })
    model = describe_process(tree, process_id, original)
    return CompiledProcess(process_id, spec.description or spec.name, spec_json, model)


def describe_process(tree, process_id: str, original=None) -> dict[str, Any]:
    """What the server needs to know about elements without deserializing a spec: names, tasks, gateways.

    `tree` holds the translated expressions (what the engine evaluates), `original` what the designer wrote.
    """
    process = tree.getroot().find(f"{{{BPMN_NS}}}process[@id='{process_id}']")
    elements, user_tasks, gateways = {}, {}, {}
    flows = {f.get("id"): f for f in process.iter(f"{{{BPMN_NS}}}sequenceFlow")}
    sources = _condition_sources(original if original is not None else tree)
    for element in process.iter():
        if not isinstance(element.tag, str) or element.get("id") is None:
            continue
        kind = etree.QName(element).localname
        elements[element.get("id")] = {"type": kind, "name": element.get("name")}
        if kind == "userTask":
            user_tasks[element.get("id")] = _describe_user_task(element)
        if kind in GATEWAY_TYPES:
            gateways[element.get("id")] = _describe_gateway(element, flows, sources)
    lanes = {ref.text: lane.get("name") for lane in process.iter(f"{{{BPMN_NS}}}lane")
             for ref in lane.iter(f"{{{BPMN_NS}}}flowNodeRef")}
    for task_id, task in user_tasks.items():
        task["lane"] = lanes.get(task_id)
    return {"elements": elements, "user_tasks": user_tasks, "gateways": gateways}


def _describe_user_task(element) -> dict[str, Any]:
    described = {"name": element.get("name")}
    for namespace in (CAMUNDA_NS, ACTIVITI_NS):
        for attribute in ASSIGNMENT_ATTRIBUTES:
            value = element.get(f"{{{namespace}}}{attribute}")
            if value is not None:
                described.setdefault(attribute, value)
    properties = element.findall(f".//{{{CAMUNDA_NS}}}properties/{{{CAMUNDA_NS}}}property")
    described["properties"] = {p.get("name"): p.get("value") for p in properties}
    return described


def _condition_sources(tree) -> dict[str, str]:
    sources = {}
    for flow in tree.getroot().iter(f"{{{BPMN_NS}}}sequenceFlow"):
        condition = flow.find(f"{{{BPMN_NS}}}conditionExpression")
        if condition is not None and condition.text:
            sources[flow.get("id")] = condition.text.strip()
    return sources


def _describe_gateway(element, flows, sources) -> dict[str, Any]:
    outgoing = [flow for flow in flows.values() if flow.get("sourceRef") == element.get("id")]
    described = []
    for flow in outgoing:
        condition = flow.find(f"{{{BPMN_NS}}}conditionExpression")
        described.append({"id": flow.get("id"), "name": flow.get("name"), "target": flow.get("targetRef"),
                          "condition": condition.text.strip() if condition is not None and condition.text else None,
                          "source": sources.get(flow.get("id"))})
    return {"type": etree.QName(element).localname, "name": element.get("name"),
            "default": element.get("default"), "flows": described}


# --- run time ------------------------------------------------------------------------------------------------------


@dataclass
class OpenTask:
    id: str
    element_id: str
    name: str | None
    lane: str | None
    extensions: dict[str, Any]
    data: dict[str, Any]


@dataclass
class WaitingTimer:
    task_id: str
    element_id: str
    kind: str
    due_at: datetime


@dataclass
class Snapshot:
    state_json: str
    completed: bool
    open_tasks: list[OpenTask]
    timers: list[WaitingTimer]
    decisions: list[Decision] = field(default_factory=list)
    messages: list[WaitingMessage] = field(default_factory=list)  # message events waiting (integrations)
    script_output: list[ScriptOutput] = field(default_factory=list)  # what restricted scripts printed
    thrown: list[ThrownMessage] = field(default_factory=list)  # messages thrown that no task here caught
    archive: ArchiveUpdate | None = None  # finished tasks that left the state (see "archive" below)


# --- prediction: how far ahead SpiffWorkflow builds the path ------------------------------------------------------
# SpiffWorkflow predicts every task a definite task leads to, recursively, when an instance is created and at each
# step: a chain of 500 steps carries (and restores, walks and serializes) all the steps still to come, at every
# step. The engine only needs the tasks next to the live ones: when a predicted task becomes definite, its own
# successors are predicted then. SpiffWorkflow's joins needed more (an inclusive gateway decided whether to wait
# from the copies of itself predicted on the branches still heading for it); ours decide from tokens and the
# process graph (see "parallel join"). Spec attribute `bpm_predict_depth`: how many levels ahead a definite task
# predicts.

PREDICT_DEPTH = 2
_spiff_predict = TaskSpec._predict


def _predict_near(self, my_task, seen=None, looked_ahead=0, mask=TaskState.PREDICTED_MASK):
    """TaskSpec._predict with the definite path ahead (FUTURE tasks) bounded by the spec's `bpm_predict_depth`.
    What only may happen next to a definite task (boundary events, a gateway's branches) is still predicted as
    SpiffWorkflow does: a boundary event becomes WAITING without passing `_update`, so its successors must exist
    by then."""
    depth = getattr(self, "bpm_predict_depth", None)
    if depth is None:
        return _spiff_predict(self, my_task, seen, looked_ahead, mask)
    if seen is None:
        seen = []
    if my_task.has_state(mask) or _at_prediction_frontier(my_task):
        self._predict_hook(my_task)
    if my_task.has_state(TaskState.PREDICTED_MASK):
        seen.append(self)
    definite = my_task.has_state(TaskState.DEFINITE_MASK)
    for child in my_task.children:
        if not (child.has_state(mask) or _at_prediction_frontier(child)) or child in seen:
            continue
        if child.state == TaskState.FUTURE:  # the definite path ahead: bounded
            deeper = looked_ahead + 1 < depth
        else:  # what may happen (a boundary event, a gateway's branches): SpiffWorkflow's own look-ahead
            deeper = definite or looked_ahead + 1 < self.lookahead
        if deeper:
            child.task_spec._predict(child, seen[:], looked_ahead + 1, mask)


def _at_prediction_frontier(task) -> bool:
    """A FUTURE task whose successors were not predicted yet: predict them now that the path reaches it."""
    return task.state == TaskState.FUTURE and not task._children


def _update_near(self, my_task):
    """TaskSpec._update, which also predicts the successors of a FUTURE task the bounded prediction left open."""
    if my_task.has_state(TaskState.PREDICTED_MASK) \
            or (getattr(self, "bpm_predict_depth", None) is not None and _at_prediction_frontier(my_task)):
        self._predict(my_task)
    if self._update_hook(my_task):
        my_task._ready()


TaskSpec._predict = _predict_near
TaskSpec._update = _update_near


# SpiffWorkflow's task walks stop, silently, at depth 1000 (the iterators' max_depth). An instance's tree restored
# with its archive (a long loop's path, send-back, migration) is deeper: the walks would miss its live tasks (its
# variables, the tasks ready to run, whether it completed). Walks here go as deep as the tree does.
for _iterator in (TaskIterator, BpmnTaskIterator):
    _iterator.__init__.__defaults__ = tuple(sys.maxsize if default == 1000 else default
                                            for default in _iterator.__init__.__defaults__)


# --- parallel join: tokens, not history ---------------------------------------------------------------------------
# SpiffWorkflow's parallel gateway decides whether to fire by looking at every task of its spec in the whole tree
# and telling earlier passes of a loop from this one by ancestry: each check walks the whole history (the cost of a
# step grows with the loop), it cannot work on a tree whose finished part was archived, and it counts the copy a
# branch left at the join in an earlier pass as a token of this one (in a loop whose branches finish in another
# order than the pass before, the join fires without waiting and the next pass starts beside the open task).
# Here a join fires when a token waits on every incoming flow, as BPMN says. A token is a copy of the join that a
# completed branch reached and that no firing consumed (WAITING). A send-back into a branch after the join fired
# gives a token back: the copy the other branch left (CANCELLED when consumed) counts again once the copy that
# consumed it was dropped, and the copy that fired (COMPLETED) counts again once a token it consumed was dropped.
# Firing consumes one token per incoming flow, oldest first; a second token on the same flow waits for the next
# firing. A flow that can only be reached through the gateway itself (a loop's way back into a parallel gateway
# that also starts the loop) is not waited for on the way in: the gateway fires when all flows from outside the
# loop hold a token, or all the flows back into it do, as SpiffWorkflow's own gateway lets such loops run.

JOINED_WITH = "bpm_joined_with"  # internal data of a join copy that fired: the ids of the tokens it consumed
CONSUMED_BY = "bpm_consumed_by"  # internal data of a consumed token: the id of the copy that fired with it


def _parallel_join_update(self, my_task) -> bool:
    """Fire when every incoming flow of a group (see above) holds a token: merge the branches' data, consume the
    tokens."""
    tokens = _join_tokens(self, my_task)
    back = _back_inputs(self)
    groups = [[name for name in (spec.name for spec in self.inputs) if (name in back) is way_back]
              for way_back in (False, True)]
    ready = next((group for group in groups if group and all(name in tokens for name in group)), None)
    if ready is None:
        my_task._set_state(TaskState.WAITING)
        return False
    _consume(my_task, [tokens[name] for name in ready])
    return True


def _consume(my_task, tokens: list) -> None:
    """Fire `my_task` with these tokens (one per incoming flow): their branches' data is merged, oldest first,
    the arriving branch's last."""
    consumed = sorted((token for token in tokens if token is not my_task), key=lambda t: t.last_state_change)
    my_task.internal_data[JOINED_WITH] = [str(token.id) for token in consumed]
    for token in consumed:
        DeepMerge.merge(my_task.data, token.parent.data)
        token.internal_data[CONSUMED_BY] = str(my_task.id)
        if token.state == TaskState.WAITING:
            token.cancel()
        elif token.state == TaskState.COMPLETED:  # it fired before the send-back: what followed it is replaced
            token._drop_children(force=True)
    my_task._inherit_data()


def _join_tokens(self, my_task) -> dict[str, Any]:
    """The oldest token on each incoming flow of this join (the arriving copy counts for its own flow)."""
    tasks = my_task.workflow.tasks
    others = [task for task in tasks.values() if task.task_spec is self and task is not my_task
              and task.parent is not None and task.parent.state == TaskState.COMPLETED]
    tokens: dict[str, Any] = {my_task.parent.task_spec.name: my_task}
    if not others:
        return tokens
    ancestors = list(_ancestors(my_task))
    on_my_path = {task.id for task in ancestors}
    fired_here = any(task.task_spec is self and task.state == TaskState.COMPLETED for task in [*others, *ancestors])
    for task in sorted(others, key=lambda t: t.last_state_change):
        if _is_token(task, tasks, on_my_path, fired_here):
            tokens.setdefault(task.parent.task_spec.name, task)
    return tokens


def _is_token(task, tasks, on_my_path: set, fired_here: bool) -> bool:
    consumer = task.internal_data.get(CONSUMED_BY)
    if consumer is not None:
        return UUID(consumer) not in tasks
    if task.state == TaskState.WAITING:
        return True
    if task.state == TaskState.COMPLETED and task.id not in on_my_path:
        joined_with = task.internal_data.get(JOINED_WITH)
        return joined_with is None or any(UUID(token_id) not in tasks for token_id in joined_with)
    # a copy consumed by SpiffWorkflow's own join (an instance stored before these rules): counted as that join
    # did, unless a copy of the join fired in this tree (an earlier pass of a loop)
    return task.state == TaskState.CANCELLED and not fired_here


def _ancestors(task) -> Iterator:
    task = task.parent
    while task is not None:
        yield task
        task = task.parent


def _back_inputs(self) -> frozenset[str]:
    """Names of the incoming flows' sources that the process start reaches only through this gateway."""
    back = getattr(self, "bpm_back_inputs", None)
    if back is None:
        reached, pending = {id(self)}, [self._wf_spec.start]
        while pending:
            spec = pending.pop()
            if id(spec) not in reached:
                reached.add(id(spec))
                pending.extend(spec.outputs)
        back = self.bpm_back_inputs = frozenset(spec.name for spec in self.inputs if id(spec) not in reached)
    return back


def _parallel_join_run(self, my_task) -> bool:
    return True  # the branches' data was merged when the join fired (_parallel_join_update)


SPIFFWORKFLOW_JOIN_HOOKS = {gateway: (gateway._update_hook, gateway._run_hook)  # (a benchmark's baseline)
                            for gateway in (ParallelGateway, InclusiveGateway)}
ParallelGateway._update_hook = _parallel_join_update
ParallelGateway._run_hook = _parallel_join_run


# An inclusive gateway joins the tokens that wait on its incoming flows once no token elsewhere in the instance
# (a ready, waiting or running task) can still reach an incoming flow that holds none without passing the gateway
# (BPMN's rule as engines apply it). SpiffWorkflow decided this from the copies of the gateway it had predicted
# on the branches still heading for it, which needs the whole path ahead predicted and the whole tree kept.

LIVE = TaskState.READY | TaskState.WAITING | TaskState.STARTED


def _inclusive_join_update(self, my_task) -> bool:
    tokens = _join_tokens(self, my_task)
    missing = [spec.name for spec in self.inputs if spec.name not in tokens]
    if missing and _may_still_arrive(self, my_task, missing):
        my_task._set_state(TaskState.WAITING)
        return False
    _consume(my_task, list(tokens.values()))
    return True


def _may_still_arrive(self, my_task, missing: list[str]) -> bool:
    """Whether a live task outside this gateway can reach one of its `missing` incoming flows."""
    reaching = _reaching(self)
    sources = set().union(*(reaching[name] for name in missing))
    return any(task.task_spec.name in sources for task in my_task.workflow.tasks.values()
               if task.state & LIVE and task.task_spec is not self)


def _reaching(self) -> dict[str, frozenset[str]]:
    """For each incoming flow's source: the names of the specs from which it can be reached (itself included)
    without passing this gateway."""
    reaching = getattr(self, "bpm_reaching", None)
    if reaching is None:
        reaching = {}
        for source in self.inputs:
            found, pending = {source.name}, [source]
            while pending:
                for earlier in pending.pop().inputs:
                    if earlier is not self and earlier.name not in found:
                        found.add(earlier.name)
                        pending.append(earlier)
            reaching[source.name] = frozenset(found)
        self.bpm_reaching = reaching
    return reaching


def _inclusive_join_run(self, my_task) -> bool:
    """SpiffWorkflow's inclusive gateway run without its merge of every earlier copy's branch (the tokens' data
    was merged when the gateway fired): take the flows whose conditions hold, else the default."""
    matches, defaults = self._get_matching_outputs(my_task)
    if not matches + defaults:
        raise WorkflowTaskException("No conditions satisfied on gateway", task=my_task)
    my_task._sync_children(matches or defaults, TaskState.FUTURE)
    for child in my_task.children:
        child.task_spec._predict(child, mask=TaskState.FUTURE | TaskState.PREDICTED_MASK)
    return True


InclusiveGateway._update_hook = _inclusive_join_update
InclusiveGateway._run_hook = _inclusive_join_run


def _mark_long_history_handling(specs: list) -> None:
    """Mark a process's specs for the archive (`bpm_archives` on each process spec) and for bounded prediction
    (`bpm_predict_depth` on each task spec): every process gets both, since its joins decide from the tokens of
    the current pass alone (see "parallel join"); the marks let a benchmark switch either off."""
    for spec in specs:
        spec.bpm_archives = True
        for task_spec in spec.task_specs.values():
            task_spec.bpm_predict_depth = PREDICT_DEPTH


def _predicts_near(spec) -> bool:
    return getattr(spec.start, "bpm_predict_depth", None) is not None


class ProcessRuntime:
    """A deployed definition version, parsed once and shared by every instance of that version."""

    def __init__(self, spec_json: str, allow_scripts: bool = False):
        specs = json.loads(spec_json)
        self.spec = SPEC_SERIALIZER.from_dict(specs["spec"])
        self.subprocess_specs = {name: SPEC_SERIALIZER.from_dict(s) for name, s in specs["subprocess_specs"].items()}
        self.allow_scripts = allow_scripts
        _mark_long_history_handling([self.spec, *self.subprocess_specs.values()])

    def new_workflow(self) -> BpmnWorkflow:
        size = len(self.spec.task_specs) + sum(len(s.task_specs) for s in self.subprocess_specs.values())
        if size > DEEP_SPEC_TASKS and not _predicts_near(self.spec):  # the whole path is predicted, recursively
            return call_with_deep_stack(self._new_workflow)
        return self._new_workflow()

    def _new_workflow(self) -> BpmnWorkflow:
        return BpmnWorkflow(self.spec, self.subprocess_specs, script_engine=RecordingScriptEngine(self.allow_scripts))

    def restore(self, state_json: str, archive: list[str] | None = None) -> BpmnWorkflow:
        """The instance's workflow. Without `archive` only the live part of a long history is restored, which
        is all a step needs; with the instance's stored archive chunks the whole task tree is (path, send-back,
        migration), and the next snapshot replaces the stored chunks."""
        if archive is not None:
            state_json = merge_archive(state_json, archive)
        token = _current_specs.set((self.spec, self.subprocess_specs))
        try:
            workflow = _deserialized(state_json)
        finally:
            _current_specs.reset(token)
        workflow.script_engine = RecordingScriptEngine(self.allow_scripts)
        workflow.bpm_archive_merged = archive is not None
        return workflow


def _deserialized(state_json: str) -> BpmnWorkflow:
    """INSTANCE_SERIALIZER.deserialize_json, the JSON read by bpm.json_text (the same values, in less CPU)."""
    state = json_text.loads(state_json)
    INSTANCE_SERIALIZER.migrate(state)
    return INSTANCE_SERIALIZER.from_dict(state)


@contextlib.contextmanager
def engine_errors() -> Iterator[None]:
    """Turn the engine's exceptions into EngineError naming the BPMN element."""
    try:
        yield
    except EngineError:
        raise
    except (SpiffWorkflowException, expressions.ExpressionError, WorkflowException) as error:
        task = getattr(error, "task", None)
        spec = getattr(task, "task_spec", None) or getattr(error, "task_spec", None)
        inner = getattr(error, "error", None) or getattr(error, "exception", None)
        if isinstance(inner, EngineError):
            raise inner from error
        raise EngineError(str(error).split("\n")[0], getattr(spec, "bpmn_id", None),
                          getattr(spec, "bpmn_name", None)) from error
    except RecursionError as error:
        raise EngineError("the process did not settle (an endless loop of automatic steps?)") from error


# Deep recursion (SpiffWorkflow's parser walks a chain of elements recursively): a thread of its own with a
# large stack, and a raised recursion limit while at least one such thread runs (restored by the last one).
DEEP_RECURSION_LIMIT = 50_000
DEEP_STACK_BYTES = 512 * 1024 * 1024  # address space reserved; pages are only committed as they are used
_deep_lock = threading.Lock()
_deep_state = {"users": 0, "saved_limit": 0}
_deep_thread = threading.local()


def call_with_deep_stack(function: Callable[..., Any], *args: Any) -> Any:
    """Run `function(*args)` in a worker thread with a large stack and a raised recursion limit; return its
    result or raise its exception here. The caller's context variables are visible in the worker."""
    if getattr(_deep_thread, "active", False):
        return function(*args)
    outcome: dict[str, Any] = {}
    context = contextvars.copy_context()

    def run() -> None:
        _deep_thread.active = True
        try:
            outcome["result"] = context.run(function, *args)
        except BaseException as error:  # noqa: BLE001 - handed back to the calling thread
            outcome["error"] = error

    with _deep_lock:
        if _deep_state["users"] == 0:
            _deep_state["saved_limit"] = sys.getrecursionlimit()
            sys.setrecursionlimit(max(_deep_state["saved_limit"], DEEP_RECURSION_LIMIT))
        _deep_state["users"] += 1
        previous_size = threading.stack_size(DEEP_STACK_BYTES)
        try:
            worker = threading.Thread(target=run, name="bpm-deep-stack", daemon=True)
            worker.start()
        except BaseException:
            _release_deep_limit()
            raise
        finally:
            threading.stack_size(previous_size)
    try:
        worker.join()
    finally:
        with _deep_lock:
            _release_deep_limit()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["result"]


def _release_deep_limit() -> None:
    _deep_state["users"] -= 1
    if _deep_state["users"] == 0:
        sys.setrecursionlimit(_deep_state["saved_limit"])


# SpiffWorkflow also predicts the path ahead recursively when a workflow is created or a step runs: processes
# with more task specs than this run their engine steps on the deep stack too (a thread per step is cheap next
# to a step of such a process), unless their prediction is bounded (see "prediction" above).
DEEP_SPEC_TASKS = 250
DEEP_TREE_TASKS = 400  # a task tree this large (one restored with its archive) may be as deep: SpiffWorkflow's
# reset drops what follows a task one recursion level per task


def _is_large(workflow: BpmnWorkflow) -> bool:
    if len(workflow.tasks) > DEEP_TREE_TASKS:
        return True
    if _predicts_near(workflow.spec):
        return False
    size = len(workflow.spec.task_specs)
    for spec in (getattr(workflow, "subprocess_specs", None) or {}).values():
        size += len(spec.task_specs)
    return size > DEEP_SPEC_TASKS


def _deep_when_large(function: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(function)
    def wrapper(workflow: BpmnWorkflow, *args: Any) -> Any:
        if _is_large(workflow) and not getattr(_deep_thread, "active", False):
            return call_with_deep_stack(function, workflow, *args)
        return function(workflow, *args)

    return wrapper


@_deep_when_large
def start(workflow: BpmnWorkflow, variables: Mapping[str, Any]) -> None:
    with engine_errors():
        for task in workflow.get_tasks(state=TaskState.READY):
            task.data.update(variables)
        run_engine(workflow)


MAX_ENGINE_ROUNDS = 10_000


@_deep_when_large
def run_engine(workflow: BpmnWorkflow) -> None:
    """do_engine_steps, bounded: a process made only of automatic steps that loop forever is stopped."""
    with engine_errors():
        rounds = 0
        while _engine_round(workflow):
            rounds += 1
            if rounds > MAX_ENGINE_ROUNDS:
                raise EngineError(f"the process ran more than {MAX_ENGINE_ROUNDS} automatic steps without waiting")
        if not workflow.subprocesses and not _waits_for_timers(workflow):
            return  # refresh_timers would change nothing, so another pass would find nothing to run
        workflow.refresh_timers()
        while _engine_round(workflow):
            rounds += 1
            if rounds > MAX_ENGINE_ROUNDS:
                raise EngineError(f"the process ran more than {MAX_ENGINE_ROUNDS} automatic steps without waiting")


def _engine_round(workflow: BpmnWorkflow) -> bool:
    """One round of SpiffWorkflow's `_do_engine_steps`: run the READY automatic tasks; True if any ran.

    The usual case, one automatic task ready in a process without subprocesses, is found with one flat pass
    over the task map instead of a walk of the whole tree (a loop keeps every completed task in the tree);
    its successors are found by the next round. With several ready, or with subprocesses, SpiffWorkflow's own
    round runs them in its (depth-first) order."""
    if workflow.subprocesses:
        return workflow._do_engine_steps()
    ready = None
    for task in workflow.tasks.values():
        if task.state == TaskState.READY and not task.task_spec.manual:
            if ready is not None:
                return workflow._do_engine_steps()
            ready = task
    if ready is None:
        return False
    ready.run()
    return True


def _waits_for_timers(workflow: BpmnWorkflow) -> bool:
    """Whether `refresh_timers` would look at any task (the same test SpiffWorkflow applies there)."""
    from SpiffWorkflow.bpmn.specs.event_definitions.multiple import MultipleEventDefinition

    return any(isinstance(task.task_spec.event_definition, (TimerEventDefinition, MultipleEventDefinition))
               for task in workflow.event_manager.tasks.values())


def find_ready_task(workflow: BpmnWorkflow, task_id: str):
    try:
        task = workflow.get_task_from_id(UUID(task_id))
    except (ValueError, TaskNotFound):
        return None
    return task if task is not None and task.state == TaskState.READY and task.task_spec.manual else None


try:  # SpiffWorkflow raises its own TaskNotFoundException for unknown ids
    from SpiffWorkflow.exceptions import TaskNotFoundException as TaskNotFound
except ImportError:  # pragma: no cover
    TaskNotFound = KeyError


@_deep_when_large
def complete(workflow: BpmnWorkflow, task_id: str, variables: Mapping[str, Any]) -> None:
    task = find_ready_task(workflow, task_id)
    if task is None:
        raise EngineError("the task is not ready in this instance")
    with engine_errors():
        task.data.update(variables)
        task.run()
        run_engine(workflow)


@_deep_when_large
def fire_timers(workflow: BpmnWorkflow) -> None:
    with engine_errors():
        workflow.refresh_timers()
        run_engine(workflow)


def cancel(workflow: BpmnWorkflow) -> None:
    workflow.cancel()


def snapshot(workflow: BpmnWorkflow) -> Snapshot:
    thrown = take_thrown_messages(workflow) if workflow.bpmn_events else []  # before serializing: not state
    archive = archive_finished(workflow)
    state = INSTANCE_SERIALIZER.serialize_json(workflow)
    decisions = workflow.script_engine.take_decisions() if hasattr(workflow.script_engine, "take_decisions") else []
    output = workflow.script_engine.take_script_output() if hasattr(workflow.script_engine, "take_script_output") \
        else []
    waiting = tasks_in_state(workflow, TaskState.WAITING)  # one pass for the timers and the messages
    return Snapshot(state, workflow.is_completed(), open_tasks(workflow), waiting_timers(workflow, waiting),
                    decisions, waiting_messages(workflow, waiting), output, thrown, archive)


def tasks_in_state(workflow: BpmnWorkflow, state: int, manual: bool | None = None) -> list:
    """`workflow.get_tasks(state=..., manual=...)`, same result and order, without SpiffWorkflow's tree walk in
    the usual case: one flat pass over the workflow's task map (the walk costs a generator step per task, and a
    loop keeps every completed task in the tree). When more than one task matches, or the process has
    subprocesses, the walk itself decides the (depth-first) order."""
    if workflow.subprocesses:
        return workflow.get_tasks(state=state, manual=manual)
    found = [task for task in workflow.tasks.values()
             if task.state & state and (manual is None or task.task_spec.manual == manual)]
    if len(found) > 1 or (found and not _reached_by_walk(workflow, found[0])):
        return workflow.get_tasks(state=state, manual=manual)
    return found


def _reached_by_walk(workflow: BpmnWorkflow, task) -> bool:
    """The walk descends from the root through tasks that are at least FUTURE (definite or finished)."""
    parent = task.parent
    while parent is not None:
        if parent.state < TaskState.FUTURE:
            return False
        task, parent = parent, parent.parent
    return task is workflow.task_tree


def open_tasks(workflow: BpmnWorkflow) -> list[OpenTask]:
    return [
        OpenTask(str(task.id), task.task_spec.bpmn_id, task.task_spec.bpmn_name, task.task_spec.lane,
                 dict(getattr(task.task_spec, "extensions", {}) or {}), task.data)
        for task in tasks_in_state(workflow, TaskState.READY, manual=True)
    ]


def waiting_timers(workflow: BpmnWorkflow, waiting: list | None = None) -> list[WaitingTimer]:
    """`waiting`: the WAITING tasks, when the caller already has them."""
    timers = []
    for task in waiting if waiting is not None else tasks_in_state(workflow, TaskState.WAITING):
        definition = getattr(task.task_spec, "event_definition", None)
        if not isinstance(definition, TimerEventDefinition):
            continue
        due = _timer_due(task.internal_data.get("event_value"))
        if due is not None:
            timers.append(WaitingTimer(str(task.id), task.task_spec.bpmn_id, type(definition).__name__, due))
    return timers


def _timer_due(event_value: Any) -> datetime | None:
    if isinstance(event_value, dict):
        event_value = event_value.get("next") if event_value.get("cycles", 0) != 0 else None
    if not event_value:
        return None
    due = TimerEventDefinition.get_datetime(event_value) if isinstance(event_value, str) else event_value
    return due.astimezone(UTC)


def variables_of(workflow: BpmnWorkflow) -> dict[str, Any]:
    """The instance's variables: the end state if completed, else the data of the tasks it waits in."""
    if workflow.is_completed() and workflow.last_task is not None:
        return dict(workflow.last_task.data)
    merged: dict[str, Any] = {}
    for task in workflow.get_tasks(state=TaskState.READY | TaskState.WAITING | TaskState.STARTED):
        merged.update(task.data)
    return merged


def completed_elements(workflow: BpmnWorkflow) -> list[str]:
    """BPMN ids of the elements the instance has passed through, in completion order (the path taken)."""
    finished = [t for t in workflow.get_tasks(state=TaskState.COMPLETED) if t.task_spec.bpmn_id]
    for subprocess in workflow.subprocesses.values():
        finished += [t for t in subprocess.get_tasks(state=TaskState.COMPLETED) if t.task_spec.bpmn_id]
    return [t.task_spec.bpmn_id for t in sorted(finished, key=lambda t: t.last_state_change)]


# --- assignment expressions on user tasks ---------------------------------------------------------------------

_DATETIME_IDIOM = re.compile(r"^\$\{\s*dateTime\(\)\.plus(Minutes|Hours|Days|Weeks)\((\d+)\)\.toDate\(\)\s*\}$")
_IDIOM_UNITS = {"Minutes": "minutes", "Hours": "hours", "Days": "days", "Weeks": "weeks"}


def resolve_value(text: str | None, data: Mapping[str, Any]) -> Any:
    """Resolve an assignment attribute: a literal, or a `${...}` expression over the task's data."""
    if text is None:
        return None
    text = text.strip()
    if not (text.startswith("${") or text.startswith("#{")):
        return text
    result, _ = expressions.evaluate(expressions.translate_camunda(text), data)
    return result


def resolve_list(text: str | None, data: Mapping[str, Any]) -> list[str]:
    value = resolve_value(text, data)
    if value is None or value == "":
        return []
    if isinstance(value, (list, tuple, set)):
        return [str(v).strip() for v in value if str(v).strip()]
    return [part.strip() for part in str(value).split(",") if part.strip()]


def resolve_due(text: str | None, data: Mapping[str, Any], now: datetime) -> datetime | None:
    """A due date: ISO date-time, ISO duration from now (P2D), Camunda's dateTime().plusDays(n) idiom, or ${var}."""
    if not text:
        return None
    idiom = _DATETIME_IDIOM.match(text.strip())
    if idiom:
        return now + timedelta(**{_IDIOM_UNITS[idiom.group(1)]: int(idiom.group(2))})
    value = resolve_value(text, data)
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    value = str(value).strip()
    if value.startswith("P"):
        return now + TimerEventDefinition.get_timedelta_from_start(TimerEventDefinition.parse_iso_duration(value),
                                                                   now)
    moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def check_assignment_text(text: str) -> None:
    """Deploy-time check of an assignment attribute (raises ExpressionError)."""
    text = text.strip()
    if _DATETIME_IDIOM.match(text):
        return
    if text.startswith("${") or text.startswith("#{"):
        expressions.translate_camunda(text)


# --- integrations: messages, version migration, simulation -----------------------------------------------------

MESSAGE_RESULT_KEY = "__message_payload"


@dataclass
class WaitingMessage:
    task_id: str
    element_id: str
    name: str
    variables: dict[str, Any] = field(default_factory=dict)  # scalar variables: the correlation values


@dataclass
class ThrownMessage:
    """A message an instance threw (throw event, end event, send task) that nothing in the instance caught.

    `payload` is what the throw evaluated (`camunda:expression`), `result_var` the variable it should land in
    (`camunda:resultVariable`); without one, SpiffWorkflow's convention applies: `<catching element>_Response`.
    """

    name: str
    payload: Any = None
    result_var: str | None = None
    variables: dict[str, Any] | None = None  # a message thrown with a data payload (no expression)

    def variables_for(self, element_id: str) -> dict[str, Any]:
        if self.variables is not None:
            return dict(self.variables)
        if self.payload is None and self.result_var is None:
            return {}
        return {self.result_var or f"{element_id}_Response": self.payload}


def take_thrown_messages(workflow: BpmnWorkflow) -> list[ThrownMessage]:
    """Remove the uncaught message events from the workflow's event queue and return them (oldest first)."""
    from SpiffWorkflow.bpmn.specs.event_definitions.message import MessageEventDefinition

    thrown, kept = [], []
    for event in workflow.bpmn_events:
        definition = event.event_definition
        if not isinstance(definition, MessageEventDefinition):
            kept.append(event)
            continue
        payload = event.payload
        if isinstance(payload, dict) and set(payload) == {"payload", "result_var"}:
            thrown.append(ThrownMessage(definition.name, _jsonable(payload["payload"]), payload["result_var"]))
        else:
            variables = _jsonable(dict(payload or {}))
            thrown.append(ThrownMessage(definition.name, variables=variables if isinstance(variables, dict) else {}))
    workflow.bpmn_events = kept
    return thrown


def _message_definition(task_spec):
    from SpiffWorkflow.bpmn.specs.event_definitions.message import MessageEventDefinition

    definition = getattr(task_spec, "event_definition", None)
    return definition if isinstance(definition, MessageEventDefinition) else None


def waiting_messages(workflow: BpmnWorkflow, waiting_tasks: list | None = None) -> list[WaitingMessage]:
    """The messages an instance waits for now (catch events, receive tasks, boundary and event-gateway events).

    `waiting_tasks`: the WAITING tasks, when the caller already has them."""
    waiting = []
    for task in waiting_tasks if waiting_tasks is not None else tasks_in_state(workflow, TaskState.WAITING):
        definition = _message_definition(task.task_spec)
        if definition is not None:
            scalars = {k: v for k, v in task.data.items() if isinstance(v, (str, int, float, bool))}
            waiting.append(WaitingMessage(str(task.id), task.task_spec.bpmn_id, definition.name, scalars))
    return waiting


def start_message_names(runtime: ProcessRuntime) -> list[str]:
    """Names of the messages that start this process (message start events of the top-level process)."""
    from SpiffWorkflow.bpmn.specs.mixins.events.start_event import StartEvent

    names = []
    for task_spec in runtime.spec.task_specs.values():
        definition = _message_definition(task_spec)
        if definition is not None and isinstance(task_spec, StartEvent) and definition.name not in names:
            names.append(definition.name)
    return names


def start_message_element(runtime: ProcessRuntime, name: str) -> str | None:
    """The id of the message start event of the top-level process that catches message `name`."""
    from SpiffWorkflow.bpmn.specs.mixins.events.start_event import StartEvent

    for task_spec in runtime.spec.task_specs.values():
        definition = _message_definition(task_spec)
        if definition is not None and isinstance(task_spec, StartEvent) and definition.name == name:
            return task_spec.bpmn_id
    return None


def send_message(workflow: BpmnWorkflow, name: str, payload: Mapping[str, Any]) -> list[str]:
    """Deliver a message; its payload becomes variables of the catching path. Returns the catching element ids.

    Raises EngineError when the instance is not waiting for the message.
    """
    from SpiffWorkflow.bpmn.util.event import BpmnEvent
    from SpiffWorkflow.camunda.specs.event_definitions import MessageEventDefinition

    waiting = {w.task_id for w in waiting_messages(workflow) if w.name == name}
    if not waiting:
        raise EngineError(f"the instance is not waiting for message '{name}'")
    variables = dict(payload)
    with engine_errors():
        # The Camunda message definition stores the payload under `result_var`; we merge it into the data instead.
        workflow.send_event(BpmnEvent(MessageEventDefinition(name), payload={
            "payload": variables, "result_var": MESSAGE_RESULT_KEY}))
        caught = [t for t in workflow.get_tasks() if str(t.id) in waiting and t.state != TaskState.WAITING]
        for task in caught:
            task.data.update(variables)
        run_engine(workflow)
    for task in workflow.get_tasks():
        task.data.pop(MESSAGE_RESULT_KEY, None)
    return [t.task_spec.bpmn_id for t in caught]


# --- archive: the finished part of a long history leaves the stored state ----------------------------------------
# SpiffWorkflow keeps every task an instance ever ran in its task tree, and every step restores and serializes
# the whole tree: a loop run 500 times or a chain of 500 steps made each step cost more than the one before.
# A snapshot therefore moves the finished tasks above the live part of the tree (its open, waiting and predicted
# tasks and a few finished ones above them) out of the state, in chunks the server appends to the instance's
# archive. The root task stays and gets the first kept task (the cut) as its only child; the state records
# where the cut hung and what the root's children were, so that `merge_archive` rebuilds the exact tree for
# what needs the whole history (the path taken, send-back to an archived step, migration). The process spec's
# `bpm_archives` says whether it may archive (see _mark_long_history_handling).

ARCHIVE_BATCH = 8  # archive once at least this many finished tasks lie above the live part (one chunk per batch)
ARCHIVE_KEEP = 3  # finished tasks kept above the live part: the steps just taken stay in the state


@dataclass
class ArchiveUpdate:
    replace: bool  # the workflow was restored with its archive: the stored chunks are replaced by `chunk`
    chunk: str | None  # JSON object task id -> task record of the tasks that left the state, parents first


def archive_finished(workflow: BpmnWorkflow) -> ArchiveUpdate | None:
    """Move the finished tasks above the live part of the tree out of the workflow; what to store."""
    merged = getattr(workflow, "bpm_archive_merged", False)
    nothing_leaves = ArchiveUpdate(True, None) if merged else None
    cut = _archive_cut(workflow) if getattr(workflow.spec, "bpm_archives", False) else None
    if cut is None:
        return nothing_leaves
    kept = {task.id for task in cut}
    leaving = [task for task in workflow.tasks.values() if task.id not in kept and task is not workflow.task_tree]
    if len(leaving) < ARCHIVE_BATCH or not _may_leave(workflow, leaving):
        return nothing_leaves
    chunk = json.dumps(_archive_records(workflow, leaving))
    _splice(workflow, cut, leaving)
    return ArchiveUpdate(merged, chunk)


def _archive_cut(workflow: BpmnWorkflow):
    """The highest task kept: ARCHIVE_KEEP finished tasks above the lowest common ancestor of the live tasks."""
    live = [task for task in workflow.tasks.values() if not task.has_state(TaskState.FINISHED_MASK)]
    if not live:
        return None
    path = [live[0], *_ancestors(live[0])]
    if path[-1] is not workflow.task_tree:
        return None
    depth_of = {task.id: index for index, task in enumerate(path)}
    lowest = 0
    for task in live[1:]:
        while task.id not in depth_of:
            task = task.parent
        lowest = max(lowest, depth_of[task.id])
    index = lowest + ARCHIVE_KEEP
    return path[index] if index < len(path) - 2 else None  # path[-1] is the root, path[-2] its child


def _may_leave(workflow: BpmnWorkflow, leaving: list) -> bool:
    """Only finished tasks leave, and never one a subprocess or the workflow's last step refers to."""
    last = workflow.last_task.id if workflow.last_task is not None else None
    return all(task.has_state(TaskState.FINISHED_MASK) and task.id not in workflow.subprocesses
               and task.id != last for task in leaving)


def _archive_records(workflow: BpmnWorkflow, leaving: list) -> dict[str, dict]:
    registry = INSTANCE_SERIALIZER.registry
    archive = getattr(workflow, "bpm_archive", None)
    records = {}
    for task in leaving:  # the task map is in creation order: parents come before their children
        record = registry.convert(task)
        if archive is not None and record["id"] == archive["cut"]:  # the previous cut: its parent is archived
            record["parent"] = archive["cut_parent"]
            _with_full_data(registry, record, task)
        records[record["id"]] = record
    return records


def _splice(workflow: BpmnWorkflow, cut, leaving: list) -> None:
    root = workflow.task_tree
    archive = getattr(workflow, "bpm_archive", None)
    workflow.bpm_archive = {
        "cut": str(cut.id),
        "cut_parent": str(cut._parent),
        "root_children": archive["root_children"] if archive else [str(child) for child in root._children],
        "archived": (archive["archived"] if archive else 0) + len(leaving),
    }
    for task in leaving:
        del workflow.tasks[task.id]
    root._children = [cut.id]
    cut._parent = root.id
    workflow.bpm_archive_merged = False


def merge_archive(state_json: str, chunks: list[str]) -> str:
    """The stored state with its archived tasks put back where they were: the whole task tree."""
    state = json.loads(state_json)
    archive = state.pop("archive", None)
    if archive is None:
        return state_json
    archived = [json.loads(chunk) for chunk in chunks]
    if sum(len(chunk) for chunk in archived) != archive["archived"]:
        raise EngineError(f"the instance archive holds {sum(len(chunk) for chunk in archived)} tasks, "
                          f"its state expects {archive['archived']}")
    live, root_id = state["tasks"], state["root"]
    live[root_id]["children"] = archive["root_children"]
    live[archive["cut"]]["parent"] = archive["cut_parent"]
    tasks = {root_id: live[root_id]}
    for chunk in archived:
        tasks.update(chunk)
    tasks.update((task_id, record) for task_id, record in live.items() if task_id != root_id)
    state["tasks"] = tasks
    return json.dumps(state)


PREDICTED_STATES = ("MAYBE", "LIKELY", "FUTURE")


def _state_name(value: Any) -> str:
    return TaskState.get_name(value) if isinstance(value, int) else "?"


def prune_predicted(state_json: str) -> str:
    """Drop predicted tasks (MAYBE/LIKELY/FUTURE): they follow the old spec and are re-predicted on restore."""
    state = json.loads(state_json)
    for scope in [state, *state.get("subprocesses", {}).values()]:
        tasks = scope.get("tasks", {})
        predicted = {tid for tid, task in tasks.items() if _state_name(task.get("state")) in PREDICTED_STATES}
        for tid in predicted:
            tasks.pop(tid)
        for task in tasks.values():
            task["children"] = [child for child in task.get("children", []) if child not in predicted]
    return json.dumps(state)


def state_task_specs(state_json: str) -> dict[str, str]:
    """Task spec name -> state of every task in a stored instance state (top level and subprocesses)."""
    state = json.loads(state_json)
    found: dict[str, str] = {}
    for scope in [state, *state.get("subprocesses", {}).values()]:
        for task in scope.get("tasks", {}).values():
            name, label = task.get("task_spec"), _state_name(task.get("state"))
            if name is not None and found.get(name) not in ("READY", "WAITING", "STARTED"):
                found[name] = label
    return found


def missing_in_target(state_json: str, target: ProcessRuntime) -> dict[str, str]:
    """Task specs the (pruned) stored state refers to that the target version lacks (name -> task state)."""
    known = set(target.spec.task_specs)
    for subprocess in target.subprocess_specs.values():
        known.update(subprocess.task_specs)
    specs = state_task_specs(prune_predicted(state_json))
    return {name: state for name, state in specs.items() if name not in known}


def migrate_state(state_json: str, target: ProcessRuntime, whole: bool = False) -> BpmnWorkflow:
    """Restore a stored state against another version's spec (task spec names are BPMN ids). `whole`: the state
    was merged with the instance's archive (merge_archive), and the next snapshot replaces the stored archive."""
    missing = missing_in_target(state_json, target)
    if missing:
        raise EngineError("the target version lacks " + ", ".join(sorted(missing)))
    with engine_errors():
        try:
            workflow = target.restore(prune_predicted(state_json))
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            raise EngineError(f"the state cannot be restored on the target version: {error}") from error
        for task in workflow.get_tasks(state=TaskState.READY | TaskState.WAITING | TaskState.STARTED):
            task.task_spec._predict(task, mask=TaskState.PREDICTED_MASK | task.state)
    workflow.bpm_archive_merged = whole
    return workflow


# --- time: firing due timers, timer start events, ISO durations (timers and escalations area) ---

TIMER_FIRE_NUDGE = timedelta(microseconds=1)


def fire_due_timers(workflow: BpmnWorkflow, now: datetime) -> list[WaitingTimer]:
    """Fire every timer of the instance that is due at `now` (inclusive); return one entry per occurrence fired.

    SpiffWorkflow fires a timer only when its due time is strictly in the past, so the refresh sees `now` plus
    one microsecond: a timer due at 10:00:00 fires at 10:00:00, and not a microsecond before. A cycle that is
    several occurrences behind catches up in one call (the engine runs them all); each occurrence is listed
    with its own due time.
    """
    before = {t.task_id: (t, _cycles_left(workflow, t.task_id), _cycle_interval(workflow, t.task_id))
              for t in waiting_timers(workflow)}
    with engine_errors():
        with clock_context(lambda: now + TIMER_FIRE_NUDGE):
            workflow.refresh_timers()
        with clock_context(lambda: now):
            _settle(workflow)
    fired: list[WaitingTimer] = []
    for task_id, (timer, cycles_before, interval) in before.items():
        if timer.due_at > now:
            continue
        if cycles_before is not None:
            occurrences = cycles_before - (_cycles_left(workflow, task_id) or 0)
            fired += [WaitingTimer(task_id, timer.element_id, timer.kind, timer.due_at + k * interval)
                      for k in range(max(occurrences, 0))]
        elif _has_fired(_timer_task(workflow, task_id)):
            fired.append(timer)
    return sorted(fired, key=lambda t: t.due_at)


def _timer_task(workflow: BpmnWorkflow, task_id: str):
    try:
        return workflow.get_task_from_id(UUID(task_id))
    except TaskNotFound:
        return None


def _has_fired(task) -> bool:
    """A date or duration timer that left WAITING other than by cancellation (or is marked fired)."""
    if task is None:
        return False
    return bool(task.internal_data.get("event_fired")) or task.state not in (TaskState.WAITING,
                                                                             TaskState.CANCELLED)


def _cycles_left(workflow: BpmnWorkflow, task_id: str) -> int | None:
    """Occurrences a cycle timer has left (None for date and duration timers; 0 once a cycle is exhausted)."""
    task = _timer_task(workflow, task_id)
    if task is None or type(task.task_spec.event_definition).__name__ != "CycleTimerEventDefinition":
        return None
    value = task.internal_data.get("event_value")
    return value.get("cycles", 0) if isinstance(value, dict) else 0


def _cycle_interval(workflow: BpmnWorkflow, task_id: str) -> timedelta:
    task = _timer_task(workflow, task_id)
    value = task.internal_data.get("event_value") if task is not None else None
    return timedelta(seconds=value.get("duration", 0)) if isinstance(value, dict) else timedelta(0)


def _settle(workflow: BpmnWorkflow) -> None:
    rounds = 0
    while _engine_round(workflow):
        rounds += 1
        if rounds > MAX_ENGINE_ROUNDS:
            raise EngineError(f"the process ran more than {MAX_ENGINE_ROUNDS} automatic steps, never waiting")


@dataclass
class TimerStart:
    element_id: str
    name: str | None
    kind: str  # timeDate | timeDuration | timeCycle
    expression: str  # normalized: what the safe evaluator evaluates to an ISO string


def timer_start_events(bpmn_xml_text: str, process_id: str) -> list[TimerStart]:
    """The timer start events of a deployed process, with their expressions normalized as at deploy."""
    tree = bpmn_xml.parse_secure(bpmn_xml_text.encode())
    process = tree.getroot().find(f"{{{BPMN_NS}}}process[@id='{process_id}']")
    starts = []
    for event in (process if process is not None else []):
        if not isinstance(event.tag, str) or etree.QName(event).localname != "startEvent":
            continue
        for kind in TIMER_KINDS:
            definition = event.find(f"{{{BPMN_NS}}}timerEventDefinition/{{{BPMN_NS}}}{kind}")
            if definition is not None:
                expression = expressions.normalize_timer((definition.text or "").strip(), kind)
                starts.append(TimerStart(event.get("id"), event.get("name"), kind, expression))
    return starts


def process_properties(bpmn_xml_text: str, process_id: str) -> dict[str, str]:
    """camunda:properties set on the process element itself (not on its tasks)."""
    tree = bpmn_xml.parse_secure(bpmn_xml_text.encode())
    process = tree.getroot().find(f"{{{BPMN_NS}}}process[@id='{process_id}']")
    if process is None:
        return {}
    path = f"{{{BPMN_NS}}}extensionElements/{{{CAMUNDA_NS}}}properties/{{{CAMUNDA_NS}}}property"
    found = process.findall(path)
    return {p.get("name"): p.get("value") for p in found}


@dataclass
class Occurrence:
    due_at: datetime
    remaining: int  # occurrences left including this one; -1 = unbounded cycle
    interval_seconds: float | None


def first_occurrence(start: TimerStart, now: datetime) -> Occurrence:
    """When a timer start event first fires, counted from `now` (the deployment). Raises ExpressionError."""
    value, _ = expressions.evaluate(start.expression, {})
    value = str(value).strip()
    try:
        if start.kind == "timeCycle":
            with clock_context(lambda: now):
                cycles, first, interval = TimerEventDefinition.parse_iso_recurring_interval(value)
            return Occurrence(first.astimezone(UTC), cycles, interval.total_seconds())
        if start.kind == "timeDuration":
            return Occurrence(now + parse_duration(value, now), 1, None)
        return Occurrence(TimerEventDefinition.get_datetime(value).astimezone(UTC), 1, None)
    except Exception as error:  # noqa: BLE001 - SpiffWorkflow raises bare Exception for bad ISO text
        raise expressions.ExpressionError(
            f"{start.kind} '{value}' is not a valid ISO 8601 value: {error}") from error


def parse_duration(text: str, start: datetime) -> timedelta:
    """An ISO 8601 duration (P3D, PT4H, P1M calendar-aware from `start`). Raises ValueError."""
    text = (text or "").strip()
    if not text.upper().startswith("P"):
        raise ValueError(f"'{text}' is not an ISO 8601 duration (e.g. PT4H, P3D)")
    try:
        parsed = TimerEventDefinition.parse_iso_duration(text)
        return TimerEventDefinition.get_timedelta_from_start(parsed, start)
    except Exception as error:  # noqa: BLE001 - SpiffWorkflow raises bare Exception for bad ISO text
        raise ValueError(f"'{text}' is not an ISO 8601 duration (e.g. PT4H, P3D)") from error


def start_by_timer(workflow: BpmnWorkflow, element_id: str, variables: Mapping[str, Any],
                   now: datetime) -> None:
    """Start a new instance whose timer start event `element_id` fires at once (one schedule occurrence).

    The server keeps the schedule; inside the new instance the start event fires exactly once.
    """
    with engine_errors():
        with clock_context(lambda: now):
            start(workflow, variables)
        for task in workflow.get_tasks(state=TaskState.WAITING):
            if task.task_spec.bpmn_id != element_id:
                continue
            value = task.internal_data.get("event_value")
            if isinstance(value, dict):
                task.internal_data["event_value"] = {**value, "cycles": 1,
                                                     "next": (now - timedelta(seconds=1)).isoformat()}
            else:
                task.internal_data["event_value"] = (now - timedelta(seconds=1)).isoformat()
        with clock_context(lambda: now):
            workflow.refresh_timers()
            run_engine(workflow)


# --- approvals: countersign (multi-instance user tasks) and send-back -------------------------------------------
# Appended for the approver inbox. SpiffWorkflow facts these rely on (checked by running it):
# - a multi-instance user task's instances are children of the multi-instance task; each child's spec is
#   "<id> [child]" with the same bpmn_id and extensions, and without an output collection the child's data
#   is merged into the parent's, last writer wins;
# - the parent's `condition` (completionCondition) is evaluated on the data of the child that just finished,
#   and when true the remaining children are cancelled (parallel) or never created (sequential);
# - reset_from_task_id(id) makes that (completed) task READY again, keeping its id, and drops what followed.

COUNTERSIGN_DONE = "countersign_done"


@dataclass
class MultiInstanceGroup:
    parent_id: str
    sibling_ids: list[str]
    total: int
    sequential: bool


def multi_instance_group(workflow: BpmnWorkflow, task_id: str) -> MultiInstanceGroup | None:
    """The multi-instance task a READY user task belongs to, with every instance it has (or will have)."""
    task = find_ready_task(workflow, task_id)
    if task is None or task.parent is None or not hasattr(task.parent.task_spec, "task_spec"):
        return None
    parent = task.parent
    siblings = [str(c.id) for c in parent.children if c.task_spec.name == parent.task_spec.task_spec]
    sequential = type(parent.task_spec).__name__.startswith("Sequential")
    total = _instance_count(parent, len(siblings)) if sequential else len(siblings)
    return MultiInstanceGroup(str(parent.id), siblings, total, sequential)


def _instance_count(parent, created: int) -> int:
    data = parent.internal_data
    if "cardinality" in data:
        return int(data["cardinality"])
    return created + len(data.get("remaining", []))


def end_multi_instance_when_decided(workflow: BpmnWorkflow, task_id: str) -> None:
    """Make the multi-instance stop as soon as a child sets `countersign_done` (unless BPMN says otherwise)."""
    task = find_ready_task(workflow, task_id)
    if task is None or task.parent is None:
        return
    spec = task.parent.task_spec
    if getattr(spec, "condition", None) is None:
        spec.condition = f"{COUNTERSIGN_DONE} == True"


def completed_user_steps(workflow: BpmnWorkflow) -> list[tuple[str, str]]:
    """(task id, BPMN id) of completed manual tasks in completion order: the steps one may send a task back to."""
    finished = [t for t in workflow.get_tasks(state=TaskState.COMPLETED, manual=True) if t.task_spec.bpmn_id]
    return [(str(t.id), t.task_spec.bpmn_id) for t in sorted(finished, key=lambda t: t.last_state_change)]


@_deep_when_large
def send_back(workflow: BpmnWorkflow, element_id: str) -> str:
    """Resume the instance at the last completed run of `element_id`; what followed it runs again."""
    steps = [task_id for task_id, bpmn_id in completed_user_steps(workflow) if bpmn_id == element_id]
    if not steps:
        raise EngineError(f"'{element_id}' is not a completed step of this instance", element_id)
    with engine_errors():
        workflow.reset_from_task_id(UUID(steps[-1]))
        run_engine(workflow)
    return steps[-1]


def set_multi_instance_data(workflow: BpmnWorkflow, task_id: str, variables: Mapping[str, Any]) -> None:
    """Camunda multi-instance tasks collect only the output item, not the child's data: a countersign's result
    must be written on the multi-instance task itself for the steps after it to route on."""
    task = find_ready_task(workflow, task_id)
    if task is not None and task.parent is not None and hasattr(task.parent.task_spec, "task_spec"):
        task.parent.data.update(variables)


# --- rule tasks (records, rules and shipped processes) ------------------------------------------------------
# A serviceTask whose camunda:property `bpm.rule` names a stored json-logic rule is evaluated by the server
# inside the engine step: the result lands in `bpm.resultVariable` (default: the rule's name) and the process
# moves on in the same command. No delegate class, no script: the rule document is data an admin edits over
# the API. A serviceTask without `bpm.rule` behaves as before (it stays STARTED for the server to finish).

RULE_PROPERTY = "bpm.rule"
RESULT_PROPERTY = "bpm.resultVariable"

# (rule name, task data) -> (result, label such as "quote_routing v3", the variables the rule read)
RuleEvaluator = Callable[[str, dict[str, Any]], tuple[Any, str, dict[str, Any]]]
_rule_evaluator: RuleEvaluator | None = None


def set_rule_evaluator(evaluator: RuleEvaluator | None) -> None:
    """Installed once by the rule store service; the engine itself knows nothing about where rules live."""
    global _rule_evaluator
    _rule_evaluator = evaluator


from SpiffWorkflow.bpmn.serializer.default.task_spec import BpmnTaskSpecConverter  # noqa: E402
from SpiffWorkflow.bpmn.specs.defaults import ServiceTask  # noqa: E402
from SpiffWorkflow.camunda.parser.task_spec import CamundaTaskParser  # noqa: E402


class RuleServiceTask(ServiceTask):
    def _execute(self, task):
        name = (getattr(self, "extensions", None) or {}).get(RULE_PROPERTY)
        if not name:
            return None
        if _rule_evaluator is None:
            raise EngineError(f"rule '{name}' cannot be evaluated: no rule store is configured",
                              self.bpmn_id, self.bpmn_name)
        try:
            result, label, values = _rule_evaluator(name, dict(task.data))
        except EngineError:
            raise
        except Exception as error:  # noqa: BLE001 - any rule failure names the element, never a 500
            raise EngineError(f"rule '{name}' failed: {error}", self.bpmn_id, self.bpmn_name) from error
        variable = self.extensions.get(RESULT_PROPERTY) or name
        task.data[variable] = result
        engine = task.workflow.script_engine
        if hasattr(engine, "decisions"):
            engine.decisions.append(Decision(self.bpmn_id, self.bpmn_name, f"rule {label}", _jsonable(values),
                                             _jsonable(result)))
        return True


ServerParser.OVERRIDE_PARSER_CLASSES[full_tag("serviceTask")] = (CamundaTaskParser, RuleServiceTask)
for _serializer in (SPEC_SERIALIZER, INSTANCE_SERIALIZER):
    BpmnTaskSpecConverter(RuleServiceTask, _serializer.registry)
