// The form-js editor: open a Camunda form JSON file, edit it, download it (forms ship in forms/ by form key).
(function () {
  "use strict";
  const EMPTY = { type: "default", id: "new_form", schemaVersion: 16, components: [
    { type: "textarea", key: "opinion", label: "Opinion" },
    { type: "checkbox", key: "approved", label: "Approved" }] };
  const editor = new window.FormEditor.FormEditor({ container: document.getElementById("form-editor") });
  editor.importSchema(EMPTY).catch((error) => BPM.showProblem(document.getElementById("problem"), error));

  document.getElementById("open-form").addEventListener("change", async (event) => {
    const file = event.target.files[0];
    if (!file) return;
    try {
      await editor.importSchema(JSON.parse(await file.text()));
    } catch (error) {
      BPM.showProblem(document.getElementById("problem"), error);
    }
  });
  document.getElementById("download-form").addEventListener("click", () => {
    const schema = editor.saveSchema();
    const url = URL.createObjectURL(new Blob([JSON.stringify(schema, null, 2)], { type: "application/json" }));
    const link = BPM.el("a", { href: url, download: `${schema.id || "form"}.form` });
    document.body.append(link);
    link.click();
    link.remove();
  });
})();
