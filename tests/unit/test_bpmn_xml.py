"""Hardened BPMN parsing and the deploy-time lint rules."""

from __future__ import annotations

from pathlib import Path

import pytest
from lxml import etree

from bpm import bpmn_xml
from bpm.bpmn_xml import (
    BpmnRejected,
    PayloadTooLarge,
    Problem,
    executable_process_ids,
    lint,
    parse_secure,
    process_name,
    script_tasks,
)

CORPUS = Path(__file__).resolve().parents[3] / "shared" / "conformance" / "bpmn"
BPMN_NS = "http://www.omg.org/spec/BPMN/20100524/MODEL"


def document(process_body: str, definitions_extra: str = "", process_attributes: str = 'isExecutable="true"',
             namespaces: str = "") -> bytes:
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<definitions xmlns="{BPMN_NS}" {namespaces} id="defs" targetNamespace="test">\n'
        f"{definitions_extra}\n"
        f'<process id="p" name="Test process" {process_attributes}>\n{process_body}\n</process>\n'
        f"</definitions>\n"
    ).encode()


VALID_BODY = """
<startEvent id="start"/>
<sequenceFlow id="f1" sourceRef="start" targetRef="review"/>
<userTask id="review" name="Review"/>
<sequenceFlow id="f2" sourceRef="review" targetRef="end"/>
<endEvent id="end"/>
"""


def rules(problems: list[Problem]) -> list[str]:
    return [p.rule for p in problems]


def line_of(data: bytes, snippet: str) -> int:
    """1-based line of the first occurrence of ``snippet`` in ``data``."""
    return data[:data.index(snippet.encode())].count(b"\n") + 1


def lint_body(body: str, **kwargs) -> list[Problem]:
    return lint(parse_secure(document(body, **kwargs)))


def corpus_file(name: str) -> bytes:
    path = CORPUS / name
    if not path.is_file():
        pytest.skip(f"BPMN conformance corpus missing: {name} not found next to the repository "
                    "(expected shared/conformance/bpmn beside the checkout)")
    return path.read_bytes()


# --------------------------------------------------------------------------------------------------
# parse_secure


def test_valid_document_parses():
    tree = parse_secure(document(VALID_BODY))
    assert tree.getroot().tag == f"{{{BPMN_NS}}}definitions"
    assert lint(tree) == []


def test_payload_too_large_is_refused_before_parsing():
    data = document(VALID_BODY)
    with pytest.raises(PayloadTooLarge) as excinfo:
        parse_secure(data, max_bytes=len(data) - 1)
    assert isinstance(excinfo.value, BpmnRejected)
    assert excinfo.value.problems[0].rule == "payload-too-large"
    assert parse_secure(data, max_bytes=len(data)) is not None


def test_xxe_probe_from_the_corpus_is_rejected():
    with pytest.raises(BpmnRejected) as excinfo:
        parse_secure(corpus_file("spiff-arena--xml_with_entity-invoice.bpmn"))
    problem = excinfo.value.problems[0]
    assert problem.rule == "xml-doctype"
    assert problem.line == 2
    assert "DOCTYPE declarations are not allowed" in str(excinfo.value)


