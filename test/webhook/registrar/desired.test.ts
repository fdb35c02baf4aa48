// The registrar's pure judgements: which pods belong in the registry with what
// value, and which key changes make a node's ConfigMap right.

import { test } from "node:test";
import assert from "node:assert/strict";
import type { V1Pod } from "@kubernetes/client-node";
import { defaultInterception, validateRegistration } from "../../../registry/document.js";
import { ANNOTATION_INTERCEPTION, ANNOTATION_STATUS } from "../../../registry/names.js";
import { desiredByNode, desiredFor } from "../../../webhook/registrar/desired.js";
import { planRepairs } from "../../../webhook/registrar/repair.js";

function pod(name: string, over: { uid?: string; node?: string; ips?: string[]; phase?: string; status?: string; interception?: string } = {}): V1Pod {
  const uid = over.uid ?? `uid-${name}`;
  return {
    metadata: {
      name,
      namespace: "shop",
      uid,
      annotations: {
        [ANNOTATION_STATUS]: over.status ?? "accelerated",
        [ANNOTATION_INTERCEPTION]: over.interception ?? JSON.stringify(defaultInterception()),
      },
    },
    spec: { containers: [], ...(over.node === "" ? {} : { nodeName: over.node ?? "node-a" }) },
    status: { phase: over.phase ?? "Running", podIPs: (over.ips ?? ["10.0.0.5"]).map((ip) => ({ ip })) },
  };
}

test("a marked, running pod with an IP on a node is registered under its UID with the validated document", () => {
  const d = desiredFor(pod("web", { ips: ["10.0.0.5", "fd00:0:0::5"] }));
  assert.ok(d.registered);
  assert.equal(d.placement.node, "node-a");
  assert.equal(d.placement.key, "uid-web");
  const doc = validateRegistration(JSON.parse(d.placement.value), "uid-web");
  assert.deepEqual(doc.ips, ["10.0.0.5", "fd00::5"], "IPs in canonical form");
  assert.equal(doc.namespace, "shop");
  assert.deepEqual(doc.interception, defaultInterception());
});

test("the same pod always gives the same value text, whatever the annotation's key order", () => {
  const reordered = JSON.stringify(Object.fromEntries(Object.entries(defaultInterception()).reverse()));
  const a = desiredFor(pod("web"));
  const b = desiredFor(pod("web", { interception: reordered }));
  assert.ok(a.registered && b.registered);
  assert.equal(a.placement.value, b.placement.value);
});

test("not registered: unmarked, skipped, unbound, no IP yet, finished, or a mark that does not validate", () => {
  const cases: [V1Pod, RegExp][] = [
    [{ metadata: { name: "plain", namespace: "shop", uid: "u" }, spec: { containers: [], nodeName: "node-a" }, status: { podIP: "10.0.0.9" } }, /not marked/],
    [pod("skipped", { status: "skipped" }), /not marked/],
    [pod("pending", { node: "" }), /not bound/],
    [pod("starting", { ips: [] }), /no IP yet/],
    [pod("done", { phase: "Succeeded" }), /finished \(Succeeded\)/],
    [pod("crashed", { phase: "Failed" }), /finished \(Failed\)/],
    [pod("garbled", { interception: "{not json" }), /cannot be registered: .*JSON/],
    [pod("tampered", { interception: JSON.stringify({ ...defaultInterception(), outboundPort: 0 }) }), /cannot be registered: .*outboundPort/],
  ];
  for (const [p, why] of cases) {
    const d = desiredFor(p);
    assert.equal(d.registered, false, p.metadata!.name);
    assert.match((d as { why: string }).why, why, p.metadata!.name);
  }
  const garbled = desiredFor(pod("garbled", { interception: "{not json" }));
  assert.equal(!garbled.registered && garbled.invalid, true, "an unusable mark is told apart from a pod that is merely not ready");
});

test("status.podIP is used when status.podIPs is absent", () => {
  const p = pod("old");
  p.status = { phase: "Running", podIP: "10.0.0.7" };
  const d = desiredFor(p);
  assert.ok(d.registered);
  assert.deepEqual(JSON.parse(d.placement.value).ips, ["10.0.0.7"]);
});

test("desiredByNode groups registered pods by node and leaves the others out", () => {
  const byNode = desiredByNode([pod("a1"), pod("a2"), pod("b1", { node: "node-b" }), pod("done", { phase: "Failed" })]);
  assert.deepEqual([...byNode.keys()].sort(), ["node-a", "node-b"]);
  assert.deepEqual([...byNode.get("node-a")!.keys()].sort(), ["uid-a1", "uid-a2"]);
  assert.deepEqual([...byNode.get("node-b")!.keys()], ["uid-b1"]);
});

test("planRepairs: missing keys and deleted ConfigMaps are set, stale values replaced, stray keys removed", () => {
  const desired = new Map([
    ["node-a", new Map([["u1", "v1"], ["u2", "v2"], ["u3", "v3"]])],
    ["node-b", new Map([["u4", "v4"]])],
  ]);
  const actual = new Map<string, Record<string, string>>([
    ["node-a", { u1: "v1", u2: "old", gone: "x" }],
    ["node-c", { moved: "y" }],
  ]);
  const repairs = planRepairs(actual, desired);
  const byNode = Object.fromEntries(repairs.map((r) => [r.node, r]));
  assert.deepEqual([...byNode["node-a"]!.changes], [["u2", "v2"], ["u3", "v3"], ["gone", null]]);
  assert.deepEqual([byNode["node-a"]!.missing, byNode["node-a"]!.stale, byNode["node-a"]!.stray], [1, 1, 1]);
  assert.deepEqual([...byNode["node-b"]!.changes], [["u4", "v4"]], "a node without a ConfigMap gets all its keys");
  assert.deepEqual([...byNode["node-c"]!.changes], [["moved", null]], "a node with no pods left loses its keys");
  assert.deepEqual(planRepairs(new Map([["node-b", { u4: "v4" }]]), new Map([["node-b", new Map([["u4", "v4"]])]])), [], "nothing to do is no repair");
});
