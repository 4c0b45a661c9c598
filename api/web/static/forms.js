// The form-js editor: open a stored form by key (or a file), edit it, save it on the server under its key
// (PUT /forms/{key}; the server checks it first and names each problem), or download it as a file.
(function () {
  "use strict";
  const { api, el, text } = BPM;
  const page = document.getElementById("forms-page");
  const problem = document.getElementById("problem");
  const status = document.getElementById("form-status");
  const list = document.getElementById("form-list");
  const keyInput = document.getElementById("form-key");
  const EMPTY = { type: "default", id: "new_form", schemaVersion: 16, components: [
    { type: "textarea", key: "opinion", label: "Opinion" },
    { type: "checkbox", key: "approved", label: "Approved" }] };
  const editor = new window.FormEditor.FormEditor({ container: document.getElementById("form-editor") });

  function clearMessages() {
    problem.innerHTML = "";
    status.innerHTML = "";
  }

  async function importSchema(schema) {
    try {
      await editor.importSchema(schema);
    } catch (error) {
      BPM.showProblem(problem, error);
    }
  }

  async function loadList(selected) {
    try {
      const forms = await api("GET", "/forms");
      list.innerHTML = "";
      list.append(el("option", { value: "" }, text("new_form")),
        ...forms.map((form) => el("option", { value: form.key, "data-source": form.source },
          `${form.key}${form.source === "saved" ? " *" : ""}`)));
      list.value = selected || "";
    } catch (error) {
      BPM.showProblem(problem, error);
    }
  }

  async function openKey(key) {
    clearMessages();
    if (!key) {
      keyInput.value = "";
      history.replaceState(null, "", location.pathname);
      return importSchema(EMPTY);
    }
    try {
      const form = await api("GET", `/forms/${encodeURIComponent(key)}`);
      keyInput.value = form.key;
      list.value = form.key;
      history.replaceState(null, "", `${location.pathname}?key=${encodeURIComponent(form.key)}`);
      await importSchema(form.schema);
      status.append(el("p", { class: "muted", "data-testid": "form-source" },
        text(form.source === "saved" ? "form_saved_at" : "form_shipped", { key: form.key, time: BPM.formatTime(form.updated_at) })));
    } catch (error) {
      BPM.showProblem(problem, error);
    }
  }

  async function save() {
    clearMessages();
    const key = keyInput.value.trim();
    if (!key) {
      keyInput.focus();
      BPM.toast(text("form_key_needed"), "error");
      return;
    }
    const schema = editor.saveSchema();
    try {
      const form = await api("PUT", `/forms/${encodeURIComponent(key)}`, { schema });
      history.replaceState(null, "", `${location.pathname}?key=${encodeURIComponent(form.key)}`);
      status.append(el("div", { class: "notice", "data-testid": "form-saved" }, text("form_saved", { key: form.key })));
      await loadList(form.key);
    } catch (error) {
      BPM.showProblem(problem, error);
    }
  }

  list.addEventListener("change", () => openKey(list.value));
  document.getElementById("save-form").addEventListener("click", save);
  document.addEventListener("keydown", (event) => {
    if ((event.ctrlKey || event.metaKey) && event.key === "s") { event.preventDefault(); save(); }
  });
  document.getElementById("open-form").addEventListener("change", async (event) => {
    const file = event.target.files[0];
    if (!file) return;
    clearMessages();
    try {
      const schema = JSON.parse(await file.text());
      keyInput.value = file.name.replace(/\.(form|json)$/, "");
      await importSchema(schema);
    } catch (error) {
      BPM.showProblem(problem, error);
    }
  });
  document.getElementById("download-form").addEventListener("click", () => {
    const schema = editor.saveSchema();
    const url = URL.createObjectURL(new Blob([JSON.stringify(schema, null, 2)], { type: "application/json" }));
    const link = el("a", { href: url, download: `${keyInput.value.trim() || schema.id || "form"}.form` });
    document.body.append(link);
    link.click();
    link.remove();
  });

  (async function main() {
    const key = page.dataset.key;
    await loadList(key);
    await openKey(key);
  })();
})();
