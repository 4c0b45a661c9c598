"""Browser tests of the designer pages: draw in the modeler, deploy, see validation errors on the element, and
follow an instance in the viewer with its decision panel; phone and desktop screenshots."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from conftest import FIXTURES
from webui_support import EXPENSE, browser, deploy_file, live_server, open_page, playwright_expect, screenshot  # noqa: F401

pytestmark = pytest.mark.browser


def _set(page, test_id: str, value: str) -> None:
    field = page.locator(f"[data-testid='{test_id}']")
    field.fill(value)
    field.press("Tab")


def _open_modeler(open_page, url):  # noqa: F811
    page = open_page("dora")
    page.goto(f"{url}/designer/modeler")
    page.wait_for_selector("[data-element-id=review]")
    return page


def test_designer_draws_configures_and_deploys_a_process(open_page, live_server):  # noqa: F811
    expect = playwright_expect()
    page = _open_modeler(open_page, live_server.url)
    box = page.locator("#canvas").bounding_box()
    page.click("#canvas", position={"x": box["width"] - 40, "y": box["height"] - 40})  # selects the process
    _set(page, "prop-process-id", "web_drawn")
    _set(page, "prop-process-name", "Drawn in the browser")
    page.click("[data-element-id=end]")
    page.click(".djs-context-pad [data-action='delete']")  # the end event and its flow go
    page.click("[data-element-id=review]")
    page.click(".djs-context-pad [data-action='append.append-task']")  # draw: a task after the review
    page.keyboard.press("Escape")  # leave the label editor the new task opens with
    page.click(".djs-context-pad [data-action='replace']")
    page.click(".djs-popup [data-id='replace-with-user-task']")
    _set(page, "prop-name", "Finance check")
    _set(page, "prop-candidateGroups", "finance")
    _set(page, "prop-dueDate", "P1D")
    _set(page, "prop-priority", "80")
    _set(page, "prop-bpm-remindBefore", "PT4H")
    new_task_id = page.locator("[data-testid='prop-id']").input_value()
    page.click(".djs-context-pad [data-action='append.end-event']")
    page.click("[data-testid=deploy]")
    expect(page.locator("[data-testid=deployed]")).to_contain_text("web_drawn")
    definition = live_server.api("GET", "/process-definitions/web_drawn", "dora").json()
    task = definition["model"]["user_tasks"][new_task_id]
    assert "finance" in str(task) and "PT4H" in str(task), task
    assert "camunda:candidateGroups=\"finance\"" in definition["bpmn_xml"]
    assert not page.errors


def _selected_id(page) -> str:
    return page.locator("[data-testid='prop-id']").input_value()


def _replace_with(page, option: str) -> None:
    page.click(".djs-context-pad [data-action='replace']")
    page.click(f".djs-popup [data-id='{option}']")


# where a user clicks to select a sequence flow: the middle of its line, in page coordinates
MIDDLE_OF_CONNECTION = """id => {
    const line = document.querySelector(`g.djs-connection[data-element-id="${id}"] > .djs-hit`);
    const point = line.getPointAtLength(line.getTotalLength() / 2);
    const m = line.getScreenCTM();
    return { x: point.x * m.a + point.y * m.c + m.e, y: point.x * m.b + point.y * m.d + m.f };
}"""


def test_drawn_process_is_deployed_started_and_explained_in_the_viewer(open_page, live_server):  # noqa: F811
    """Draw review -> gateway -> (large: a 2-hour timer, then a finance check | small: the end), deploy it,
    start it, and follow the instance: the gateway's expression, the value it read, the branch and the timer."""
    expect = playwright_expect()
    page = _open_modeler(open_page, live_server.url)
    box = page.locator("#canvas").bounding_box()
    page.click("#canvas", position={"x": box["width"] - 40, "y": box["height"] - 40})
    _set(page, "prop-process-id", "web_decision")
    _set(page, "prop-process-name", "Drawn with a decision")
    page.click("[data-element-id=end]")
    page.click(".djs-context-pad [data-action='delete']")
    page.click("[data-element-id=review]")
    page.click(".djs-context-pad [data-action='append.gateway']")
    gateway = _selected_id(page)
    _set(page, "prop-name", "Large amount?")
    page.click(".djs-context-pad [data-action='append.intermediate-event']")
    _replace_with(page, "replace-with-timer-intermediate-catch")
    timer = _selected_id(page)
    _set(page, "prop-name", "Cooling off")
    _set(page, "prop-timer-duration", "PT2H")
    page.click(".djs-context-pad [data-action='append.append-task']")
    page.keyboard.press("Escape")
    _replace_with(page, "replace-with-user-task")
    finance = _selected_id(page)
    _set(page, "prop-name", "Finance check")
    _set(page, "prop-candidateGroups", "finance")
    page.click(".djs-context-pad [data-action='append.end-event']")
    page.click(f"[data-element-id={gateway}]")
    page.click(".djs-context-pad [data-action='append.end-event']")
    small_end = _selected_id(page)
    flows = dict(page.evaluate("""gateway => window.bpmModeler.get("elementRegistry")
        .filter((e) => e.type === "bpmn:SequenceFlow" && e.source.id === gateway)
        .map((e) => [e.target.id, e.id])""", gateway))
    assert set(flows) == {timer, small_end}, flows
    for target, condition in ((timer, "${amount > 1000}"), (small_end, "${amount <= 1000}")):
        page.click("#canvas", position={"x": box["width"] - 40, "y": box["height"] - 40})  # nothing selected
        middle = page.evaluate(MIDDLE_OF_CONNECTION, flows[target])
        page.mouse.click(middle["x"], middle["y"])
        expect(page.locator("[data-testid='prop-id']")).to_have_value(flows[target])
        _set(page, "prop-condition", condition)
    page.click("[data-testid=deploy]")
    expect(page.locator("[data-testid=deployed]")).to_contain_text("web_decision")
    model = live_server.api("GET", "/process-definitions/web_decision", "dora").json()["model"]
    assert set(model["user_tasks"]) == {"review", finance}

    instance = live_server.start("web_decision", user="alice", business_key="DRAWN-1", amount=5000)
    [review] = instance["open_tasks"]
    assert live_server.api("POST", f"/tasks/{review['id']}/claim", "alice").status_code == 200
    done = live_server.api("POST", f"/tasks/{review['id']}/complete", "alice", json={"variables": {}})
    assert done.status_code == 200, done.text
    detail = live_server.api("GET", f"/process-instances/{instance['id']}", "dora").json()
    [waiting] = detail["timers"]
    assert waiting["element_id"] == timer and detail["open_tasks"] == []
    history = live_server.api("GET", f"/process-instances/{instance['id']}/history", "dora").json()
    [reached] = [row["at"] for row in history if row["event"] == "task.completed"]
    waited = datetime.fromisoformat(waiting["due_at"]) - datetime.fromisoformat(reached)
    assert timedelta(hours=2) - timedelta(minutes=1) < waited <= timedelta(hours=2), waited  # the drawn PT2H

    page.goto(f"{live_server.url}/instances/{instance['id']}")
    decision = page.locator("[data-testid=decision]")
    expect(decision).to_contain_text("Large amount?")
    taken = decision.locator(".taken")
    expect(taken).to_contain_text("${amount > 1000}")
    expect(taken).to_contain_text("amount = 5000")
    expect(taken).to_contain_text("Cooling off")
    shown_due = page.evaluate("due => BPM.formatTime(due)", waiting["due_at"])
    timers = page.locator("[data-testid=timers]")
    expect(timers).to_contain_text("Cooling off")
    expect(timers).to_contain_text(f"fires at {shown_due}")
    expect(page.locator(".djs-overlay .overlay-note", has_text=f"⏰ {shown_due}")).to_be_visible()
    expect(page.locator(f"g.djs-element.taken[data-element-id={flows[timer]}]")).to_have_count(1)
    expect(page.locator("g.djs-element.done[data-element-id=review]")).to_have_count(1)
    screenshot(page, "instance-drawn-1280")
    assert not page.errors


