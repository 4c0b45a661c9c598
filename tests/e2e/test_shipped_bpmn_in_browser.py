"""The shipped BPMN files open in bpmn-js (the viewer our web UI uses) in Chromium: no import warnings, no
page errors, every element on the canvas."""

from __future__ import annotations

import re

import pytest
from conftest import REPO
from webui_support import VENDOR, browser  # noqa: F401

SHIPPED = ("quote_approval", "complaint_handling", "lead_follow_up", "dormant_customer")
IMPORT = """async (xml) => {
  document.getElementById('canvas').innerHTML = '';
  const viewer = new window.BpmnJS({container: '#canvas'});
  try {
    const result = await viewer.importXML(xml);
    const ids = viewer.get('elementRegistry').getAll().map((element) => element.id);
    return {warnings: result.warnings.map((w) => w.message), ids};
  } catch (error) { return {error: String(error)}; }
}"""


@pytest.fixture(scope="module")
def viewer_page(browser, tmp_path_factory):  # noqa: F811
    page_file = tmp_path_factory.mktemp("bpmnjs") / "viewer.html"
    page_file.write_text(
        f'<html><head><link rel="stylesheet" href="{(VENDOR / "bpmn-js/assets/bpmn-js.css").as_uri()}">'
        f'<script src="{(VENDOR / "bpmn-js/bpmn-navigated-viewer.js").as_uri()}"></script></head>'
        '<body><div id="canvas" style="width:1600px;height:700px"></div></body></html>')
    context = browser.new_context(viewport={"width": 1600, "height": 700})
    page = context.new_page()
    page.errors = []
    page.on("pageerror", lambda error: page.errors.append(str(error)))
    page.goto(page_file.as_uri())
    yield page
    context.close()


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_file_imports_cleanly_in_bpmn_js(viewer_page, name):
    xml = (REPO / "processes" / f"{name}.bpmn").read_text()
    result = viewer_page.evaluate(IMPORT, xml)
    assert "error" not in result, result
    assert result["warnings"] == []
    declared = set(re.findall(r'<bpmn:\w+ id="([^"]+)"', xml))
    flow_elements = {i for i in declared if not i.endswith("_def") and not i.startswith("msg_")}
    assert flow_elements <= set(result["ids"]), flow_elements - set(result["ids"])
    assert viewer_page.errors == []
