"""Hardened parsing and lint of uploaded BPMN XML.

Uploaded XML is hostile until proven otherwise: a DOCTYPE can declare external entities (reading
server files) or nested entities (billion laughs), so documents with a DOCTYPE are refused before
parsing and the parser never resolves or loads anything. SpiffWorkflow also silently accepts models
that cannot run as drawn: it drops sequence flows without an id (the instance "completes" right after
the start event), ignores dangling ``sourceRef`` values, unreachable tasks, missing end events and
signal events without a signal. ``lint`` reports those at deploy time as ``Problem`` objects that name
the rule, the element id, its type and its source line, so the modeller can fix the diagram.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass

from lxml import etree

BPMN_NS = "http://www.omg.org/spec/BPMN/20100524/MODEL"
CAMUNDA_NS = "http://camunda.org/schema/1.0/bpmn"
ACTIVITI_NS = "http://activiti.org/bpmn"
FLOWABLE_NS = "http://flowable.org/bpmn"
_VENDOR_PREFIXES = {CAMUNDA_NS: "camunda", ACTIVITI_NS: "activiti", FLOWABLE_NS: "flowable"}

DEFAULT_MAX_BYTES = 5_000_000


def _bpmn(local_name: str) -> str:
    return f"{{{BPMN_NS}}}{local_name}"


DEFINITIONS_TAG = _bpmn("definitions")

ACTIVITY_TYPES = frozenset({
    "task", "userTask", "manualTask", "serviceTask", "scriptTask", "sendTask", "receiveTask",
    "businessRuleTask", "callActivity", "subProcess", "transaction", "adHocSubProcess",
})
SUBPROCESS_TYPES = frozenset({"subProcess", "transaction", "adHocSubProcess"})
GATEWAY_TYPES = frozenset({
    "exclusiveGateway", "inclusiveGateway", "parallelGateway", "eventBasedGateway", "complexGateway",
})
EVENT_TYPES = frozenset({
    "startEvent", "endEvent", "intermediateCatchEvent", "intermediateThrowEvent", "boundaryEvent",
    "implicitThrowEvent",
})
FLOW_NODE_TYPES = ACTIVITY_TYPES | GATEWAY_TYPES | EVENT_TYPES
MESSAGE_CATCHERS = frozenset({"startEvent", "intermediateCatchEvent", "boundaryEvent"})


# --------------------------------------------------------------------------------------------------
# Problems


@dataclass(frozen=True)
class Problem:
    """One finding about an uploaded document; ``rule`` is a stable machine-readable name."""

    rule: str
    message: str
    element_id: str | None = None
    element_type: str | None = None
    line: int | None = None

    def to_dict(self) -> dict:
        return asdict(self)

    def summary(self) -> str:
        where = f" (line {self.line})" if self.line else ""
        return f"{self.message}{where}"


class BpmnRejected(Exception):
    """The document cannot be deployed; ``problems`` says why, element by element."""

    def __init__(self, problems: list[Problem]):
        self.problems = list(problems)
        super().__init__(self._summary())

    def _summary(self) -> str:
        if not self.problems:
            return "the BPMN document was rejected"
        more = len(self.problems) - 1
        suffix = f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""
        return f"{self.problems[0].summary()}{suffix}"


class PayloadTooLarge(BpmnRejected):
    """The upload exceeds the size limit; nothing was parsed."""


def _local_name(element) -> str:
    tag = element.tag
    if not isinstance(tag, str):  # comments and processing instructions
        return ""
    return etree.QName(tag).localname


def _problem(rule: str, message: str, element=None) -> Problem:
    if element is None:
        return Problem(rule, message)
    return Problem(rule, message, element.get("id"), _local_name(element), element.sourceline)


def _describe(element) -> str:
    """``userTask 'review' ("Review invoice")`` for messages."""
    text = f"{_local_name(element)} '{element.get('id')}'"
    name = " ".join((element.get("name") or "").split())
    return f'{text} ("{name}")' if name else text


# --------------------------------------------------------------------------------------------------
# Parsing

_DOCTYPE_RE = re.compile(rb"<!\s*(?:DOCTYPE|ENTITY)", re.IGNORECASE)
_DOCTYPE_MESSAGE = "DOCTYPE declarations are not allowed (entity expansion / external entities)"


def _secure_parser() -> etree.XMLParser:
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        remove_comments=False,
    )


def _find_doctype(data: bytes) -> int | None:
    """Line of a DOCTYPE/ENTITY declaration in the raw bytes (also in UTF-16/32 text), if any."""
    for candidate in (data, data.replace(b"\x00", b"") if b"\x00" in data else None):
        if candidate is None:
            continue
        match = _DOCTYPE_RE.search(candidate)
        if match is not None:
            return candidate.count(b"\n", 0, match.start()) + 1
    return None


def parse_secure(data: bytes, max_bytes: int = DEFAULT_MAX_BYTES) -> etree._ElementTree:
    """Parse uploaded BPMN without resolving entities, loading DTDs or touching the network.

    Raises PayloadTooLarge over ``max_bytes``; BpmnRejected with rule ``xml-doctype`` for any DOCTYPE
    (checked on the raw bytes before parsing and on the parsed document), ``xml-syntax`` for
    malformed XML (with lxml's line and message) and ``not-bpmn`` when the root is not
    ``bpmn:definitions``.
    """
    if isinstance(data, str):
        data = data.encode("utf-8")
    if len(data) > max_bytes:
        raise PayloadTooLarge([Problem("payload-too-large",
                                       f"the document is {len(data)} bytes; the limit is {max_bytes} bytes")])
    doctype_line = _find_doctype(data)
    if doctype_line is not None:
        raise BpmnRejected([Problem("xml-doctype", _DOCTYPE_MESSAGE, line=doctype_line)])
    if not data.strip():
        raise BpmnRejected([Problem("xml-syntax", "the document is empty", line=1)])
    try:
        root = etree.fromstring(data, _secure_parser())
    except etree.XMLSyntaxError as exc:
        line = exc.position[0] if exc.position else exc.lineno
        raise BpmnRejected([Problem("xml-syntax", f"malformed XML: {exc.msg}", line=line)]) from None
    tree = root.getroottree()
    if tree.docinfo.internalDTD is not None or tree.docinfo.doctype:
        raise BpmnRejected([Problem("xml-doctype", _DOCTYPE_MESSAGE, line=1)])
    if root.tag != DEFINITIONS_TAG:
        raise BpmnRejected([Problem(
            "not-bpmn",
            f"the root element is <{root.tag}>, not a BPMN 2.0 <definitions> element in namespace {BPMN_NS}",
            element_type=_local_name(root), line=root.sourceline,
        )])
    return tree


# --------------------------------------------------------------------------------------------------
# Document helpers


def _root(tree):
    return tree.getroot() if hasattr(tree, "getroot") else tree


def _processes(tree) -> list:
    return _root(tree).findall(_bpmn("process"))


def _is_executable(process) -> bool:
    return (process.get("isExecutable") or "true").strip().lower() != "false"


def executable_process_ids(tree) -> list[str]:
    """Ids of the processes to deploy: isExecutable="true" or the attribute absent (the BPMN default)."""
    return [p.get("id") for p in _processes(tree) if _is_executable(p) and p.get("id")]


def process_name(tree, pid: str) -> str:
    """The process's name, else the name of the pool (participant) showing it, else its id."""
    root = _root(tree)
    for process in _processes(root):
        if process.get("id") == pid:
            name = (process.get("name") or "").strip()
            if name:
                return name
            for participant in root.iter(_bpmn("participant")):
                if participant.get("processRef") == pid and (participant.get("name") or "").strip():
                    return participant.get("name").strip()
            return pid
    raise KeyError(f"no process with id '{pid}'")


def _children_of_type(element, local_names: Iterable[str]) -> list:
    wanted = {_bpmn(name) for name in local_names}
    return [child for child in element if child.tag in wanted]


def _flow_nodes(scope) -> list:
    return _children_of_type(scope, FLOW_NODE_TYPES)


def _sequence_flows(scope) -> list:
    return _children_of_type(scope, ["sequenceFlow"])


def _sub_scopes(scope) -> list:
    return _children_of_type(scope, SUBPROCESS_TYPES)


def _is_event_subprocess(element) -> bool:
    return (element.get("triggeredByEvent") or "").strip().lower() == "true"


def _is_compensation_handler(element) -> bool:
    return (element.get("isForCompensation") or "").strip().lower() == "true"


def _scopes(process) -> Iterator:
    """The process and every (event/ad-hoc/transaction) sub-process in it, outermost first."""
    pending = deque([process])
    while pending:
        scope = pending.popleft()
        yield scope
        pending.extend(_sub_scopes(scope))


def _event_definition(element, local_name: str):
    return element.find(_bpmn(local_name))


# --------------------------------------------------------------------------------------------------
# Lint rules


def _sequence_flow_problems(process) -> list[Problem]:
    problems = []
    all_node_ids = {node.get("id"): node for node in process.iter() if _local_name(node) in FLOW_NODE_TYPES}
    for scope in _scopes(process):
        node_ids = {node.get("id") for node in _flow_nodes(scope)}
        scope_text = _describe(scope)
        for flow in _sequence_flows(scope):
            source, target = flow.get("sourceRef"), flow.get("targetRef")
            if not flow.get("id"):
                problems.append(_problem(
                    "flow-missing-id",
                    f"sequenceFlow at line {flow.sourceline} from '{source}' to '{target}' has no id; "
                    "SpiffWorkflow silently drops flows without an id, so the process would stop there",
                    flow,
                ))
            missing = [name for name, value in (("sourceRef", source), ("targetRef", target)) if not value]
            if missing:
                problems.append(_problem(
                    "flow-missing-ref",
                    f"sequenceFlow '{flow.get('id')}' has no {' and no '.join(missing)}",
                    flow,
                ))
            for rule, attribute, ref in (("flow-dangling-source", "sourceRef", source),
                                         ("flow-dangling-target", "targetRef", target)):
                if ref and ref not in node_ids:
                    problems.append(_problem(rule, _dangling_message(flow, attribute, ref, scope_text,
                                                                     all_node_ids.get(ref)), flow))
    return problems


def _dangling_message(flow, attribute: str, ref: str, scope_text: str, elsewhere) -> str:
    flow_id = flow.get("id")
    flow_text = f"sequenceFlow '{flow_id}'" if flow_id else f"sequenceFlow at line {flow.sourceline}"
    message = f"{flow_text} has {attribute} '{ref}', which names no flow node in {scope_text}"
    if elsewhere is not None:
        message += (f" (it is a {_local_name(elsewhere)} in another scope: "
                    "flows cannot cross sub-process borders)")
    return message


def _start_end_problems(process) -> list[Problem]:
    problems = []
    if not _children_of_type(process, ["startEvent"]):
        problems.append(_problem("no-start-event", f"process '{process.get('id')}' has no start event",
                                 process))
    if not _children_of_type(process, ["endEvent"]):
        problems.append(_problem(
            "no-end-event",
            f"process '{process.get('id')}' has no end event, so an instance can never complete normally",
            process,
        ))
    for scope in _scopes(process):
        if scope is process or _local_name(scope) == "adHocSubProcess":
            continue
        starts = _children_of_type(scope, ["startEvent"])
        if _is_event_subprocess(scope):
            if not starts:
                problems.append(_problem("subprocess-start-event",
                                         f"event sub-process {_describe(scope)} has no start event", scope))
        elif len(starts) != 1:
            problems.append(_problem(
                "subprocess-start-event",
                f"{_describe(scope)} needs exactly one start event, found {len(starts)}",
                scope,
            ))
    return problems


def _link_name(event, kind: str) -> str | None:
    if _local_name(event) != kind:
        return None
    definition = _event_definition(event, "linkEventDefinition")
    return None if definition is None else (definition.get("name") or "").strip()


def _reachable_in_scope(scope) -> set[str]:
    """Ids of the scope's flow nodes reachable from its start events (and compensation handlers)."""
    nodes = {node.get("id"): node for node in _flow_nodes(scope) if node.get("id")}
    successors: dict[str, list[str]] = {}
    for flow in _sequence_flows(scope):
        source, target = flow.get("sourceRef"), flow.get("targetRef")
        if source in nodes and target in nodes:
            successors.setdefault(source, []).append(target)
    boundary_by_activity: dict[str, list[str]] = {}
    link_catch_by_name: dict[str, list[str]] = {}
    for node_id, node in nodes.items():
        if _local_name(node) == "boundaryEvent" and node.get("attachedToRef"):
            boundary_by_activity.setdefault(node.get("attachedToRef"), []).append(node_id)
        link = _link_name(node, "intermediateCatchEvent")
        if link:
            link_catch_by_name.setdefault(link, []).append(node_id)

    roots = [node_id for node_id, node in nodes.items()
             if _local_name(node) == "startEvent" or _is_compensation_handler(node)]
    reached, pending = set(roots), deque(roots)
    while pending:
        node_id = pending.popleft()
        following = list(successors.get(node_id, ()))
        following += boundary_by_activity.get(node_id, ())
        link = _link_name(nodes[node_id], "intermediateThrowEvent")
        if link:
            following += link_catch_by_name.get(link, ())
        for next_id in following:
            if next_id not in reached:
                reached.add(next_id)
                pending.append(next_id)
    return reached


def _unreachable_problems(process) -> list[Problem]:
    problems = []
    pending = deque([process])
    while pending:
        scope = pending.popleft()
        if _local_name(scope) == "adHocSubProcess" or not _children_of_type(scope, ["startEvent"]):
            continue  # ad-hoc activities need no flows; a missing start event is reported on its own
        reached = _reachable_in_scope(scope)
        for node in _flow_nodes(scope):
            node_type = _local_name(node)
            is_reached = node.get("id") in reached
            triggered_by_event = node_type in SUBPROCESS_TYPES and _is_event_subprocess(node)
            if is_reached or triggered_by_event:
                if node_type in SUBPROCESS_TYPES:
                    pending.append(node)
                continue
            if node_type == "boundaryEvent":
                continue  # reported through the activity it is attached to
            problems.append(_problem(
                "unreachable", f"{_describe(node)} cannot be reached from any start event", node,
            ))
    return problems


def _owner_event(definition):
    parent = definition.getparent()
    return parent if parent is not None else definition


def _reference_problems(process, signal_ids: set[str], message_ids: set[str]) -> list[Problem]:
    problems = []
    for definition in process.iter(_bpmn("signalEventDefinition")):
        event = _owner_event(definition)
        ref = (definition.get("signalRef") or "").strip()
        if not ref:
            problems.append(_problem(
                "signal-without-ref",
                f"{_describe(event)} has a signalEventDefinition without signalRef, so it can never "
                "throw or catch a signal",
                event,
            ))
        elif ref not in signal_ids:
            problems.append(_problem(
                "signal-unknown-ref", f"{_describe(event)} refers to signal '{ref}', which is not defined",
                event,
            ))
    for definition in process.iter(_bpmn("messageEventDefinition")):
        event = _owner_event(definition)
        problems.extend(_message_ref_problems(event, definition.get("messageRef"), message_ids,
                                              required=_local_name(event) in MESSAGE_CATCHERS))
    for task in process.iter(_bpmn("receiveTask"), _bpmn("sendTask")):
        if task.find(_bpmn("messageEventDefinition")) is None:
            problems.extend(_message_ref_problems(task, task.get("messageRef"), message_ids,
                                                  required=_local_name(task) == "receiveTask"))
    return problems


def _message_ref_problems(element, ref: str | None, message_ids: set[str], required: bool) -> list[Problem]:
    ref = (ref or "").strip()
    if not ref:
        if not required:
            return []
        return [_problem(
            "message-without-ref",
            f"{_describe(element)} waits for a message but has no messageRef, so no message can reach it",
            element,
        )]
    if ref not in message_ids:
        return [_problem("message-unknown-ref",
                         f"{_describe(element)} refers to message '{ref}', which is not defined", element)]
    return []


_DELEGATE_ATTRIBUTES = {
    "class": "calls the Java class {value!r}",
    "delegateExpression": "calls the Java delegate {value!r}",
    "expression": "evaluates the JUEL method expression {value!r}",
}
_TASK_TYPE_REASONS = {
    "external": "expects a Camunda external-task worker (topic {topic!r})",
    "shell": "runs an operating-system command, which is never allowed",
}


def _implementation_reasons(task) -> list[str]:
    reasons = []
    for namespace, prefix in _VENDOR_PREFIXES.items():
        task_type = task.get(f"{{{namespace}}}type")
        if task_type:
            template = _TASK_TYPE_REASONS.get(task_type, "is a vendor-specific task type")
            topic = task.get(f"{{{namespace}}}topic")
            reasons.append(f'{prefix}:type="{task_type}" ' + template.format(topic=topic))
        for attribute, template in _DELEGATE_ATTRIBUTES.items():
            value = task.get(f"{{{namespace}}}{attribute}")
            if value:
                reasons.append(f"{prefix}:{attribute} " + template.format(value=value))
    return reasons


def _unsupported_task_problems(process) -> list[Problem]:
    problems = []
    for task in process.iter(_bpmn("serviceTask"), _bpmn("sendTask")):
        reasons = _implementation_reasons(task)
        if reasons:
            problems.append(_problem(
                "unsupported-task-type",
                f"{_describe(task)} cannot run on this server: {'; '.join(reasons)}. Remove the "
                "implementation so the server completes the task, or model the work as a user task",
                task,
            ))
    return problems


def _defined_ids(root, local_name: str) -> set[str]:
    return {element.get("id") for element in root.iter(_bpmn(local_name)) if element.get("id")}


def lint(tree) -> list[Problem]:
    """Problems SpiffWorkflow would accept silently; empty for a sound model.

    Sequence flows are checked in every process; the other rules only in executable processes.
    Script tasks are not reported here (see ``script_tasks``): whether they are fatal is a setting.
    """
    root = _root(tree)
    signal_ids, message_ids = _defined_ids(root, "signal"), _defined_ids(root, "message")
    problems = []
    for process in _processes(root):
        problems.extend(_sequence_flow_problems(process))
        if not _is_executable(process):
            continue
        problems.extend(_start_end_problems(process))
        problems.extend(_unreachable_problems(process))
        problems.extend(_reference_problems(process, signal_ids, message_ids))
        problems.extend(_unsupported_task_problems(process))
    return problems


SCRIPT_TASK_MESSAGE = (
    "script tasks are disabled: set BPM_ALLOW_SCRIPTS=restricted to enable the restricted script mode"
)


def script_tasks(tree) -> list[Problem]:
    """One ``script-task`` problem per script task in an executable process."""
    return [
        _problem("script-task", SCRIPT_TASK_MESSAGE, task)
        for process in _processes(tree)
        if _is_executable(process)
        for task in process.iter(_bpmn("scriptTask"))
    ]
