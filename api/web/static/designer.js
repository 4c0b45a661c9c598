// The designer's start page: deployed processes (newest version each) and recent instances.
(function () {
  "use strict";
  const { api, el } = BPM;

  async function loadDefinitions() {
    const body = document.getElementById("definitions");
    try {
      const definitions = await api("GET", "/process-definitions");
      body.innerHTML = "";
      for (const d of definitions) {
        body.append(el("tr", {},
          el("td", {}, el("code", {}, d.key)), el("td", {}, d.name || ""), el("td", {}, `v${d.version}`),
          el("td", { class: "muted" }, `${d.deployed_by || ""} ${BPM.formatTime(d.deployed_at)}`),
          el("td", {}, el("a", { href: `/designer/modeler?key=${encodeURIComponent(d.key)}` }, BPM.text("op_edit")),
            " · ", el("a", { href: "#", "data-versions": d.key, onclick: (event) => { event.preventDefault(); toggleVersions(event.target, d); } },
              BPM.text("versions")))));
      }
    } catch (error) {
      BPM.showProblem(document.getElementById("problem"), error);
    }
  }

  // Every version (each opens in the modeler) and what changed from the previous one to the newest.
  async function toggleVersions(link, definition) {
    const row = link.closest("tr");
    if (row.nextElementSibling && row.nextElementSibling.classList.contains("versions-row")) {
      row.nextElementSibling.remove();
      return;
    }
    const cell = el("td", { colspan: 5 });
    row.after(el("tr", { class: "versions-row", "data-testid": "versions" }, cell));
    try {
      const versions = await api("GET", `/process-definitions/${encodeURIComponent(definition.key)}/versions`);
      cell.append(el("div", {}, versions.map((v) => [el("a", {
        href: `/designer/modeler?key=${encodeURIComponent(v.key)}&version=${v.version}` }, `v${v.version}`), " "])));
      if (versions.length > 1) {
        const newest = versions[versions.length - 1].version;
        const previous = versions[versions.length - 2].version;
        const diff = await api("GET", `/process-definitions/${encodeURIComponent(definition.key)}/diff?from=${previous}&to=${newest}`);
        const describe = (item) => `${item.id}${item.name ? " (" + item.name + ")" : ""}`;
        cell.append(el("div", { class: "muted" }, BPM.text("changes_between", { from: previous, to: newest })),
          el("ul", {},
            (diff.added || []).map((item) => el("li", {}, `+ ${describe(item)}`)),
            (diff.removed || []).map((item) => el("li", {}, `− ${describe(item)}`)),
            (diff.changed || []).map((item) => el("li", {}, `~ ${item.id}: ${Object.entries(item.changes || {})
              .map(([name, change]) => `${name} ${JSON.stringify(change.from)} → ${JSON.stringify(change.to)}`).join("; ")}`))));
      }
    } catch (error) {
      BPM.showProblem(cell, error);
    }
  }

  async function loadInstances() {
    const body = document.getElementById("instances");
    try {
      const instances = await api("GET", "/process-instances?limit=20");
      body.innerHTML = "";
      for (const i of instances) {
        body.append(el("tr", {},
          el("td", {}, el("a", { href: `/instances/${i.id}` }, i.process_key)), el("td", {}, i.business_key || ""),
          el("td", {}, BPM.text(`status_${i.status}`)), el("td", { class: "muted" }, BPM.formatTime(i.started_at))));
      }
    } catch (error) {
      body.append(el("tr", {}, el("td", { colspan: 4 }, BPM.describeError(error))));
    }
  }

  loadDefinitions();
  loadInstances();
})();