def test_server_validation_error_marks_the_element(open_page, live_server):  # noqa: F811
    expect = playwright_expect()
    page = _open_modeler(open_page, live_server.url)
    page.locator("[data-element-id=flow_2] .djs-hit").click(force=True)
    _set(page, "prop-condition", "__import__('os').system('true')")
    page.click("[data-testid=deploy]")
    problem = page.locator("[data-testid=problems] li[data-element-id=flow_2]")
    expect(problem).to_be_visible()
    expect(page.locator("g.djs-element.has-error[data-element-id=flow_2]")).to_have_count(1)
    problem.click()
    expect(page.locator("[data-testid='prop-id']")).to_have_value("flow_2")
    screenshot(page, "modeler-error-1280")


def _instance_through_the_gateway(live_server):  # noqa: F811
    deploy_file(live_server, EXPENSE)
    instance = live_server.start("expense_approval", user="alice", business_key="VIEW-1", amount=5000)
    [task] = instance["open_tasks"]
    assert live_server.api("POST", f"/tasks/{task['id']}/claim", "alice").status_code == 200
    done = live_server.api("POST", f"/tasks/{task['id']}/complete", "alice", json={"variables": {"approved": True}})
    assert done.status_code == 200, done.text
    return instance["id"]


@pytest.mark.parametrize("width", [375, 1280])
def test_instance_viewer_explains_the_decision(open_page, live_server, width):  # noqa: F811
    expect = playwright_expect()
    instance_id = _instance_through_the_gateway(live_server)
    page = open_page("dora", width=width)
    page.goto(f"{live_server.url}/instances/{instance_id}")
    decision = page.locator("[data-testid=decision]")
    expect(decision).to_contain_text("Over 1,000?")
    expect(decision.locator(".taken")).to_contain_text("amount = 5000")
    expect(decision.locator(".taken")).to_contain_text("${amount > 1000}")
    expect(decision.locator(".taken")).to_contain_text("Finance review")
    expect(page.locator("[data-testid=open-tasks]")).to_contain_text("Finance review")
    expect(page.locator("g.djs-element.current[data-element-id=finance_review]")).to_have_count(1)
    expect(page.locator("g.djs-element.done[data-element-id=lead_review]")).to_have_count(1)
    expect(page.locator("g.djs-element.taken[data-element-id=f_large]")).to_have_count(1)
    screenshot(page, f"instance-{width}")
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    page.goto(f"{live_server.url}/designer/modeler?key=expense_approval")
    page.wait_for_selector("[data-element-id=finance_review]")
    page.click("[data-element-id=finance_review]")
    expect(page.locator("[data-testid='prop-candidateGroups']")).to_have_value("finance")
    screenshot(page, f"modeler-{width}")
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    assert not page.errors