def test_external_entity_pointing_at_a_local_file_is_rejected(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET")
    data = (f'<?xml version="1.0"?>\n<!DOCTYPE d [<!ENTITY e SYSTEM "file://{secret}">]>\n'
            f'<definitions xmlns="{BPMN_NS}"><process id="p" name="&e;"/></definitions>').encode()
    with pytest.raises(BpmnRejected) as excinfo:
        parse_secure(data)
    assert excinfo.value.problems[0].rule == "xml-doctype"
    assert "TOP-SECRET" not in str(excinfo.value)


def test_the_parser_itself_never_resolves_entities(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET")
    data = f'<!DOCTYPE d [<!ENTITY e SYSTEM "file://{secret}">]><d>&e;</d>'.encode()
    root = etree.fromstring(data, bpmn_xml._secure_parser())
    assert b"TOP-SECRET" not in etree.tostring(root)


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<definitions xmlns="http://www.omg.org/spec/BPMN/20100524/MODEL"><process id="p" name="&lol9;"/></definitions>
"""


def test_billion_laughs_is_rejected_without_expansion():
    with pytest.raises(BpmnRejected) as excinfo:
        parse_secure(BILLION_LAUGHS)
    assert excinfo.value.problems[0].rule == "xml-doctype"
    assert excinfo.value.problems[0].line == 2
    assert "lollol" not in str(excinfo.value)


def test_the_parser_itself_does_not_expand_billion_laughs():
    try:
        root = etree.fromstring(BILLION_LAUGHS, bpmn_xml._secure_parser())
    except etree.XMLSyntaxError:
        return  # refusing is fine too
    assert len(etree.tostring(root)) < 10_000


def test_doctype_in_utf16_is_rejected():
    data = ('<?xml version="1.0" encoding="UTF-16"?>\n<!DOCTYPE d [<!ENTITY e "x">]>\n'
            f'<definitions xmlns="{BPMN_NS}"/>').encode("utf-16")
    with pytest.raises(BpmnRejected) as excinfo:
        parse_secure(data)
    assert excinfo.value.problems[0].rule == "xml-doctype"


def test_malformed_xml_reports_the_line():
    data = document(VALID_BODY).replace(b'<userTask id="review" name="Review"/>', b'<userTask id="review">')
    with pytest.raises(BpmnRejected) as excinfo:
        parse_secure(data)
    problem = excinfo.value.problems[0]
    assert problem.rule == "xml-syntax"
    assert problem.line == line_of(data, "</process>")  # where libxml2 detects the unclosed userTask
    assert "mismatch" in problem.message


def test_broken_corpus_file_reports_line_four():
    with pytest.raises(BpmnRejected) as excinfo:
        parse_secure(corpus_file("camunda-platform--TestWarDeploymentWithBrokenBpmnXml.testXmlInvalid.bpmn20.xml"))
    problem = excinfo.value.problems[0]
    assert (problem.rule, problem.line) == ("xml-syntax", 4)
    assert "startEvent_BROKEN" in problem.message


@pytest.mark.parametrize(
    "data",
    [
        b"<userInfo><firstName>John</firstName></userInfo>",
        b'<definitions xmlns="http://example.com/not-bpmn"/>',
        b"<definitions/>",
    ],
)
def test_non_bpmn_root_is_rejected(data):
    with pytest.raises(BpmnRejected) as excinfo:
        parse_secure(data)
    assert excinfo.value.problems[0].rule == "not-bpmn"


@pytest.mark.parametrize("data", [b"", b"   \n", b"not xml at all"])
def test_empty_or_garbage_is_a_syntax_error(data):
    with pytest.raises(BpmnRejected) as excinfo:
        parse_secure(data)
    assert excinfo.value.problems[0].rule == "xml-syntax"


def test_problem_to_dict_and_rejection_summary():
    first = Problem("flow-missing-id", "sequenceFlow at line 3 has no id", None, "sequenceFlow", 3)
    second = Problem("no-end-event", "process 'p' has no end event", "p", "process", 2)
    assert first.to_dict() == {"rule": "flow-missing-id", "message": "sequenceFlow at line 3 has no id",
                               "element_id": None, "element_type": "sequenceFlow", "line": 3}
    rejected = BpmnRejected([first, second])
    assert str(rejected) == "sequenceFlow at line 3 has no id (line 3) (and 1 more problem)"
    assert rejected.problems == [first, second]


# --------------------------------------------------------------------------------------------------
# Lint rules on minimal documents


def single(problems: list[Problem], rule: str) -> Problem:
    matching = [p for p in problems if p.rule == rule]
    assert len(matching) == 1, problems
    return matching[0]


def test_flow_missing_id():
    body = VALID_BODY.replace('<sequenceFlow id="f2" sourceRef="review" targetRef="end"/>',
                              '<sequenceFlow sourceRef="review" targetRef="end"/>')
    problems = lint_body(body)
    assert rules(problems) == ["flow-missing-id"]
    problem = problems[0]
    line = line_of(document(body), '<sequenceFlow sourceRef="review"')
    assert problem.element_type == "sequenceFlow"
    assert problem.element_id is None
    assert problem.line == line
    assert "from 'review' to 'end'" in problem.message and f"line {line}" in problem.message


def test_flow_dangling_source_and_target():
    body = VALID_BODY + """
<sequenceFlow id="ghost_out" sourceRef="nowhere" targetRef="end"/>
<sequenceFlow id="ghost_in" sourceRef="review" targetRef="missing_task"/>
"""
    problems = lint_body(body)
    data = document(body)
    source = single(problems, "flow-dangling-source")
    target = single(problems, "flow-dangling-target")
    assert (source.element_id, source.element_type) == ("ghost_out", "sequenceFlow")
    assert "'nowhere'" in source.message
    assert target.element_id == "ghost_in" and "'missing_task'" in target.message
    assert source.line == line_of(data, 'id="ghost_out"') and target.line == line_of(data, 'id="ghost_in"')


def test_flow_crossing_a_subprocess_border_is_dangling():
    body = """
<startEvent id="start"/>
<sequenceFlow id="f1" sourceRef="start" targetRef="sub"/>
<subProcess id="sub">
  <startEvent id="sub_start"/>
  <sequenceFlow id="s1" sourceRef="sub_start" targetRef="sub_end"/>
  <endEvent id="sub_end"/>
</subProcess>
<sequenceFlow id="f2" sourceRef="sub" targetRef="end"/>
<sequenceFlow id="f3" sourceRef="start" targetRef="sub_end"/>
<endEvent id="end"/>
"""
    problem = single(lint_body(body), "flow-dangling-target")
    assert problem.element_id == "f3"
    assert "another scope" in problem.message


def test_flow_missing_ref():
    body = VALID_BODY + '<sequenceFlow id="half" sourceRef="review"/>'
    problem = single(lint_body(body), "flow-missing-ref")
    assert problem.element_id == "half"
    assert "no targetRef" in problem.message


def test_no_start_event():
    body = """
<userTask id="review"/>
<sequenceFlow id="f" sourceRef="review" targetRef="end"/>
<endEvent id="end"/>
"""
    problems = lint_body(body)
    assert rules(problems) == ["no-start-event"]  # reachability is not reported on top of it
    assert (problems[0].element_id, problems[0].element_type) == ("p", "process")


def test_no_end_event():
    body = '<startEvent id="start"/><sequenceFlow id="f" sourceRef="start" targetRef="t"/><userTask id="t"/>'
    problem = single(lint_body(body), "no-end-event")
    assert problem.element_id == "p"


def test_terminate_end_event_counts_as_an_end_event():
    body = VALID_BODY.replace('<endEvent id="end"/>',
                              '<endEvent id="end"><terminateEventDefinition/></endEvent>')
    assert lint_body(body) == []


@pytest.mark.parametrize(
    ("sub_body", "found"),
    [
        ('<userTask id="inner"/>', 0),
        ('<startEvent id="a"/><startEvent id="b"/><sequenceFlow id="x" sourceRef="a" targetRef="e"/>'
         '<sequenceFlow id="y" sourceRef="b" targetRef="e"/><endEvent id="e"/>', 2),
    ],
)
def test_subprocess_needs_exactly_one_start_event(sub_body, found):
    body = f"""
<startEvent id="start"/>
<sequenceFlow id="f1" sourceRef="start" targetRef="sub"/>
<subProcess id="sub" name="Inner">{sub_body}</subProcess>
<sequenceFlow id="f2" sourceRef="sub" targetRef="end"/>
<endEvent id="end"/>
"""
    problem = single(lint_body(body), "subprocess-start-event")
    assert (problem.element_id, problem.element_type) == ("sub", "subProcess")
    assert f"found {found}" in problem.message


def test_event_subprocess_needs_a_start_event():
    body = VALID_BODY + '<subProcess id="handler" triggeredByEvent="true"><userTask id="h"/></subProcess>'
    problem = single(lint_body(body), "subprocess-start-event")
    assert problem.element_id == "handler"


def test_unreachable_task():
    body = VALID_BODY + '<userTask id="orphan" name="Forgotten"/>'
    problem = single(lint_body(body), "unreachable")
    assert (problem.element_id, problem.element_type) == ("orphan", "userTask")
    assert problem.line == line_of(document(body), 'id="orphan"')
    assert '"Forgotten"' in problem.message


def test_unreachable_reports_a_whole_chain_but_not_boundary_events():
    body = VALID_BODY + """
<userTask id="dead1"/>
<boundaryEvent id="dead_timer" attachedToRef="dead1"><timerEventDefinition/></boundaryEvent>
<sequenceFlow id="d1" sourceRef="dead1" targetRef="dead2"/>
<exclusiveGateway id="dead2"/>
"""
    problems = lint_body(body)
    assert sorted(p.element_id for p in problems if p.rule == "unreachable") == ["dead1", "dead2"]


def test_reachability_follows_boundary_events_links_and_subprocess_scopes():
    body = """
<startEvent id="start"/>
<sequenceFlow id="f1" sourceRef="start" targetRef="work"/>
<userTask id="work"/>
<boundaryEvent id="late" attachedToRef="work" cancelActivity="false">
  <timerEventDefinition><timeDuration>"PT1H"</timeDuration></timerEventDefinition>
</boundaryEvent>
<sequenceFlow id="f2" sourceRef="late" targetRef="remind"/>
<userTask id="remind"/>
<sequenceFlow id="f3" sourceRef="remind" targetRef="remind_end"/>
<endEvent id="remind_end"/>
<sequenceFlow id="f4" sourceRef="work" targetRef="jump"/>
<intermediateThrowEvent id="jump"><linkEventDefinition name="toSub"/></intermediateThrowEvent>
<intermediateCatchEvent id="land"><linkEventDefinition name="toSub"/></intermediateCatchEvent>
<sequenceFlow id="f5" sourceRef="land" targetRef="sub"/>
<subProcess id="sub">
  <startEvent id="sub_start"/>
  <sequenceFlow id="s1" sourceRef="sub_start" targetRef="inner"/>
  <userTask id="inner"/>
  <sequenceFlow id="s2" sourceRef="inner" targetRef="sub_end"/>
  <endEvent id="sub_end"/>
</subProcess>
<sequenceFlow id="f6" sourceRef="sub" targetRef="end"/>
<endEvent id="end"/>
<subProcess id="on_cancel" triggeredByEvent="true">
  <startEvent id="cancel_start"><signalEventDefinition signalRef="cancel"/></startEvent>
  <sequenceFlow id="c1" sourceRef="cancel_start" targetRef="cancel_end"/>
  <endEvent id="cancel_end"/>
</subProcess>
<serviceTask id="undo" isForCompensation="true"/>
"""
    assert lint_body(body, definitions_extra='<signal id="cancel" name="Cancel"/>') == []


def test_unreachable_inside_a_subprocess():
    body = """
<startEvent id="start"/>
<sequenceFlow id="f1" sourceRef="start" targetRef="sub"/>
<subProcess id="sub">
  <startEvent id="sub_start"/>
  <sequenceFlow id="s1" sourceRef="sub_start" targetRef="sub_end"/>
  <endEvent id="sub_end"/>
  <userTask id="stranded"/>
</subProcess>
<sequenceFlow id="f2" sourceRef="sub" targetRef="end"/>
<endEvent id="end"/>
"""
    assert single(lint_body(body), "unreachable").element_id == "stranded"


SIGNAL_CATCH = """
<startEvent id="start"/>
<sequenceFlow id="f1" sourceRef="start" targetRef="wait"/>
<intermediateCatchEvent id="wait" name="Wait">{definition}</intermediateCatchEvent>
<sequenceFlow id="f2" sourceRef="wait" targetRef="end"/>
<endEvent id="end"/>
"""


def test_signal_without_ref():
    body = SIGNAL_CATCH.format(definition="<signalEventDefinition/>")
    problem = single(lint_body(body), "signal-without-ref")
    assert (problem.element_id, problem.element_type) == ("wait", "intermediateCatchEvent")
    assert problem.line == line_of(document(body), 'id="wait"')


def test_signal_unknown_ref():
    body = SIGNAL_CATCH.format(definition='<signalEventDefinition signalRef="nope"/>')
    problems = lint_body(body, definitions_extra='<signal id="alert" name="Alert"/>')
    problem = single(problems, "signal-unknown-ref")
    assert "'nope'" in problem.message


def test_signal_with_known_ref_is_fine():
    body = SIGNAL_CATCH.format(definition='<signalEventDefinition signalRef="alert"/>')
    assert lint_body(body, definitions_extra='<signal id="alert" name="Alert"/>') == []


def test_message_without_ref_on_a_catch_event():
    body = SIGNAL_CATCH.format(definition="<messageEventDefinition/>")
    problem = single(lint_body(body), "message-without-ref")
    assert problem.element_id == "wait"


def test_message_throw_without_ref_is_fine():
    body = VALID_BODY.replace('<endEvent id="end"/>',
                              '<endEvent id="end"><messageEventDefinition/></endEvent>')
    assert lint_body(body) == []


def test_receive_task_without_message_ref():
    body = VALID_BODY.replace('<userTask id="review" name="Review"/>', '<receiveTask id="review"/>')
    problem = single(lint_body(body), "message-without-ref")
    assert (problem.element_id, problem.element_type) == ("review", "receiveTask")


def test_message_unknown_ref():
    body = VALID_BODY.replace('<userTask id="review" name="Review"/>',
                              '<receiveTask id="review" messageRef="ghost"/>')
    problem = single(lint_body(body, definitions_extra='<message id="order" name="Order"/>'),
                     "message-unknown-ref")
    assert "'ghost'" in problem.message


def test_message_with_known_ref_is_fine():
    body = SIGNAL_CATCH.format(definition='<messageEventDefinition messageRef="order"/>')
    assert lint_body(body, definitions_extra='<message id="order" name="Order"/>') == []


CAMUNDA = 'xmlns:camunda="http://camunda.org/schema/1.0/bpmn"'
ACTIVITI = 'xmlns:activiti="http://activiti.org/bpmn"'


@pytest.mark.parametrize(
    ("attributes", "reason"),
    [
        ('camunda:type="external" camunda:topic="invoice"', "external-task worker (topic 'invoice')"),
        ('activiti:type="shell"', "operating-system command"),
        ('camunda:class="org.example.Archive"', "Java class 'org.example.Archive'"),
        ('camunda:delegateExpression="${archiver}"', "Java delegate '${archiver}'"),
        ('camunda:expression="${bean.run(execution)}"', "JUEL method expression"),
        ('activiti:class="org.example.Archive"', "activiti:class"),
        ('activiti:expression="${x}"', "activiti:expression"),
        ('activiti:delegateExpression="${x}"', "activiti:delegateExpression"),
    ],
)
def test_unsupported_task_type(attributes, reason):
    body = VALID_BODY.replace('<userTask id="review" name="Review"/>',
                              f'<serviceTask id="review" name="Archive" {attributes}/>')
    problem = single(lint_body(body, namespaces=f"{CAMUNDA} {ACTIVITI}"), "unsupported-task-type")
    assert (problem.element_id, problem.element_type) == ("review", "serviceTask")
    assert "cannot run on this server" in problem.message
    assert reason in problem.message


def test_plain_service_task_is_fine():
    body = VALID_BODY.replace('<userTask id="review" name="Review"/>', '<serviceTask id="review"/>')
    assert lint_body(body) == []


def test_script_tasks_are_reported_separately():
    body = VALID_BODY.replace('<userTask id="review" name="Review"/>',
                              '<scriptTask id="review"><script>x = 1</script></scriptTask>')
    tree = parse_secure(document(body))
    assert lint(tree) == []
    problems = script_tasks(tree)
    assert rules(problems) == ["script-task"]
    assert problems[0].message == ("script tasks are disabled: set BPM_ALLOW_SCRIPTS=restricted to enable "
                                   "the restricted script mode")
    assert (problems[0].element_id, problems[0].element_type) == ("review", "scriptTask")
    assert problems[0].line == line_of(document(body), "<scriptTask")


def test_non_executable_process_gets_only_sequence_flow_checks():
    body = '<userTask id="t"/><sequenceFlow sourceRef="t" targetRef="gone"/><scriptTask id="s"/>'
    tree = parse_secure(document(body, process_attributes='isExecutable="false"'))
    assert sorted(rules(lint(tree))) == ["flow-dangling-target", "flow-missing-id"]
    assert script_tasks(tree) == []
    assert executable_process_ids(tree) == []


def test_executable_process_ids_and_names():
    data = f"""<definitions xmlns="{BPMN_NS}">
  <collaboration id="c">
    <participant id="pool" name="Sales pool" processRef="pooled"/>
  </collaboration>
  <process id="named" name="Quote approval" isExecutable="true"/>
  <process id="pooled"/>
  <process id="bare" isExecutable="TRUE"/>
  <process id="model_only" isExecutable="false"/>
</definitions>""".encode()
    tree = parse_secure(data)
    assert executable_process_ids(tree) == ["named", "pooled", "bare"]
    assert process_name(tree, "named") == "Quote approval"
    assert process_name(tree, "pooled") == "Sales pool"
    assert process_name(tree, "bare") == "bare"
    with pytest.raises(KeyError):
        process_name(tree, "unknown")


# --------------------------------------------------------------------------------------------------
# Conformance corpus


@pytest.mark.parametrize(
    ("name", "expected_rules"),
    [
        ("camunda-platform--EventBasedGatewayTest.testCatchSignalAndMessageAndTimer.bpmn20.xml",
         {"flow-missing-id"}),
        ("camunda-platform--InvalidProcessWithSignalNoRef.bpmn20.xml",
         {"flow-missing-id", "signal-without-ref"}),
        ("spiffworkflow--No-Start-Event.bpmn20.xml", {"no-start-event", "message-without-ref"}),
        ("flowable--ShellTaskTest.testEchoShellLinux.bpmn20.xml",
         {"flow-missing-id", "unsupported-task-type"}),
    ],
)
def test_corpus_files_with_known_defects(name, expected_rules):
    problems = lint(parse_secure(corpus_file(name)))
    assert set(rules(problems)) == expected_rules
    assert all(p.line for p in problems)


def test_corpus_flows_without_id_are_all_reported():
    problems = lint(parse_secure(corpus_file(
        "camunda-platform--EventBasedGatewayTest.testCatchSignalAndMessageAndTimer.bpmn20.xml")))
    assert len(problems) == 10
    assert problems[0].line == 12 and "from 'timerEvent' to 'task1'" in problems[0].message


def test_corpus_shell_task_names_the_element():
    problems = lint(parse_secure(corpus_file("flowable--ShellTaskTest.testEchoShellLinux.bpmn20.xml")))
    shell = single(problems, "unsupported-task-type")
    assert (shell.element_id, shell.element_type, shell.line) == ("shellEcho", "serviceTask", 10)
    assert 'activiti:type="shell"' in shell.message


@pytest.mark.parametrize(
    "name",
    [
        "camunda-examples--invoiceApproval.bpmn",
        "camunda-platform--reviewInvoice.bpmn",
        "camunda-examples--message_start_process.bpmn",
        "spiffworkflow--inclusive_gateway.bpmn",
    ],
)
def test_sound_corpus_files_lint_clean(name):
    tree = parse_secure(corpus_file(name))
    assert lint(tree) == []
    assert executable_process_ids(tree)


def test_script_tasks_in_the_corpus():
    tree = parse_secure(corpus_file("spiffworkflow--inclusive_gateway.bpmn"))
    assert sorted(p.element_id for p in script_tasks(tree)) == ["increment_v", "u_plus_v", "w_plus_v"]
