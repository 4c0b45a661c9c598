// The task page: the form (form-js) or an opinion box, a button for each operation the user may perform
// (destructive ones confirmed), the diagram with the current step, the explained history, comments, attachments.
(function () {
  "use strict";
  const { api, el, text } = BPM;
  const root = document.getElementById("task-page");
  const taskId = root.dataset.taskId;
  const readOnly = Boolean(root.dataset.cc);
  const problem = document.getElementById("problem");
  const state = { task: null, instance: null, form: null, names: {}, signers: [] };

  // ---- operations -----------------------------------------------------------------------------------------

  const OPERATIONS = {
    approve: { style: "approve", run: approve },
    complete: { style: "primary", run: () => act("complete", { variables: state.formData }) },
    reject: {
      style: "danger", confirm: true,
      fields: [{ name: "reason", kind: "textarea", required: true, label: "field_reason" }],
      run: (values) => act("reject", { opinion: opinionText() || values.reason, reason: values.reason }),
    },
    claim: { run: () => act("claim") },
    unclaim: { run: () => act("unclaim") },
    resolve: { run: () => act("resolve", { comment: opinionText() || null }) },
    delegate: {
      fields: [{ name: "to", kind: "user", required: true, label: "field_to" },
               { name: "comment", kind: "textarea", label: "field_comment" }],
      run: (values) => act("delegate", { to: values.to, comment: values.comment || null }),
    },
    transfer: {
      fields: [{ name: "to", kind: "user", required: true, label: "field_to" }],
      run: (values) => act("transfer", { to: values.to }),
    },
    "add-signer": {
      fields: [{ name: "users", kind: "text", required: true, label: "field_signers" },
               { name: "position", kind: "select", label: "field_position",
                 options: ["before", "after", "parallel"] }],
      run: (values) => act("add-signer", { users: splitUsers(values.users), position: values.position }),
    },
    "send-back": {
      confirm: true,
      fields: [{ name: "to_element_id", kind: "step", label: "field_step" },
               { name: "comment", kind: "textarea", label: "field_comment" }],
      run: (values) => act("send-back", { to_element_id: values.to_element_id || null, comment: values.comment || null }),
    },
    "remove-signer": {
      fields: [{ name: "username", kind: "signer", required: true, label: "field_signer" }],
      run: (values) => act("remove-signer", { username: values.username }),
    },
    assign: {
      fields: [{ name: "assignee", kind: "user", required: true, label: "field_assignee" }],
      run: (values) => act("assign", { assignee: values.assignee }),
    },
    urge: { run: () => act("urge", { comment: opinionText() || null }) },
    withdraw: {
      style: "danger", confirm: true,
      fields: [{ name: "reason", kind: "textarea", label: "field_reason" }],
      run: (values) => instanceAct("withdraw", { reason: values.reason || null }),
    },
  };

  const splitUsers = (value) => value.split(/[\s,，]+/).filter(Boolean);
  const opinionText = () => document.getElementById("opinion").value.trim() ||
    String((state.formData && state.formData.opinion) || "").trim();
  const formHasOpinion = (form) => JSON.stringify((form && form.components) || []).includes('"key":"opinion"');

  function allowedOperations(task, instance) {
    if (readOnly || task.status !== "open") return [];
    if (Array.isArray(task.actions)) {
      const ops = task.actions.filter((name) => OPERATIONS[name]);
      if (instance && instance.status === "running" && instance.started_by === BPM.me) ops.push("withdraw");
      return [...new Set(ops)];
    }
    const me = BPM.me;
    const admin = BPM.roles.includes("admin");
    const ops = [];
    if (task.assignee === me || admin) {
      ops.push("approve", "reject", "complete");
      if (task.owner && task.owner !== me) ops.push("resolve");
      ops.push("delegate", "transfer", "add-signer", "send-back", "unclaim");
    } else if (!task.assignee) {
      ops.push("approve", "reject", "claim");
    }
    if (instance && instance.status === "running" && instance.started_by === me) ops.push("urge", "withdraw");
    return [...new Set(ops)];
  }

  // The buttons are replaced only when the operations change: the instance's arrival renders them again, and a
  // button replaced between a press and its release would swallow the click.
  function renderActions() {
    const bar = document.getElementById("actions");
    const names = allowedOperations(state.task, state.instance);
    if (bar.dataset.ops === names.join(" ") && bar.querySelector("button")) return;
    bar.dataset.ops = names.join(" ");
    bar.innerHTML = "";
    for (const name of names) {
      const operation = OPERATIONS[name];
      bar.append(el("button", { type: "button", class: operation.style || "", "data-op": name,
                                onclick: () => start(name) }, text(`op_${name}`)));
    }
    if (!bar.children.length) bar.append(el("span", { class: "muted" }, text(readOnly ? "read_only_cc" : "no_actions")));
    document.getElementById("keys-hint").classList.toggle("hidden", !bar.querySelector("[data-op=approve]"));
  }

  async function start(name) {
    const operation = OPERATIONS[name];
    if (name === "approve" || name === "complete" || name === "reject") {
      if (!(await readForm())) return;
    }
    if (!operation.fields && !operation.confirm) return runOperation(operation, {});
    const values = await askFor(name, operation);
    if (values) runOperation(operation, values);
  }

  async function runOperation(operation, values) {
    problem.innerHTML = "";
    document.querySelectorAll("#actions button").forEach((b) => { b.disabled = true; });
    try {
      await operation.run(values);
    } catch (error) {
      BPM.showProblem(problem, error);
      window.scrollTo({ top: 0, behavior: "smooth" });
    } finally {
      document.querySelectorAll("#actions button").forEach((b) => { b.disabled = false; });
    }
  }

  async function approve() {
    if (!state.task.assignee) await api("POST", `/tasks/${taskId}/claim`);
    const body = { opinion: opinionText() };
    if (state.form && Object.keys(state.formData || {}).length) body.variables = state.formData;
    await act("approve", body);
  }

  async function act(name, body) {
    if ((name === "reject") && !state.task.assignee) await api("POST", `/tasks/${taskId}/claim`);
    await api("POST", `/tasks/${taskId}/${name}`, body);
    BPM.toast(text(`done_${name}`));
    if (["approve", "reject", "complete", "delegate", "transfer", "send-back", "resolve"].includes(name)) {
      setTimeout(() => { window.location = "/inbox"; }, 600);
    } else if (name === "assign" && !(await stillVisible())) {
      setTimeout(() => { window.location = "/inbox"; }, 600);  // e.g. a supervisor handed it outside their team
    } else {
      await loadTask();
    }
  }

  async function stillVisible() {
    try {
      await api("GET", `/tasks/${taskId}`);
      return true;
    } catch (error) {
      if (error.status === 403) return false;
      throw error;
    }
  }

  async function instanceAct(name, body) {
    await api("POST", `/process-instances/${state.task.instance_id}/${name}`, body);
    BPM.toast(text(`done_${name}`));
    setTimeout(() => { window.location = "/inbox"; }, 600);
  }

  // A dialog asking for an operation's fields; destructive operations say so. Resolves to values or null.
  function askFor(name, operation) {
    const dialog = document.getElementById("op-dialog");
    const fields = document.getElementById("op-fields");
    document.getElementById("op-title").textContent = `${text(`op_${name}`)}: ${state.task.name}`;
    document.getElementById("op-help").textContent = operation.confirm ? text(`confirm_${name}`) : "";
    const ok = document.getElementById("op-ok");
    ok.textContent = text(`op_${name}`);
    ok.className = operation.style === "danger" || operation.confirm ? "danger" : "primary";
    fields.innerHTML = "";
    for (const field of operation.fields || []) fields.append(fieldInput(field));
    return new Promise((resolve) => {
      dialog.onclose = () => {
        if (dialog.returnValue !== "ok") return resolve(null);
        const values = {};
        for (const field of operation.fields || []) values[field.name] = document.getElementById(`op-${field.name}`).value.trim();
        resolve(values);
      };
      dialog.showModal();
    });
  }

  function fieldInput(field) {
    const id = `op-${field.name}`;
    let input;
    if (field.kind === "textarea") input = el("textarea", { id, required: field.required });
    else if (field.kind === "select") {
      input = el("select", { id }, field.options.map((o) => el("option", { value: o }, text(`position_${o}`))));
    } else if (field.kind === "signer") {
      input = el("select", { id, required: field.required },
        pendingSigners().map((s) => el("option", { value: s.username }, `${s.username} (${text(`position_${s.position}`)})`)));
    } else if (field.kind === "step") {
      input = el("select", { id }, el("option", { value: "" }, text("previous_step")),
        earlierSteps().map((step) => el("option", { value: step.id }, step.name)));
    } else {
      input = el("input", { id, required: field.required, autocomplete: "off",
                            placeholder: field.kind === "user" ? text("username_placeholder") : "" });
    }
    return el("div", {}, el("label", { for: id }, text(field.label)), input);
  }

  const pendingSigners = () => state.signers.filter((s) => s.status === "pending");

  // Completed user tasks of this instance, most recent first, for "send back to".
  function earlierSteps() {
    const path = (state.instance && state.instance.path) || [];
    const seen = new Set();
    const steps = [];
    for (const id of [...path].reverse()) {
      const info = state.names[id];
      if (seen.has(id) || id === state.task.element_id || !info || !info.isUserTask) continue;
      seen.add(id);
      steps.push({ id, name: info.name || id });
    }
    return steps;
  }

  // ---- form ---------------------------------------------------------------------------------------------

  async function renderForm(task) {
    const host = document.getElementById("form-host");
    host.innerHTML = "";
    state.form = null;
    if (!task.form) return;
    try {
      await Promise.all([BPM.loadAsset("/static/vendor/form-js/assets/form-js.css"),
                         BPM.loadAsset("/static/vendor/form-js/form-viewer.js")]);
      state.form = new window.FormViewer.Form({ container: host });
      await state.form.importSchema(task.form, { business_key: task.business_key, ...(task.data || {}) });
      if (readOnly || task.status !== "open") state.form.setProperty("readOnly", true);
    } catch (error) {
      host.append(el("div", { class: "problem" }, `${text("form_error")}: ${error.message}`));
      state.form = null;
    }
  }

  async function readForm() {
    state.formData = {};
    if (!state.form) return true;
    const { data, errors } = state.form.submit();
    if (Object.keys(errors || {}).length) {
      BPM.toast(text("form_invalid"), "error");
      return false;
    }
    state.formData = data;
    return true;
  }

  // ---- page data ----------------------------------------------------------------------------------------

  function renderFacts(task) {
    document.getElementById("task-name").textContent = task.name || task.element_id;
    document.title = `${task.name} · BPM`;
    const facts = document.getElementById("facts");
    facts.innerHTML = "";
    const overdue = task.status === "open" && BPM.isOverdue(task.due_at);
    facts.append(
      el("span", {}, [task.process_key, task.business_key].filter(Boolean).join(" · ")),
      el("span", { class: `pill ${task.status === "open" ? "" : "ok"}` }, text(`status_${task.status}`)),
      task.due_at ? el("span", { class: `pill ${overdue ? "overdue" : ""}` }, `${text(overdue ? "overdue" : "due")} ${BPM.formatTime(task.due_at)}`) : "",
      el("span", {}, `${text("assignee")}: ${task.assignee || text("unclaimed_in", { groups: (task.candidate_groups || []).join(", ") || "-" })}`),
      task.owner && task.owner !== task.assignee ? el("span", {}, `${text("delegated_by")}: ${task.owner}`) : "",
      el("span", {}, `${text("priority")}: ${task.priority}`),
      el("span", { id: "signers", "data-testid": "signers" }));
    renderSigners();
  }

  // Signers added to this task (加签) and where they stand; the list is empty when nobody was added.
  function renderSigners() {
    const box = document.getElementById("signers");
    if (!box) return;
    box.innerHTML = "";
    const shown = state.signers.filter((s) => s.status !== "removed" && s.status !== "cancelled");
    if (!shown.length) return;
    box.append(`${text("signers")}: `, ...shown.map((s, index) => el("span", { "data-signer": s.username },
      `${index ? ", " : ""}${s.username} (${text(`position_${s.position}`)}, ${text(`signer_${s.status}`)})`)));
  }

  async function loadSigners() {
    try {
      state.signers = (await api("GET", `/tasks/${taskId}/signers`)) || [];
    } catch (error) {
      state.signers = [];
    }
    renderSigners();
  }

  async function loadTask() {
    try {
      state.task = await api("GET", `/tasks/${taskId}`);
    } catch (error) {
      BPM.showProblem(problem, error);
      return;
    }
    await loadSigners();
    renderFacts(state.task);
    await renderForm(state.task);
    document.getElementById("opinion-box").classList.toggle("hidden",
      readOnly || state.task.status !== "open" || (Boolean(state.form) && formHasOpinion(state.task.form)));
    renderActions();
  }

  async function loadInstance() {
    const task = state.task;
    if (!task) return;
    const link = document.getElementById("instance-link");
    link.href = `/instances/${task.instance_id}`;
    link.textContent = text("open_instance");
    try {
      state.instance = await api("GET", `/process-instances/${task.instance_id}`);
      renderActions();
      const definition = await api("GET", `/process-definitions/${encodeURIComponent(task.process_key)}/versions/${state.instance.version}`);
      state.names = BPM.elementNames(definition.bpmn_xml);
      await BPM.showDiagram(document.getElementById("diagram"), definition.bpmn_xml, {
        done: state.instance.path, current: [task.element_id] });
    } catch (error) {
      BPM.showProblem(document.getElementById("diagram"), error);
    }
    await loadHistory();
  }

  async function loadHistory() {
    const list = document.getElementById("history");
    try {
      const rows = await api("GET", `/process-instances/${state.task.instance_id}/history`);
      list.innerHTML = "";
      for (const row of rows) list.append(BPM.historyItem(row, state.names));
    } catch (error) {
      BPM.showProblem(list, error);
    }
  }

  let commentsGeneration = 0;
  let attachmentsGeneration = 0;

  async function loadComments() {
    const list = document.getElementById("comments");
    const box = document.getElementById("comments-problem");
    const generation = ++commentsGeneration;
    try {
      const page = await api("GET", `/tasks/${taskId}/comments`);
      if (generation !== commentsGeneration) return;  // a newer load (after posting) wins
      list.innerHTML = "";
      for (const c of Array.isArray(page) ? page : page.items || []) {
        list.append(el("li", {}, el("strong", {}, c.author || c.actor || c.username || ""), " ",
          el("span", { class: "when muted" }, BPM.formatTime(c.created_at || c.at)), el("div", {}, c.text || "")));
      }
      if (!list.children.length) list.append(el("li", { class: "muted" }, text("no_comments")));
      box.innerHTML = "";
    } catch (error) {
      BPM.showProblem(box, error);
    }
  }

  async function loadAttachments() {
    const list = document.getElementById("attachments");
    const box = document.getElementById("attachments-problem");
    const generation = ++attachmentsGeneration;
    try {
      const page = await api("GET", `/tasks/${taskId}/attachments`);
      if (generation !== attachmentsGeneration) return;
      list.innerHTML = "";
      for (const a of Array.isArray(page) ? page : page.items || []) {
        const link = el("a", { href: "#", onclick: (event) => { event.preventDefault(); download(a); } }, a.filename || a.name);
        list.append(el("li", {}, link, " ", el("span", { class: "muted" },
          `${Math.ceil((a.size || 0) / 1024)} KB · ${a.uploaded_by || a.author || ""}`)));
      }
      if (!list.children.length) list.append(el("li", { class: "muted" }, text("no_attachments")));
      box.innerHTML = "";
    } catch (error) {
      BPM.showProblem(box, error);
    }
  }

  async function download(attachment) {
    try {
      const blob = await api("GET", `/attachments/${attachment.id}`, undefined, { blob: true });
      const url = URL.createObjectURL(blob);
      const link = el("a", { href: url, download: attachment.filename || "attachment" });
      document.body.append(link);
      link.click();
      link.remove();
      setTimeout(() => URL.revokeObjectURL(url), 5000);
    } catch (error) {
      BPM.toast(BPM.describeError(error), "error");
    }
  }

  document.getElementById("comment-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const input = document.getElementById("comment-text");
    if (!input.value.trim()) return;
    try {
      await api("POST", `/tasks/${taskId}/comments`, { text: input.value.trim() });
      input.value = "";
      await loadComments();
    } catch (error) {
      BPM.showProblem(document.getElementById("comments-problem"), error);
    }
  });

  document.getElementById("attachment-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const file = document.getElementById("attachment-file").files[0];
    if (!file) return;
    const body = new FormData();
    body.append("file", file);
    try {
      await api("POST", `/tasks/${taskId}/attachments`, body);
      document.getElementById("attachment-file").value = "";
      await loadAttachments();
    } catch (error) {
      BPM.showProblem(document.getElementById("attachments-problem"), error);
    }
  });

  document.addEventListener("keydown", (event) => {
    if (/^(INPUT|TEXTAREA|SELECT)$/.test(event.target.tagName) || event.target.isContentEditable) return;
    if (document.querySelector("dialog[open]") || event.ctrlKey || event.metaKey || event.altKey) return;
    const button = { a: "approve", r: "reject" }[event.key];
    const target = button && document.querySelector(`#actions [data-op="${button}"]`);
    if (target) { event.preventDefault(); target.click(); }
  });

  // user tasks are marked in the names map so "send back" offers only steps a person worked
  const elementNames = BPM.elementNames;
  BPM.elementNames = function (xml) {
    const names = elementNames(xml);
    const doc = new DOMParser().parseFromString(xml || "<x/>", "application/xml");
    for (const node of doc.getElementsByTagNameNS("*", "userTask")) {
      const id = node.getAttribute("id");
      if (names[id]) names[id].isUserTask = true;
    }
    return names;
  };

  (async function main() {
    await loadTask();
    if (!state.task) return;
    loadComments();
    loadAttachments();
    loadInstance();
  })();
})();
