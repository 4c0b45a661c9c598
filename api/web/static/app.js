// Shared helpers of the web UI: the API client (the user's token from the login cookie), problem+json errors,
// translated texts handed over by the page, small DOM and formatting helpers, and the decision explanations.
(function () {
  "use strict";
  const BPM = window.BPM;

  function token() {
    const match = document.cookie.match(/(?:^|;\s*)bpm_token=([^;]*)/);
    return match ? decodeURIComponent(match[1]) : "";
  }

  BPM.text = function (key, values) {
    let text = (BPM.t && BPM.t[key]) || key;
    for (const [name, value] of Object.entries(values || {})) text = text.replace(`{${name}}`, value);
    return text;
  };

  class ApiError extends Error {
    constructor(status, problem) {
      super(problem.detail || problem.title || `HTTP ${status}`);
      this.status = status;
      this.problem = problem;
    }
  }
  BPM.ApiError = ApiError;

  // Call the REST API; resolves to parsed JSON (or null), rejects with ApiError carrying the problem+json.
  BPM.api = async function (method, path, body, options) {
    const headers = { Authorization: `Bearer ${token()}`, Accept: "application/json" };
    let payload = body;
    if (body !== undefined && !(body instanceof FormData) && !(options && options.raw)) {
      headers["Content-Type"] = "application/json";
      payload = JSON.stringify(body);
    }
    if (options && options.contentType) headers["Content-Type"] = options.contentType;
    let response;
    try {
      response = await fetch(`/api/v1${path}`, { method, headers, body: payload });
    } catch (error) {
      throw new ApiError(0, { detail: BPM.text("network_error") });
    }
    if (response.status === 401 && !(options && options.noRedirect)) {
      window.location = `/login?next=${encodeURIComponent(location.pathname + location.search)}`;
    }
    if (options && options.blob && response.ok) return response.blob();
    const text = await response.text();
    let data = null;
    try { data = text ? JSON.parse(text) : null; } catch (error) { data = { detail: text.slice(0, 300) }; }
    if (!response.ok) throw new ApiError(response.status, data || {});
    return data;
  };

  // A readable message from an ApiError: detail plus field errors and BPMN problems.
  BPM.describeError = function (error) {
    if (!(error instanceof ApiError)) return String(error && error.message || error);
    const problem = error.problem || {};
    const lines = [problem.detail || problem.title || `HTTP ${error.status}`];
    for (const [field, messages] of Object.entries(problem.errors || {})) {
      lines.push(`${field}: ${flatten(messages).join("; ")}`);
    }
    for (const item of problem.problems || []) {
      lines.push(`${item.element_id ? item.element_id + ": " : ""}${item.message || JSON.stringify(item)}`);
    }
    if (error.status === 404 || error.status === 405) lines.push(BPM.text("not_available"));
    return lines.join("\n");
  };

  function flatten(value) {
    if (Array.isArray(value)) return value.flatMap(flatten);
    if (value && typeof value === "object") return Object.entries(value).flatMap(([k, v]) => flatten(v).map((m) => `${k}: ${m}`));
    return [String(value)];
  }

  BPM.showProblem = function (container, error) {
    container.innerHTML = "";
    const box = BPM.el("div", { class: "problem", role: "alert", "data-testid": "problem" }, BPM.describeError(error));
    container.append(box);
    return box;
  };

  BPM.toast = function (message, kind) {
    const toast = document.getElementById("toast");
    toast.innerHTML = "";
    toast.append(BPM.el("div", { class: kind === "error" ? "problem" : "notice" }, message));
    clearTimeout(BPM._toastTimer);
    BPM._toastTimer = setTimeout(() => { toast.innerHTML = ""; }, kind === "error" ? 8000 : 3000);
  };

  // el("a", {href: "/x", class: "c"}, "text", child, ...): text is always set as text, never as HTML.
  BPM.el = function (tag, attributes, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attributes || {})) {
      if (value === undefined || value === null || value === false) continue;
      if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
      else node.setAttribute(name, value === true ? "" : value);
    }
    for (const child of children.flat(Infinity)) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  };

  BPM.formatTime = function (iso) {
    if (!iso) return "";
    const date = new Date(iso);
    const thisYear = date.getFullYear() === new Date().getFullYear();
    return date.toLocaleString(BPM.lang === "zh" ? "zh-CN" : "en-GB",
      { year: thisYear ? undefined : "numeric", month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" });
  };

  BPM.isOverdue = (iso) => Boolean(iso) && new Date(iso) < new Date();

  BPM.formatValue = function (value) {
    if (typeof value === "string") return JSON.stringify(value);
    return JSON.stringify(value);
  };

  // ---- explaining what happened in an instance -------------------------------------------------------------

  // id -> name of every BPMN element, read from the XML (names are shown as the designer wrote them).
  BPM.elementNames = function (xml) {
    const names = {};
    if (!xml) return names;
    const doc = new DOMParser().parseFromString(xml, "application/xml");
    for (const node of doc.getElementsByTagName("*")) {
      const id = node.getAttribute("id");
      if (!id) continue;
      names[id] = { name: node.getAttribute("name") || "", target: node.getAttribute("targetRef") };
      const condition = [...node.children].find((child) => child.localName === "conditionExpression");
      if (condition) names[id].condition = condition.textContent.trim();
    }
    return names;
  };

  BPM.nameOf = (names, id) => (id && names[id] && names[id].name) || id || "";

  // One line per evaluated condition: "amount = 600000 → ${amount > 500000} true → Technical director".
  BPM.decisionLines = function (data, names) {
    const taken = new Set(data.taken || []);
    const lines = (data.evaluations || []).map((evaluation) => {
      const values = Object.entries(evaluation.values || {}).map(([k, v]) => `${k} = ${BPM.formatValue(v)}`).join(", ");
      const targetId = evaluation.target || (names[evaluation.flow_id] && names[evaluation.flow_id].target);
      const target = BPM.nameOf(names, targetId) || BPM.nameOf(names, evaluation.flow_id);
      const chosen = taken.has(evaluation.flow_id);
      return BPM.el("div", { class: chosen ? "taken" : "not-taken", "data-testid": "decision-line" },
        values ? `${values} → ` : "", BPM.el("code", {}, (names[evaluation.flow_id] && names[evaluation.flow_id].condition) || evaluation.expression || ""),
        ` ${evaluation.result ? BPM.text("true") : BPM.text("false")}`,
        target ? ` → ${target}` : "", chosen ? ` ✓ ${BPM.text("taken")}` : "");
    });
    for (const flowId of taken) {
      if ((data.evaluations || []).some((e) => e.flow_id === flowId)) continue;
      const targetId = names[flowId] && names[flowId].target;
      lines.push(BPM.el("div", { class: "taken", "data-testid": "decision-line" },
        `${BPM.text("default_flow")} → ${BPM.nameOf(names, targetId) || flowId} ✓ ${BPM.text("taken")}`));
    }
    return lines;
  };

  const EVENT_KEYS = {
    "instance.started": "ev_instance_started", "instance.completed": "ev_instance_completed",
    "instance.cancelled": "ev_instance_cancelled", "task.created": "ev_task_created",
    "task.claimed": "ev_task_claimed", "task.unclaimed": "ev_task_unclaimed", "task.completed": "ev_task_completed",
    "task.cancelled": "ev_task_cancelled", "gateway.decision": "ev_gateway_decision",
    "task.approved": "ev_task_approved", "task.rejected": "ev_task_rejected", "task.signed": "ev_task_signed",
    "task.signers_added": "ev_task_signers_added", "task.signer_removed": "ev_task_signer_removed",
    "task.assigned": "ev_task_assigned", "task.delegated": "ev_task_delegated", "task.resolved": "ev_task_resolved",
    "task.transferred": "ev_task_transferred", "task.sent_back": "ev_task_sent_back", "task.reopened": "ev_task_reopened",
    "task.urged": "ev_task_urged", "task.cc": "ev_task_cc", "task.commented": "ev_task_commented",
    "task.attachment_added": "ev_task_attachment_added", "task.substituted": "ev_task_substituted",
    "instance.withdrawn": "ev_instance_withdrawn", "timer.fired": "ev_timer_fired",
    "message.received": "ev_message_received", "instance.migrated": "ev_instance_migrated",
  };

  BPM.historyItem = function (row, names) {
    const what = EVENT_KEYS[row.event] ? BPM.text(EVENT_KEYS[row.event]) : row.event;
    const element = row.element_name || BPM.nameOf(names, row.element_id);
    const data = row.data || {};
    const details = [];
    for (const key of ["opinion", "reason", "comment", "to", "assignee", "users", "outcome"]) {
      if (data[key] !== undefined && data[key] !== null && data[key] !== "") {
        details.push(BPM.el("div", { class: "muted" }, `${BPM.text("field_" + key)}: ${typeof data[key] === "string" ? data[key] : JSON.stringify(data[key])}`));
      }
    }
    const item = BPM.el("li", { "data-event": row.event },
      BPM.el("div", {}, BPM.el("strong", {}, row.actor || BPM.text("system")), " · ", what,
        element ? ` · ${element}` : ""),
      BPM.el("div", { class: "when" }, BPM.formatTime(row.at)), details);
    if (row.event === "gateway.decision") {
      item.append(BPM.el("div", { class: "decision" }, BPM.decisionLines(data, names)));
    }
    return item;
  };

  // Load a vendor script or stylesheet once, on demand (the form renderer is only needed for tasks with forms).
  const loading = {};
  BPM.loadAsset = function (url) {
    if (!loading[url]) {
      loading[url] = new Promise((resolve, reject) => {
        const node = url.endsWith(".css") ? BPM.el("link", { rel: "stylesheet", href: url }) : BPM.el("script", { src: url });
        node.addEventListener("load", resolve);
        node.addEventListener("error", () => reject(new Error(`cannot load ${url}`)));
        document.head.append(node);
      });
    }
    return loading[url];
  };

  // ---- diagrams --------------------------------------------------------------------------------------------

  // Show a definition's diagram with completed elements, current steps and taken flows marked.
  BPM.showDiagram = async function (container, xml, marks) {
    const viewer = new window.BpmnJS({ container });
    await viewer.importXML(xml);
    const canvas = viewer.get("canvas");
    const registry = viewer.get("elementRegistry");
    const mark = (ids, marker) => {
      for (const id of ids || []) if (registry.get(id)) canvas.addMarker(id, marker);
    };
    mark(marks.done, "done");
    mark(marks.taken, "taken");
    mark(marks.current, "current");
    canvas.zoom("fit-viewport", "auto");
    return viewer;
  };
})();
