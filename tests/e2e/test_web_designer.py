"""Browser tests of the designer pages: draw in the modeler, deploy, see validation errors on the element, and
follow an instance in the viewer with its decision panel; phone and desktop screenshots."""

from __future__ import annotations

import pytest
from conftest import FIXTURES
from webui_support import browser, deploy_file, live_server, open_page, screenshot  # noqa: F401

pytestmark = pytest.mark.browser

EXPENSE = FIXTURES / "bpmn" / "expense_approval.bpmn"


def _expect():
    from playwright.sync_api import expect

    return expect


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
    expect = _expect()
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


def test_server_validation_error_marks_the_element(open_page, live_server):  # noqa: F811
    expect = _expect()
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
    expect = _expect()
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
    expect = _expect()
    page = open_page("dora")
    page.goto(f"{live_server.url}/designer")
    expect(page.locator("[data-testid=definitions]")).to_be_visible()
    page.goto(f"{live_server.url}/designer/forms")
    expect(page.locator("[data-testid=form-editor] .fjs-editor-container")).to_be_visible()
    screenshot(page, "forms-1280")
    assert not page.errors


def test_modeler_runs_a_scenario_before_deploying(open_page, live_server):  # noqa: F811
    if not live_server.has_endpoint("post", "/api/v1/simulations"):
        pytest.skip("the simulation API is not in this server yet")
    expect = _expect()
    page = _open_modeler(open_page, live_server.url)
    page.click("#simulate")
    page.click("#scenario-dialog button[value=ok]")  # the offered scenario completes "review"
    expect(page.locator("[data-testid=simulation-outcome]")).to_contain_text("ran to its end")
    expect(page.locator("g.djs-element.done[data-element-id=review]")).to_have_count(1)


def test_instance_viewer_shows_waiting_timers(open_page, live_server):  # noqa: F811
    expect = _expect()
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
    _expect()(page.locator(".swagger-ui .info .title")).to_contain_text("BPM process server")
    context.close()


def test_designer_lists_versions_and_what_changed(open_page, live_server):  # noqa: F811
    expect = _expect()
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
