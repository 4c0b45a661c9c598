// The inbox: filters with count badges, search, sort, keyset "load more", keyboard (j/k/Enter/a/r and /).
(function () {
  "use strict";
  const { api, el, text } = BPM;
  const list = document.getElementById("tasks");
  const more = document.getElementById("more");
  const problem = document.getElementById("problem");
  const search = document.getElementById("search");
  const processSelect = document.getElementById("process");
  const sortSelect = document.getElementById("sort");
  const state = { filter: "all", cursor: null, items: [], selected: 0, generation: 0, picked: new Set() };
  const bulk = document.getElementById("bulk-approve");

  function query(cursor) {
    const params = new URLSearchParams();
    const scopes = { all: "all", mine: "mine", groups: "groups", delegated: "delegated", signing: "signing",
                     overdue: "all", completed: "completed" };
    params.set("scope", scopes[state.filter] || "all");
    if (state.filter === "completed") params.set("status", "completed");
    if (state.filter === "overdue") params.set("overdue", "true");
    if (processSelect.value) params.set("process", processSelect.value);
    if (search.value.trim()) params.set("q", search.value.trim());
    params.set("sort", sortSelect.value);
    params.set("limit", "25");
    if (cursor) params.set("cursor", cursor);
    return params;
  }

  async function fetchPage(cursor) {
    if (state.filter === "cc") {
      const params = query(cursor);
      params.delete("scope");
      const page = await api("GET", `/cc?${params}`);
      const items = Array.isArray(page) ? page : page.items || [];
      return { items: items.map((item) => ({ ...item, id: item.task_id || item.id, cc: true })),
               next_cursor: Array.isArray(page) ? null : page.next_cursor };
    }
    return api("GET", `/tasks?${query(cursor)}`);
  }

  async function load(reset) {
    const generation = ++state.generation;
    if (reset) { state.cursor = null; state.items = []; state.selected = 0; state.picked.clear(); pick(null, false); }
    problem.innerHTML = "";
    try {
      const page = await fetchPage(state.cursor);
      if (generation !== state.generation) return;
      state.items = state.items.concat(page.items || []);
      state.cursor = page.next_cursor || null;
    } catch (error) {
      if (generation !== state.generation) return;
      BPM.showProblem(problem, error);
    }
    render();
  }

  function dueLabel(task) {
    if (!task.due_at) return null;
    const overdue = BPM.isOverdue(task.due_at) && task.status !== "completed";
    return el("span", { class: `pill ${overdue ? "overdue" : ""}` },
      `${overdue ? text("overdue") : text("due")} ${BPM.formatTime(task.due_at)}`);
  }

  function row(task, index) {
    const who = task.assignee ? (task.assignee === BPM.me ? text("assigned_to_me") : task.assignee)
      : text("unclaimed_in", { groups: (task.candidate_groups || []).join(", ") || "-" });
    const href = `/tasks/${encodeURIComponent(task.id)}${task.cc ? "?cc=1" : ""}`;
    const selectable = !task.cc && task.status !== "completed";
    const box = selectable ? el("input", { type: "checkbox", class: "pick", "aria-label": text("select_task"),
      checked: state.picked.has(task.id), onchange: (event) => pick(task.id, event.target.checked) }) : "";
    return el("li", { class: index === state.selected ? "selected" : "", "data-task-id": task.id }, box,
      el("a", { class: "row", href },
        el("span", { class: "name" }, task.name || task.element_id || ""),
        el("span", { class: "side" }, dueLabel(task) || "",
          task.priority && task.priority !== 50 ? el("div", { class: "muted" }, `P${task.priority}`) : ""),
        el("span", { class: "meta" }, [task.process_key, task.business_key, who].filter(Boolean).join(" · "))));
  }

  function pick(taskId, on) {
    if (on) state.picked.add(taskId); else state.picked.delete(taskId);
    bulk.classList.toggle("hidden", !state.picked.size);
    bulk.textContent = text("approve_selected", { count: state.picked.size });
  }

  // Bulk approve: one request, a result per task; approved ones leave the list, failures are named.
  async function approvePicked() {
    const ids = [...state.picked];
    if (!ids.length) return;
    try {
      const results = await api("POST", "/tasks/bulk-approve", { task_ids: ids });
      const failed = results.filter((r) => !r.ok);
      for (const result of results) if (result.ok) { state.picked.delete(result.task_id); removeTask(result.task_id); }
      pick(null, false);
      if (failed.length) {
        BPM.toast(failed.map((r) => `${nameOf(r.task_id)}: ${r.detail || r.error}`).join("\n"), "error");
      } else {
        BPM.toast(text("approved_count", { count: results.length }));
      }
    } catch (error) {
      BPM.toast(BPM.describeError(error), "error");
    }
  }

  function nameOf(taskId) {
    const task = state.items.find((t) => t.id === taskId);
    return task ? `${task.name} ${task.business_key || ""}` : taskId;
  }

  function render() {
    list.innerHTML = "";
    if (!state.items.length) {
      list.append(el("li", { class: "empty", "data-testid": "empty" }, text("inbox_empty")));
    }
    state.items.forEach((task, index) => list.append(row(task, index)));
    more.classList.toggle("hidden", !state.cursor);
  }

  function select(index) {
    if (!state.items.length) return;
    state.selected = Math.max(0, Math.min(state.items.length - 1, index));
    list.querySelectorAll("li").forEach((li, i) => li.classList.toggle("selected", i === state.selected));
    const current = list.children[state.selected];
    if (current) current.scrollIntoView({ block: "nearest" });
  }

  async function loadCounts() {
    try {
      const counts = await api("GET", "/tasks/counts", undefined, { noRedirect: true });
      const aliases = { groups: ["groups", "claimable"], mine: ["mine"], all: ["all", "open"],
                        delegated: ["delegated"], cc: ["cc"], signing: ["signing"], overdue: ["overdue"] };
      for (const [name, keys] of Object.entries(aliases)) {
        const key = keys.find((k) => counts && counts[k] !== undefined);
        const badge = document.querySelector(`[data-count="${name}"]`);
        if (badge) badge.textContent = key ? String(counts[key]) : "";
      }
    } catch (error) {
      // counts are a convenience: without the endpoint the badges stay empty
    }
  }

  async function loadProcesses() {
    try {
      const definitions = await api("GET", "/process-definitions");
      for (const definition of definitions) {
        processSelect.append(el("option", { value: definition.key }, definition.name || definition.key));
      }
    } catch (error) { /* the filter just offers no processes */ }
  }

  function removeTask(taskId) {
    const index = state.items.findIndex((t) => t.id === taskId);
    if (index >= 0) state.items.splice(index, 1);
    state.selected = Math.min(state.selected, Math.max(0, state.items.length - 1));
    render();
    loadCounts();
  }

  async function ensureClaimed(task) {
    if (!task.assignee) await api("POST", `/tasks/${task.id}/claim`);
  }

  async function approveSelected() {
    const task = state.items[state.selected];
    if (!task || task.cc || task.status === "completed") return;
    try {
      await ensureClaimed(task);
      await api("POST", `/tasks/${task.id}/approve`, { opinion: "" });
      BPM.toast(text("approved_task", { name: task.name }));
      removeTask(task.id);
    } catch (error) {
      BPM.toast(BPM.describeError(error), "error");
    }
  }

  function rejectSelected() {
    const task = state.items[state.selected];
    if (!task || task.cc || task.status === "completed") return;
    const dialog = document.getElementById("reject-dialog");
    dialog.querySelector("[data-role=task-name]").textContent = task.name;
    const reason = document.getElementById("reject-reason");
    reason.value = "";
    dialog.onclose = async () => {
      if (dialog.returnValue !== "ok" || !reason.value.trim()) return;
      try {
        await ensureClaimed(task);
        await api("POST", `/tasks/${task.id}/reject`, { opinion: reason.value.trim(), reason: reason.value.trim() });
        BPM.toast(text("rejected_task", { name: task.name }));
        removeTask(task.id);
      } catch (error) {
        BPM.toast(BPM.describeError(error), "error");
      }
    };
    dialog.showModal();
  }

  // ---- saved filters ------------------------------------------------------------------------------------

  function currentQuery() {
    return { filter: state.filter, process: processSelect.value, q: search.value.trim(), sort: sortSelect.value };
  }

  function applyQuery(query) {
    state.filter = query.filter || "all";
    document.querySelectorAll("[data-filter]").forEach((b) => b.classList.toggle("active", b.dataset.filter === state.filter));
    processSelect.value = query.process || "";
    search.value = query.q || "";
    sortSelect.value = query.sort || "due";
    load(true);
  }

  async function loadSavedFilters() {
    const box = document.getElementById("saved-filters");
    try {
      const filters = await api("GET", "/saved-filters", undefined, { noRedirect: true });
      box.innerHTML = "";
      if (filters.length) box.append(el("span", { class: "filter-label muted" }, text("saved_filters")));
      for (const saved of filters) {
        box.append(el("button", { type: "button", "data-saved": saved.name, onclick: () => applyQuery(saved.query || {}) },
          saved.name, el("span", { class: "badge", title: text("delete"), role: "button",
            onclick: (event) => { event.stopPropagation(); deleteSaved(saved); } }, "×")));
      }
    } catch (error) { box.innerHTML = ""; }
  }

  async function deleteSaved(saved) {
    try {
      await api("DELETE", `/saved-filters/${saved.id}`);
      loadSavedFilters();
  loadDeputy();
    } catch (error) { BPM.toast(BPM.describeError(error), "error"); }
  }

  document.getElementById("save-filter").addEventListener("click", () => {
    const dialog = document.getElementById("save-dialog");
    const name = document.getElementById("filter-name");
    name.value = "";
    dialog.onclose = async () => {
      if (dialog.returnValue !== "ok" || !name.value.trim()) return;
      try {
        await api("POST", "/saved-filters", { name: name.value.trim(), query: currentQuery() });
        loadSavedFilters();
  loadDeputy();
      } catch (error) { BPM.toast(BPM.describeError(error), "error"); }
    };
    dialog.showModal();
  });

  // ---- deputy (out of office) ------------------------------------------------------------------------

  async function loadDeputy() {
    const box = document.getElementById("deputy");
    box.innerHTML = "";
    let current = null;
    try {
      current = await api("GET", "/users/me/substitute", undefined, { noRedirect: true });
    } catch (error) {
      if (error.status !== 404) return;  // no deputy set (404) is the normal case
    }
    const label = current
      ? text("deputy_set", { deputy: current.deputy, from: BPM.formatTime(current.starts_at), to: BPM.formatTime(current.ends_at) })
      : text("no_deputy");
    box.append(label, " ", el("a", { href: "#", "data-testid": "deputy-edit",
      onclick: (event) => { event.preventDefault(); editDeputy(current); } }, text("change")));
  }

  function editDeputy(current) {
    const dialog = document.getElementById("deputy-dialog");
    const day = (iso) => (iso ? iso.slice(0, 10) : new Date().toISOString().slice(0, 10));
    document.getElementById("deputy-user").value = current ? current.deputy : "";
    document.getElementById("deputy-from").value = day(current && current.starts_at);
    document.getElementById("deputy-to").value = day(current && current.ends_at);
    document.getElementById("deputy-clear").classList.toggle("hidden", !current);
    dialog.onclose = async () => {
      try {
        if (dialog.returnValue === "clear") await api("DELETE", "/users/me/substitute");
        if (dialog.returnValue === "ok") {
          const from = new Date(`${document.getElementById("deputy-from").value}T00:00:00`);
          const to = new Date(`${document.getElementById("deputy-to").value}T23:59:59`);
          await api("PUT", "/users/me/substitute", { deputy: document.getElementById("deputy-user").value.trim(),
                                                      starts_at: from.toISOString(), ends_at: to.toISOString() });
        }
      } catch (error) {
        BPM.toast(BPM.describeError(error), "error");
      }
      loadDeputy();
    };
    dialog.showModal();
  }

  document.querySelectorAll("[data-filter]").forEach((button) => {
    button.addEventListener("click", () => {
      document.querySelectorAll("[data-filter]").forEach((b) => b.classList.toggle("active", b === button));
      state.filter = button.dataset.filter;
      load(true);
    });
  });
  let typing;
  search.addEventListener("input", () => { clearTimeout(typing); typing = setTimeout(() => load(true), 250); });
  processSelect.addEventListener("change", () => load(true));
  sortSelect.addEventListener("change", () => load(true));
  more.addEventListener("click", () => load(false));
  bulk.addEventListener("click", approvePicked);

  document.addEventListener("keydown", (event) => {
    const typingInField = /^(INPUT|TEXTAREA|SELECT)$/.test(event.target.tagName) || document.querySelector("dialog[open]");
    if (event.key === "Escape" && event.target === search) { search.blur(); return; }
    if (typingInField || event.ctrlKey || event.metaKey || event.altKey) return;
    const actions = {
      j: () => select(state.selected + 1), k: () => select(state.selected - 1),
      ArrowDown: () => select(state.selected + 1), ArrowUp: () => select(state.selected - 1),
      Enter: () => { const task = state.items[state.selected]; if (task) list.children[state.selected].querySelector("a").click(); },
      a: approveSelected, r: rejectSelected, "/": () => search.focus(),
      x: () => {
        const task = state.items[state.selected];
        const box = list.children[state.selected] && list.children[state.selected].querySelector("input.pick");
        if (task && box) { box.checked = !box.checked; pick(task.id, box.checked); }
      },
    };
    if (actions[event.key]) { event.preventDefault(); actions[event.key](); }
  });

  loadProcesses();
  loadCounts();
  loadSavedFilters();
  loadDeputy();
  load(true);
})();
