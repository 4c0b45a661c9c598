// The web modeler: bpmn-js Modeler with a small properties panel for what the server reads on user tasks
// (camunda:* attributes and the bpm.* extension properties), sequence-flow conditions and the process itself;
// deploys through the API and marks the elements the server's validation names.
(function () {
  "use strict";
  const { api, el, text } = BPM;
  const page = document.getElementById("modeler-page");
  const problem = document.getElementById("problem");
  const problems = document.getElementById("problems");
  const props = document.getElementById("props");

  const NEW_DIAGRAM = `<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" xmlns:bpmndi="http://www.omg.org/spec/BPMN/20100524/DI"
  xmlns:dc="http://www.omg.org/spec/DD/20100524/DC" xmlns:di="http://www.omg.org/spec/DD/20100524/DI"
  xmlns:camunda="http://camunda.org/schema/1.0/bpmn" id="Definitions_new" targetNamespace="http://bpmn.io/schema/bpmn">
  <bpmn:process id="new_process" name="New process" isExecutable="true">
    <bpmn:startEvent id="start" name="Start"><bpmn:outgoing>flow_1</bpmn:outgoing></bpmn:startEvent>
    <bpmn:userTask id="review" name="Review" camunda:candidateGroups="team-leads">
      <bpmn:incoming>flow_1</bpmn:incoming><bpmn:outgoing>flow_2</bpmn:outgoing></bpmn:userTask>
    <bpmn:endEvent id="end" name="Done"><bpmn:incoming>flow_2</bpmn:incoming></bpmn:endEvent>
    <bpmn:sequenceFlow id="flow_1" sourceRef="start" targetRef="review"/>
    <bpmn:sequenceFlow id="flow_2" sourceRef="review" targetRef="end"/>
  </bpmn:process>
  <bpmndi:BPMNDiagram id="diagram"><bpmndi:BPMNPlane id="plane" bpmnElement="new_process">
    <bpmndi:BPMNShape id="start_di" bpmnElement="start"><dc:Bounds x="160" y="100" width="36" height="36"/></bpmndi:BPMNShape>
    <bpmndi:BPMNShape id="review_di" bpmnElement="review"><dc:Bounds x="250" y="78" width="100" height="80"/></bpmndi:BPMNShape>
    <bpmndi:BPMNShape id="end_di" bpmnElement="end"><dc:Bounds x="410" y="100" width="36" height="36"/></bpmndi:BPMNShape>
    <bpmndi:BPMNEdge id="flow_1_di" bpmnElement="flow_1"><di:waypoint x="196" y="118"/><di:waypoint x="250" y="118"/></bpmndi:BPMNEdge>
    <bpmndi:BPMNEdge id="flow_2_di" bpmnElement="flow_2"><di:waypoint x="350" y="118"/><di:waypoint x="410" y="118"/></bpmndi:BPMNEdge>
  </bpmndi:BPMNPlane></bpmndi:BPMNDiagram>
</bpmn:definitions>`;

  const TASK_ATTRIBUTES = [
    ["assignee", "${initiator}"], ["candidateGroups", "finance, directors"], ["candidateUsers", "alice, bob"],
    ["dueDate", "P2D"], ["priority", "50"], ["formKey", "approval_form"]];
  // camunda:properties the server reads on a user task (escalation policy, countersign mode, CC)
  const BPM_PROPERTIES = [
    ["bpm.remindBefore", "PT4H"], ["bpm.overdueNotify", "supervisor"], ["bpm.overdueRepeat", "PT1H"],
    ["bpm.overdueReassign", "group:directors"], ["bpm.timeoutAfter", "P3D"],
    ["bpm.timeoutAction", "approve | reject | complete"], ["bpm.countersign", "all | any | sequential | vote"],
    ["bpm.votePercent", "60"], ["bpm.voteCount", "2"], ["bpm.cc", "user:alice, group:finance"]];

  let modeler;
  let marked = [];

  async function createModeler() {
    const camunda = await (await fetch("/static/vendor/camunda-bpmn-moddle/camunda.json")).json();
    modeler = new window.BpmnJS({ container: document.getElementById("canvas"), moddleExtensions: { camunda } });
    window.bpmModeler = modeler;
    modeler.on("selection.changed", ({ newSelection }) => renderProps(newSelection[0]));
    modeler.on("element.changed", ({ element }) => {
      const selected = modeler.get("selection").get()[0];
      if (selected && selected.id === element.id && !props.contains(document.activeElement)) renderProps(selected);
    });
  }

  async function open(xml) {
    clearProblems();
    try {
      await modeler.importXML(xml);
      modeler.get("canvas").zoom("fit-viewport", "auto");
      renderProps(null);
    } catch (error) {
      BPM.showProblem(problem, error);
    }
  }

  // ---- properties panel ---------------------------------------------------------------------------------

  function field(label, value, onChange, placeholder, testId) {
    const id = `prop-${label.replace(/[^a-z0-9]/gi, "-")}`;
    const input = el("input", { id, value: value === undefined || value === null ? "" : String(value), placeholder,
                                "data-testid": testId || id });
    input.addEventListener("change", () => onChange(input.value.trim()));
    return el("div", {}, el("label", { for: id }, label), input);
  }

  function update(element, values) {
    modeler.get("modeling").updateProperties(element, values);
  }

  function bpmProperties(bo) {
    const container = (bo.extensionElements && bo.extensionElements.values || []).find((v) => v.$type === "camunda:Properties");
    const result = {};
    for (const p of (container && container.values) || []) result[p.name] = p.value;
    return result;
  }

  function setBpmProperty(element, name, value) {
    const moddle = modeler.get("moddle");
    const bo = element.businessObject;
    const current = bpmProperties(bo);
    if (value) current[name] = value; else delete current[name];
    const others = (bo.extensionElements && bo.extensionElements.values || []).filter((v) => v.$type !== "camunda:Properties");
    const values = Object.entries(current).map(([n, v]) => moddle.create("camunda:Property", { name: n, value: v }));
    const extension = moddle.create("bpmn:ExtensionElements", {
      values: values.length ? [...others, moddle.create("camunda:Properties", { values })] : others });
    update(element, { extensionElements: extension.values.length ? extension : undefined });
  }

  function renderProps(element) {
    props.innerHTML = "";
    if (!element) {
      const root = modeler.get("canvas").getRootElement();
      const bo = root && root.businessObject;
      if (bo && bo.$type === "bpmn:Process") {
        props.append(el("h2", {}, BPM.text("process_props")),
          field("Process key (id)", bo.id, (v) => v && update(root, { id: v }), "", "prop-process-id"),
          field("Name", bo.name, (v) => update(root, { name: v || undefined }), "", "prop-process-name"));
      }
      props.append(el("p", { class: "muted" }, text("no_selection")));
      return;
    }
    const bo = element.businessObject;
    props.append(el("h2", {}, `${bo.$type.replace("bpmn:", "")}`),
      field("Id", bo.id, (v) => v && update(element, { id: v }), "", "prop-id"),
      field("Name", bo.name, (v) => update(element, { name: v || undefined }), "", "prop-name"));
    if (bo.$type === "bpmn:UserTask") {
      for (const [name, placeholder] of TASK_ATTRIBUTES) {
        props.append(field(`camunda:${name}`, bo.get(`camunda:${name}`),
          (v) => update(element, { [`camunda:${name}`]: v || undefined }), placeholder, `prop-${name}`));
      }
      const current = bpmProperties(bo);
      for (const [name, placeholder] of BPM_PROPERTIES) {
        props.append(field(name, current[name], (v) => setBpmProperty(element, name, v), placeholder,
                           `prop-${name.replace(".", "-")}`));
      }
    }
    const timer = (bo.eventDefinitions || []).find((d) => d.$type === "bpmn:TimerEventDefinition");
    if (timer) {
      const duration = timer.timeDuration && timer.timeDuration.body;
      props.append(field("Timer duration (ISO 8601)", duration, (v) => {
        const value = v ? modeler.get("moddle").create("bpmn:FormalExpression", { body: v }) : undefined;
        modeler.get("modeling").updateModdleProperties(element, timer,
          { timeDuration: value, timeDate: undefined, timeCycle: undefined });
      }, "PT2H", "prop-timer-duration"));
    }
    if (bo.$type === "bpmn:SequenceFlow") {
      const expression = bo.conditionExpression && bo.conditionExpression.body;
      props.append(field("Condition", expression, (v) => {
        const value = v ? modeler.get("moddle").create("bpmn:FormalExpression", { body: v }) : undefined;
        update(element, { conditionExpression: value });
      }, "${amount > 1000}", "prop-condition"));
    }
  }

  // ---- deploy and validation problems -------------------------------------------------------------------

  function clearProblems() {
    const canvas = modeler.get("canvas");
    for (const id of marked) canvas.removeMarker(id, "has-error");
    modeler.get("overlays").remove({ type: "problem" });
    marked = [];
    problems.innerHTML = "";
    problem.innerHTML = "";
  }

  function showProblems(error) {
    const registry = modeler.get("elementRegistry");
    const canvas = modeler.get("canvas");
    const overlays = modeler.get("overlays");
    const items = (error.problem && error.problem.problems) || [];
    if (items.length) problem.append(el("p", { class: "muted" }, text("deploy_rejected")));
    else BPM.showProblem(problem, error);
    for (const item of items) {
      const id = item.element_id;
      const where = id ? `${id}${item.element_type ? " (" + item.element_type + ")" : ""}${item.line ? ", line " + item.line : ""}: ` : "";
      const entry = el("li", { class: "problem", "data-element-id": id || "" }, `${where}${item.message || ""}`);
      if (id && registry.get(id)) {
        canvas.addMarker(id, "has-error");
        marked.push(id);
        overlays.add(id, "problem", { position: { bottom: -6, left: 0 }, html: el("div", { class: "overlay-error" }, item.message || "") });
        entry.addEventListener("click", () => {
          modeler.get("selection").select(registry.get(id));
          canvas.scrollToElement(registry.get(id));
        });
      }
      problems.append(entry);
    }
  }

  async function deploy() {
    clearProblems();
    const { xml } = await modeler.saveXML({ format: true });
    try {
      const result = await api("POST", "/process-definitions", xml, { raw: true, contentType: "application/xml" });
      const deployed = (result.definitions || [])[0] || {};
      problem.append(el("div", { class: "notice", "data-testid": "deployed" },
        text("deployed", { key: deployed.key, version: deployed.version })));
    } catch (error) {
      showProblems(error);
    }
  }

  async function simulate() {
    const dialog = document.getElementById("scenario-dialog");
    dialog.onclose = async () => {
      if (dialog.returnValue !== "ok") return;
      let scenario;
      try { scenario = JSON.parse(document.getElementById("scenario").value); } catch (error) {
        BPM.toast(text("invalid_json"), "error");
        return;
      }
      const { xml } = await modeler.saveXML({ format: true });
      const card = document.getElementById("simulation-card");
      const out = document.getElementById("simulation");
      card.classList.remove("hidden");
      out.innerHTML = "";
      try {
        const result = await api("POST", "/simulations", { bpmn: xml, scenario });
        renderSimulation(out, result, BPM.elementNames(xml));
      } catch (error) {
        BPM.showProblem(out, error);
      }
    };
    dialog.showModal();
  }

  // The simulated run: outcome, the path marked on the diagram, each decision explained, SLA per task.
  function renderSimulation(out, result, names) {
    const canvas = modeler.get("canvas");
    const registry = modeler.get("elementRegistry");
    for (const element of registry.getAll()) canvas.removeMarker(element.id, "done");
    for (const id of result.path || []) if (registry.get(id)) canvas.addMarker(id, "done");
    out.append(el("p", { "data-testid": "simulation-outcome", class: result.ok ? "notice" : "problem" },
      result.ok ? text(result.completed ? "sim_completed" : "sim_waiting") : `${text("sim_failed")}: ${JSON.stringify(result.failure)}`));
    out.append(el("p", {}, `${text("sim_path")}: ${(result.path || []).map((id) => BPM.nameOf(names, id)).join(" → ")}`));
    for (const decision of result.decisions || []) {
      out.append(el("div", { class: "decision" }, el("strong", {}, decision.gateway_name || decision.gateway_id),
        BPM.decisionLines(decision, names)));
    }
    if ((result.tasks || []).length) {
      out.append(el("table", {}, el("tbody", {}, result.tasks.map((task) => el("tr", {},
        el("td", {}, task.name || task.element_id), el("td", {}, task.assignee || (task.candidate_groups || []).join(", ")),
        el("td", {}, task.due_at ? BPM.formatTime(task.due_at) : ""), el("td", {}, task.sla || ""))))));
    }
    const raw = el("details", {}, el("summary", {}, "JSON"), el("pre", { class: "json" }, JSON.stringify(result, null, 2)));
    out.append(raw);
  }

  function download() {
    modeler.saveXML({ format: true }).then(({ xml }) => {
      const root = modeler.get("canvas").getRootElement();
      const url = URL.createObjectURL(new Blob([xml], { type: "application/xml" }));
      const link = el("a", { href: url, download: `${(root.businessObject && root.businessObject.id) || "process"}.bpmn` });
      document.body.append(link);
      link.click();
      link.remove();
    });
  }

  document.getElementById("deploy").addEventListener("click", deploy);
  document.getElementById("simulate").addEventListener("click", simulate);
  document.getElementById("download").addEventListener("click", download);
  document.getElementById("open-file").addEventListener("change", async (event) => {
    const file = event.target.files[0];
    if (file) await open(await file.text());
  });

  (async function main() {
    await createModeler();
    const key = page.dataset.key;
    if (!key) return open(NEW_DIAGRAM);
    try {
      const version = page.dataset.version;
      const definition = await api("GET", `/process-definitions/${encodeURIComponent(key)}${version ? "/versions/" + version : ""}`);
      document.getElementById("title").textContent = `${definition.name || key} v${definition.version}`;
      await open(definition.bpmn_xml);
    } catch (error) {
      BPM.showProblem(problem, error);
      await open(NEW_DIAGRAM);
    }
  })();
})();
