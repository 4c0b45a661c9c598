// Copy the front-end packages installed by npm into static/vendor/ (git-ignored), minifying the large UMD
// bundles of form-js. Run by `make setup` after `npm ci`; nothing here is committed.
import { cpSync, mkdirSync, rmSync, existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { buildSync } from "esbuild";

const here = dirname(fileURLToPath(import.meta.url));
const modules = join(here, "node_modules");
const vendor = join(here, "static", "vendor");

const copies = [
  ["bpmn-js/dist/bpmn-navigated-viewer.production.min.js", "bpmn-js/bpmn-navigated-viewer.js"],
  ["bpmn-js/dist/bpmn-modeler.production.min.js", "bpmn-js/bpmn-modeler.js"],
  ["bpmn-js/dist/assets", "bpmn-js/assets"],
  ["camunda-bpmn-moddle/resources/camunda.json", "camunda-bpmn-moddle/camunda.json"],
  ["@bpmn-io/form-js/dist/assets", "form-js/assets"],
  ["swagger-ui-dist/swagger-ui-bundle.js", "swagger-ui/swagger-ui-bundle.js"],
  ["swagger-ui-dist/swagger-ui-standalone-preset.js", "swagger-ui/swagger-ui-standalone-preset.js"],
  ["swagger-ui-dist/swagger-ui.css", "swagger-ui/swagger-ui.css"],
  ["swagger-ui-dist/favicon-32x32.png", "swagger-ui/favicon-32x32.png"],
];
const minified = [
  ["@bpmn-io/form-js/dist/form-viewer.umd.js", "form-js/form-viewer.js"],
  ["@bpmn-io/form-js/dist/form-editor.umd.js", "form-js/form-editor.js"],
];

rmSync(vendor, { recursive: true, force: true });
for (const [from, to] of copies) {
  const source = join(modules, from);
  if (!existsSync(source)) throw new Error(`missing ${from}: run npm ci in ${here}`);
  mkdirSync(dirname(join(vendor, to)), { recursive: true });
  cpSync(source, join(vendor, to), { recursive: true });
}
for (const [from, to] of minified) {
  buildSync({ entryPoints: [join(modules, from)], outfile: join(vendor, to), minify: true, bundle: false,
              logLevel: "error" });
}
console.log(`front-end packages copied to ${vendor}`);
