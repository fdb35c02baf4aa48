import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ApiError } from "./apiserver/errors.js";
import { RESOURCE_TYPES, type KubeObject } from "./apiserver/resources.js";
import {
  labelSelectorRequirements, matchesFields, matchesLabels, parseFieldSelector, parseLabelSelector,
} from "./apiserver/selectors.js";

const pods = RESOURCE_TYPES.find((t) => t.plural === "pods")!;
const configMaps = RESOURCE_TYPES.find((t) => t.plural === "configmaps")!;

function matches(selector: string, labels: Record<string, string> | undefined): boolean {
  return matchesLabels(parseLabelSelector(selector), labels);
}

describe("label selectors", () => {
  const web = { app: "web", tier: "front", "meshlane.io/accelerate": "enabled" };

  it("matches equality, inequality and both spellings of equals", () => {
    assert.equal(matches("app=web", web), true);
    assert.equal(matches("app==web", web), true);
    assert.equal(matches("app=db", web), false);
    assert.equal(matches("app!=db", web), true);
    assert.equal(matches("app!=web", web), false);
  });

  it("lets != and notin match objects without the label, as the real server does", () => {
    assert.equal(matches("team!=x", web), true);
    assert.equal(matches("team notin (x,y)", web), true);
    assert.equal(matches("team!=x", undefined), true);
  });

  it("matches set membership with spaces inside the parentheses", () => {
    assert.equal(matches("tier in (back, front)", web), true);
    assert.equal(matches("tier in (back)", web), false);
    assert.equal(matches("tier notin (back, front)", web), false);
  });

  it("matches existence and absence, with prefixed keys", () => {
    assert.equal(matches("meshlane.io/accelerate", web), true);
    assert.equal(matches("!meshlane.io/accelerate", web), false);
    assert.equal(matches("!team", web), true);
  });

  it("requires every comma-separated term; commas inside a set do not split", () => {
    assert.equal(matches("app=web,tier in (front,back),!team", web), true);
    assert.equal(matches("app=web,tier in (front,back),team", web), false);
    assert.equal(matches("", web), true);
  });

  it("rejects malformed terms with a 400 BadRequest", () => {
    for (const bad of ["app=we b", "app in web", "=web", "app>1"]) {
      assert.throws(() => parseLabelSelector(bad), (err: unknown) =>
        err instanceof ApiError && err.code === 400 && err.status.reason === "BadRequest", bad);
    }
  });

  it("turns metav1.LabelSelector objects into the same requirements", () => {
    const requirements = labelSelectorRequirements({
      matchLabels: { app: "web" },
      matchExpressions: [{ key: "tier", operator: "In", values: ["front"] }, { key: "team", operator: "DoesNotExist" }],
    });
    assert.equal(matchesLabels(requirements, web), true);
    assert.equal(matchesLabels(requirements, { ...web, team: "a" }), false);
    assert.deepEqual(labelSelectorRequirements(undefined), []);
    assert.throws(() => labelSelectorRequirements({ matchExpressions: [{ key: "a", operator: "In", values: [] }] }), /non-empty/);
    assert.throws(() => labelSelectorRequirements({ matchExpressions: [{ key: "a", operator: "Gt" }] }), /not one of/);
  });
});

describe("field selectors", () => {
  const pod = { metadata: { name: "web-1", namespace: "shop" }, spec: { nodeName: "node-a" }, status: { phase: "Running" } } as KubeObject;
  const unscheduled = { metadata: { name: "web-2", namespace: "shop" }, spec: {} } as KubeObject;
  const fieldMatch = (selector: string, obj: KubeObject) => matchesFields(parseFieldSelector(selector, pods), obj);

  it("selects pods by name, namespace, node and phase", () => {
    assert.equal(fieldMatch("metadata.name=web-1", pod), true);
    assert.equal(fieldMatch("metadata.namespace==shop,spec.nodeName=node-a", pod), true);
    assert.equal(fieldMatch("spec.nodeName=node-b", pod), false);
    assert.equal(fieldMatch("status.phase!=Succeeded", pod), true);
  });

  it("treats an absent field as the empty string, so spec.nodeName= finds unscheduled pods", () => {
    assert.equal(fieldMatch("spec.nodeName=", unscheduled), true);
    assert.equal(fieldMatch("spec.nodeName=", pod), false);
  });

  it("refuses fields the type does not index with the real server's message", () => {
    assert.throws(() => parseFieldSelector("spec.nodeName=a", configMaps), (err: unknown) =>
      err instanceof ApiError && err.code === 400 && err.message === "field label not supported: spec.nodeName");
    assert.throws(() => parseFieldSelector("metadata.name", pods), /invalid field selector term/);
  });
});
