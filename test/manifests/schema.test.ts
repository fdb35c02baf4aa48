// Every object of manifests/all-in-one.yaml is valid against the Kubernetes OpenAPI
// schemas and has no field the API does not know; and the validators do catch
// broken objects (so a pass means something).

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { loadManifest, type KubeObject } from "./manifest.js";
import { validateObject } from "./openapi.js";

const objects = loadManifest();

describe("all-in-one.yaml against the Kubernetes API schemas", () => {
  it("holds the objects the issue lists, each once", () => {
    const kinds = objects.map((o) => `${o.kind}/${o.metadata.name}`);
    assert.equal(new Set(kinds).size, kinds.length, `duplicates in ${kinds.join(", ")}`);
    for (const kind of ["Namespace", "ServiceAccount", "ClusterRole", "Role", "RoleBinding", "Secret", "Deployment", "PodDisruptionBudget", "Service", "MutatingWebhookConfiguration", "DaemonSet"]) {
      assert.ok(objects.some((o) => o.kind === kind), `no ${kind}`);
    }
  });

  for (const o of objects) {
    it(`${o.kind} ${o.metadata.name} is valid`, () => {
      assert.deepEqual(validateObject(o), []);
    });
  }
});

describe("the validators refuse broken objects", () => {
  const daemonSet = objects.find((o) => o.kind === "DaemonSet")!;
  const broken = (edit: (o: any) => void): KubeObject => {
    const copy = structuredClone(daemonSet);
    edit(copy);
    return copy;
  };

  it("a wrong type", () => {
    const problems = validateObject(broken((o) => (o.spec.template.spec.containers[0].ports[0].containerPort = "9465")));
    assert.match(problems.join("\n"), /containerPort must be integer/);
  });

  it("a missing required field", () => {
    const problems = validateObject(broken((o) => delete o.spec.selector));
    assert.match(problems.join("\n"), /must have required property 'selector'|required property selector/);
  });

  it("a value outside an enum", () => {
    const problems = validateObject(broken((o) => (o.spec.template.spec.securityContext.seccompProfile.type = "Default")));
    assert.match(problems.join("\n"), /seccompProfile\/type must be equal to one of the allowed values/);
  });

  it("a misspelt field, at any depth", () => {
    const problems = validateObject(broken((o) => (o.spec.template.spec.containers[0].env[0].valueFrom.fieldRef.fieldpath = "spec.nodeName")));
    assert.deepEqual(problems, ["unknown field .spec.template.spec.containers[0].env[0].valueFrom.fieldRef.fieldpath"]);
  });

  it("a kind it has no model for", () => {
    assert.match(validateObject({ ...daemonSet, apiVersion: "apps/v1", kind: "Frobnicator" }).join(), /no model for apps\/v1\/Frobnicator/);
  });
});
