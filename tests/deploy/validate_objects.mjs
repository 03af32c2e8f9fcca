// Validates Kubernetes objects (JSON on standard input: [{form, object}])
// against the Kubernetes object schemas of the npm package kubernetes-models.
//   node validate_objects.mjs NODE_MODULES
import path from "node:path";
import fs from "node:fs";
import { pathToFileURL } from "node:url";

const modules = process.argv[2];
// The package is ES modules only; its files are imported by path.
const byKind = {
  "v1/ConfigMap": "kubernetes-models/v1/ConfigMap.js",
  "v1/Service": "kubernetes-models/v1/Service.js",
  "apps/v1/Deployment": "kubernetes-models/apps/v1/Deployment.js",
};
const items = JSON.parse(fs.readFileSync(0, "utf8"));
let failed = 0;
for (const { form, object } of items) {
  const key = `${object.apiVersion}/${object.kind}`;
  const where = `${form}: ${object.kind} ${object.metadata?.name}`;
  if (!byKind[key]) {
    console.error(`${where}: no schema known here for ${key}`);
    failed++;
    continue;
  }
  const mod = await import(pathToFileURL(path.join(modules, byKind[key])).href);
  const Model = mod[object.kind];
  try {
    new Model(object).validate();
    console.log(`${where}: valid`);
  } catch (e) {
    console.error(`${where}: ${e.message}`);
    failed++;
  }
}
process.exit(failed ? 1 : 0);