def test_form_editor_and_designer_pages_load(open_page, live_server):  # noqa: F811
    expect = playwright_expect()
    page = open_page("dora")
    page.goto(f"{live_server.url}/designer")
    expect(page.locator("[data-testid=definitions]")).to_be_visible()
    page.goto(f"{live_server.url}/designer/forms")
    expect(page.locator("[data-testid=form-editor] .fjs-editor-container")).to_be_visible()
    screenshot(page, "forms-1280")
    assert not page.errors


def test_form_editor_saves_a_form_and_shows_it_after_reload(open_page, live_server):  # noqa: F811
    expect = playwright_expect()
    page = open_page("dora")
    page.goto(f"{live_server.url}/designer/forms")
    page.select_option("#form-list", "quote_approve")
    expect(page.locator("[data-testid=form-source]")).to_contain_text("as shipped")
    expect(page.locator("#form-key")).to_have_value("quote_approve")
    field = page.locator("[data-testid=form-editor] .fjs-element[data-id=Field_13]")
    expect(field).to_contain_text("Opinion")
    field.click()
    page.click("[data-group-id=group-general] .bio-properties-panel-group-header")  # open "General"
    label = page.locator("#bio-properties-panel-label")
    label.click()
    page.keyboard.press("Control+A")
    page.keyboard.type("Sales manager's opinion")
    expect(field).to_contain_text("Sales manager's opinion")  # the editor applied the change
    page.click("[data-testid=save-form]")
    expect(page.locator("[data-testid=form-saved]")).to_contain_text("quote_approve")
    stored = live_server.api("GET", "/forms/quote_approve", "dora").json()
    assert stored["source"] == "saved" and "Sales manager's opinion" in str(stored["schema"])
    page.reload()
    expect(page.locator("[data-testid=form-source]")).to_contain_text("saved")
    expect(page.locator("[data-testid=form-editor] .fjs-element[data-id=Field_13]")).to_contain_text(
        "Sales manager's opinion")
    expect(page.locator("#form-list option[value=quote_approve]")).to_have_text("quote_approve *")
    screenshot(page, "forms-saved-1280")
    assert not page.errors


