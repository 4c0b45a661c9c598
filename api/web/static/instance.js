// The instance viewer: the diagram with the path taken, the current steps and timers, and a decision panel
// explaining every gateway from the history (expression, the values it read, the branch taken).
(function () {
  "use strict";
  const { api, el, text } = BPM;
  const instanceId = document.getElementById("instance-page").dataset.instanceId;
  const problem = document.getElementById("problem");

  function renderFacts(instance) {
    document.getElementById("instance-title").textContent =
      `${instance.process_key} v${instance.version}${instance.business_key ? " · " + instance.business_key : ""}`;
    const facts = document.getElementById("facts");
    facts.append(
      el("span", { class: `pill ${instance.status === "completed" ? "ok" : ""}`, "data-testid": "status" },
        text(`status_${instance.status}`)),
      el("span", {}, `${instance.started_by || ""} · ${BPM.formatTime(instance.started_at)}`),
      instance.ended_at ? el("span", {}, `→ ${BPM.formatTime(instance.ended_at)}`) : "",
      instance.incident ? el("span", { class: "pill overdue" }, instance.incident.message || JSON.stringify(instance.incident)) : "");
    document.getElementById("variables").textContent = JSON.stringify(instance.variables || {}, null, 2);
  }

  function renderOpenTasks(instance) {
    const list = document.getElementById("open-tasks");
    list.innerHTML = "";
    for (const task of instance.open_tasks || []) {
      list.append(el("li", {}, el("a", { href: `/tasks/${task.id}` }, task.name),
        ` · ${task.assignee || (task.candidate_groups || []).join(", ")}`,
        task.due_at ? el("span", { class: `pill ${BPM.isOverdue(task.due_at) ? "overdue" : ""}` }, ` ${text("due")} ${BPM.formatTime(task.due_at)}`) : ""));
    }
    if (!list.children.length) list.append(el("li", { class: "muted" }, text("no_open_tasks")));
  }

  function renderTimers(timers, names) {
    const list = document.getElementById("timers");
    list.innerHTML = "";
    for (const timer of timers) {
      list.append(el("li", {}, BPM.nameOf(names, timer.element_id), " · ",
        text("fires_at", { time: BPM.formatTime(timer.due_at) })));
    }
    if (!list.children.length) list.append(el("li", { class: "muted" }, text("no_timers")));
  }

  function renderDecisions(rows, names) {
    const panel = document.getElementById("decisions");
    panel.innerHTML = "";
    for (const row of rows.filter((r) => r.event === "gateway.decision")) {
      const data = row.data || {};
      panel.append(el("div", { class: "decision-card", "data-testid": "decision", style: "margin-bottom:.75rem" },
        el("strong", {}, row.element_name || BPM.nameOf(names, row.element_id)),
        el("span", { class: "muted" }, ` · ${BPM.formatTime(row.at)}${data.reason ? " · " + data.reason : ""}`),
        el("div", { class: "decision" }, BPM.decisionLines(data, names))));
    }
    if (!panel.children.length) panel.append(el("p", { class: "muted" }, text("no_decisions")));
  }

  (async function main() {
    let instance;
    try {
      instance = await api("GET", `/process-instances/${instanceId}`);
    } catch (error) {
      BPM.showProblem(problem, error);
      return;
    }
    renderFacts(instance);
    renderOpenTasks(instance);
    let names = {};
    let history = [];
    try {
      history = await api("GET", `/process-instances/${instanceId}/history`);
    } catch (error) {
      BPM.showProblem(problem, error);
    }
    try {
      const definition = await api("GET", `/process-definitions/${encodeURIComponent(instance.process_key)}/versions/${instance.version}`);
      names = BPM.elementNames(definition.bpmn_xml);
      const taken = history.filter((r) => r.event === "gateway.decision").flatMap((r) => (r.data || {}).taken || []);
      const viewer = await BPM.showDiagram(document.getElementById("diagram"), definition.bpmn_xml, {
        done: instance.path, taken, current: (instance.open_tasks || []).map((t) => t.element_id) });
      const overlays = viewer.get("overlays");
      const registry = viewer.get("elementRegistry");
      for (const task of instance.open_tasks || []) {
        if (!registry.get(task.element_id)) continue;
        overlays.add(task.element_id, { position: { bottom: -4, left: 0 },
          html: el("div", { class: "overlay-note" }, task.assignee || (task.candidate_groups || []).join(",")) });
      }
      for (const timer of instance.timers || []) {
        if (!registry.get(timer.element_id)) continue;
        overlays.add(timer.element_id, { position: { top: -18, left: -10 },
          html: el("div", { class: "overlay-note" }, `⏰ ${BPM.formatTime(timer.due_at)}`) });
      }
    } catch (error) {
      BPM.showProblem(document.getElementById("diagram"), error);
    }
    renderTimers(instance.timers || [], names);
    renderDecisions(history, names);
    const list = document.getElementById("history");
    for (const row of history) list.append(BPM.historyItem(row, names));
  })();
})();
