// "My requests": the instances the user started, newest first, with their current steps and who holds them;
// 催办 urge a step and 撤回 withdraw a request, showing the server's own message when it refuses.
(function () {
  "use strict";
  const { api, el, text } = BPM;
  const list = document.getElementById("requests");
  const more = document.getElementById("more");
  const problem = document.getElementById("problem");
  const statusSelect = document.getElementById("status");
  const state = { items: [], after: null, generation: 0 };
  const PAGE = 20;

  function query(after) {
    const params = new URLSearchParams({ started_by: "me", with_tasks: "true", limit: String(PAGE + 1) });
    if (statusSelect.value) params.set("status", statusSelect.value);
    if (after) params.set("after", after);
    return params;
  }

  // Asks for one row more than it shows: a full extra row means another page follows.
  async function load(reset) {
    const generation = ++state.generation;
    if (reset) { state.items = []; state.after = null; }
    problem.innerHTML = "";
    try {
      const rows = await api("GET", `/process-instances?${query(state.after)}`);
      if (generation !== state.generation) return;
      const page = rows.slice(0, PAGE);
      state.items = state.items.concat(page);
      state.after = rows.length > PAGE ? page[page.length - 1].id : null;
    } catch (error) {
      if (generation !== state.generation) return;
      BPM.showProblem(problem, error);
    }
    render();
  }

  function holders(step) {
    const who = [];
    if (step.assignee) who.push(step.assignee === BPM.me ? text("assigned_to_me") : step.assignee);
    else {
      if ((step.candidate_users || []).length) who.push(step.candidate_users.join(", "));
      if ((step.candidate_groups || []).length) who.push(text("held_by_groups", { groups: step.candidate_groups.join(", ") }));
    }
    if (step.owner && step.owner !== step.assignee) who.push(text("delegated_by_owner", { owner: step.owner }));
    if ((step.signers || []).length) who.push(text("signers_waiting", { users: step.signers.join(", ") }));
    return who.length ? who.join(" · ") : text("nobody_yet");
  }

  function duePill(step) {
    if (!step.due_at) return "";
    return el("span", { class: `pill ${step.overdue ? "overdue" : ""}`, "data-testid": step.overdue ? "overdue" : "due" },
      `${step.overdue ? text("overdue") : text("due")} ${BPM.formatTime(step.due_at)}`);
  }

  function statusPill(item) {
    const outcome = item.outcome || item.status;
    const kind = { completed: "ok", running: "", withdrawn: "warn", cancelled: "warn" }[outcome] || "";
    return el("span", { class: `pill ${kind}`, "data-testid": "status" }, text(`status_${outcome}`));
  }

  function message(row, content, kind) {
    const box = row.querySelector("[data-testid=row-message]");
    box.className = kind === "error" ? "problem" : "notice";
    box.setAttribute("role", kind === "error" ? "alert" : "status");
    box.textContent = content;
  }

  async function urge(item, step, row, button) {
    button.disabled = true;
    try {
      await api("POST", `/tasks/${encodeURIComponent(step.id)}/urge`, {});
      message(row, `${text("done_urge")} (${step.name})`, "ok");
    } catch (error) {
      message(row, BPM.describeError(error), "error");
    } finally {
      button.disabled = false;
    }
  }

  function askWithdraw(item, row) {
    const dialog = document.getElementById("withdraw-dialog");
    const reason = document.getElementById("withdraw-reason");
    dialog.querySelector("[data-role=request-name]").textContent = item.business_key || item.process_name || "";
    document.getElementById("withdraw-help").textContent = text("confirm_withdraw");
    reason.value = "";
    dialog.onclose = async () => {
      if (dialog.returnValue !== "ok") return;
      try {
        const done = await api("POST", `/process-instances/${encodeURIComponent(item.id)}/withdraw`,
          { reason: reason.value.trim() || null });
        Object.assign(item, { status: done.status, ended_at: done.ended_at, outcome: "withdrawn", open_tasks: [],
                              overdue: false });
        render();
        const fresh = list.querySelector(`[data-instance-id="${CSS.escape(item.id)}"]`);
        if (fresh) message(fresh, text("done_withdraw"), "ok");
      } catch (error) {
        message(row, BPM.describeError(error), "error");
      }
    };
    dialog.returnValue = "";
    dialog.showModal();
  }

  function stepLine(item, step, row) {
    const running = item.status === "running";
    return el("li", { class: "step", "data-task-id": step.id },
      el("div", { class: "step-text" },
        el("span", { class: "step-name" }, step.name || step.element_id),
        el("span", { class: "muted holders", "data-testid": "holders" }, holders(step)),
        duePill(step)),
      running ? el("button", { type: "button", "data-op": "urge", title: text("urge_step", { name: step.name }),
        onclick: (event) => urge(item, step, row, event.currentTarget) }, text("op_urge")) : "");
  }

  function card(item) {
    const row = el("li", { class: "request", "data-instance-id": item.id, "data-status": item.outcome || item.status });
    const steps = el("ul", { class: "steps", "data-testid": "steps" });
    for (const step of item.open_tasks || []) steps.append(stepLine(item, step, row));
    if (item.status === "running" && !(item.open_tasks || []).length) {
      steps.append(el("li", { class: "muted" }, text("no_open_tasks")));
    }
    const actions = el("div", { class: "request-actions" },
      el("a", { href: `/instances/${encodeURIComponent(item.id)}`, "data-testid": "open-instance" }, text("open_instance")),
      item.status === "running" ? el("button", { type: "button", class: "danger", "data-op": "withdraw",
        onclick: () => askWithdraw(item, row) }, text("op_withdraw")) : "");
    row.append(
      el("div", { class: "request-head" },
        el("span", { class: "request-name" }, item.process_name || item.process_key),
        item.business_key ? el("span", { class: "business-key", "data-testid": "business-key" }, item.business_key) : "",
        statusPill(item),
        item.overdue ? el("span", { class: "pill overdue" }, text("overdue")) : ""),
      el("div", { class: "muted request-meta" }, text("started_at", { time: BPM.formatTime(item.started_at) }),
        item.ended_at ? ` · ${text("ended_at", { time: BPM.formatTime(item.ended_at) })}` : ""),
      steps,
      el("div", { "data-testid": "row-message" }),
      actions);
    return row;
  }

  function render() {
    list.innerHTML = "";
    if (!state.items.length && !problem.children.length) {
      list.append(el("li", { class: "empty", "data-testid": "empty" }, text("my_requests_empty")));
    }
    for (const item of state.items) list.append(card(item));
    more.classList.toggle("hidden", !state.after);
  }

  statusSelect.addEventListener("change", () => load(true));
  more.addEventListener("click", () => load(false));
  load(true);
})();