def test_form_editor_refuses_a_bad_key_and_saves_a_new_form(open_page, live_server):  # noqa: F811
    expect = playwright_expect()
    page = open_page("dora")
    page.goto(f"{live_server.url}/designer/forms")
    expect(page.locator("[data-testid=form-editor] .fjs-element[data-id]").first).to_be_visible()
    page.fill("#form-key", "my form!")
    page.click("[data-testid=save-form]")
    expect(page.locator("#problem [data-testid=problem]")).to_contain_text("a form key is")
    assert live_server.api("GET", "/forms/my%20form!", "dora").status_code == 404
    page.fill("#form-key", "leave_request")
    page.click("[data-testid=save-form]")
    expect(page.locator("[data-testid=form-saved]")).to_contain_text("leave_request")
    assert live_server.api("GET", "/forms/leave_request", "dora").json()["schema"]["components"][0]["key"] == "opinion"


def test_modeler_runs_a_scenario_before_deploying(open_page, live_server):  # noqa: F811
    if not live_server.has_endpoint("post", "/api/v1/simulations"):
        pytest.skip("the simulation API is not in this server yet")
    expect = playwright_expect()
    page = _open_modeler(open_page, live_server.url)
    page.click("#simulate")
    page.click("#scenario-dialog button[value=ok]")  # the offered scenario completes "review"
    expect(page.locator("[data-testid=simulation-outcome]")).to_contain_text("ran to its end")
    expect(page.locator("g.djs-element.done[data-element-id=review]")).to_have_count(1)


def test_instance_viewer_shows_waiting_timers(open_page, live_server):  # noqa: F811
    expect = playwright_expect()
    deploy_file(live_server, FIXTURES / "bpmn" / "timer_boundary.bpmn")
    instance = live_server.start("timer_boundary", user="alice", business_key="TIMER-1")
    assert {t["element_id"] for t in instance["timers"]} >= {"deadline"}
    page = open_page("dora")
    page.goto(f"{live_server.url}/instances/{instance['id']}")
    timers = page.locator("[data-testid=timers]")
    expect(timers).to_contain_text("2 hours")
    expect(timers).to_contain_text("fires at")
    expect(page.locator(".djs-overlay .overlay-note", has_text="⏰").first).to_be_visible()
    expect(page.locator("[data-testid=decisions]")).to_contain_text("No gateway decided yet")


def test_swagger_ui_is_served_from_the_npm_package(browser, live_server):  # noqa: F811
    context = browser.new_context()
    page = context.new_page()
    page.goto(f"{live_server.url}/api/docs")
    playwright_expect()(page.locator(".swagger-ui .info .title")).to_contain_text("BPM process server")
    context.close()


def test_designer_lists_versions_and_what_changed(open_page, live_server):  # noqa: F811
    expect = playwright_expect()
    deploy_file(live_server, FIXTURES / "bpmn" / "versioned_v1.bpmn")
    deploy_file(live_server, FIXTURES / "bpmn" / "versioned_v2.bpmn")
    page = open_page("dora")
    page.goto(f"{live_server.url}/designer")
    page.locator("[data-versions=versioned]").click()
    versions = page.locator("[data-testid=versions]")
    expect(versions).to_contain_text("v1")
    expect(versions).to_contain_text("Changes from v1 to v2")
    screenshot(page, "designer-1280")
    versions.get_by_role("link", name="v1").click()
    expect(page.locator("#title")).to_contain_text("v1")
