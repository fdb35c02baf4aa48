// The registrar's pure judgements: which pods belong in the registry with what
// document (the webhook's decision run again on the pod must agree with its
// markings), and which changes make the registry objects right.

import { test } from "node:test";
import assert from "node:assert/strict";
import type { V1Pod } from "@kubernetes/client-node";
import { defaultInterception, parseRegistration } from "../../../registry/document.js";
import { ANNOTATION_INTERCEPTION, ANNOTATION_STATUS, POD_MARK_LABEL } from "../../../registry/names.js";
import { desiredFor, type Registered } from "../../../webhook/registrar/desired.js";
import { planRepairs } from "../../../webhook/registrar/repair.js";
import { injectedPod, markedPod } from "../../../lab/marked-pod.js";

/** A marked pod running on a node with IPs, then changed by `edit`. */
function pod(name: string, over: { node?: string; ips?: string[]; phase?: string } = {}, edit: (p: V1Pod) => void = () => undefined): V1Pod {
  const p = markedPod(injectedPod(name));
  p.metadata!.uid = `uid-${name}`;
  if (over.node !== "") p.spec!.nodeName = over.node ?? "node-a";
  p.status = { phase: over.phase ?? "Running", podIPs: (over.ips ?? ["10.0.0.5"]).map((ip) => ({ ip })) };
  edit(p);
  return p;
}
const annotate = (key: string, value: string | undefined) => (p: V1Pod) => {
  if (value === undefined) delete p.metadata!.annotations![key];
  else p.metadata!.annotations![key] = value;
};

test("a marked, running pod with an IP on a node is registered under its UID, with the decision's settings", () => {
  const d = desiredFor(pod("web", { ips: ["10.0.0.5", "fd00:0:0::5"] }));
  assert.ok(d.registered, !d.registered ? d.why : "");
  assert.equal(d.registration.node, "node-a");
  assert.equal(d.registration.uid, "uid-web");
  const doc = parseRegistration(JSON.parse(d.registration.document), "uid-web");
  assert.deepEqual(doc.ips.map((ip) => ip.address), ["10.0.0.5", "fd00::5"], "IPs in canonical form");
  assert.equal(doc.namespace, "shop");
  assert.deepEqual(doc.interception.excludeInboundPorts, [15020, 15021, 15090], "istio-init's -d, as the webhook derived it");
});

test("the same pod always gives the same document text", () => {
  const a = desiredFor(pod("web"));
  const b = desiredFor(pod("web"));
  assert.ok(a.registered && b.registered);
  assert.equal(a.registration.document, b.registration.document);
});

test("not registered, and not refused: unmarked, skipped, unbound, no IP yet, finished", () => {
  const plain = injectedPod("plain");
  plain.metadata!.uid = "u";
  plain.spec!.nodeName = "node-a";
  plain.status = { podIP: "10.0.0.9" };
  const cases: [V1Pod, RegExp][] = [
    [plain, /not marked/],
    [pod("skipped", {}, annotate(ANNOTATION_STATUS, "skipped")), /not marked/],
    [pod("pending", { node: "" }), /not bound/],
    [pod("starting", { ips: [] }), /no IP yet/],
    [pod("done", { phase: "Succeeded" }), /finished \(Succeeded\)/],
    [pod("crashed", { phase: "Failed" }), /finished \(Failed\)/],
  ];
  for (const [p, why] of cases) {
    const d = desiredFor(p);
    assert.ok(!d.registered, p.metadata!.name);
    assert.match(d.why, why, p.metadata!.name);
    assert.equal(d.refused, undefined, `${p.metadata!.name}: merely not ready, not refused`);
  }
});

test("re-check: markings the webhook's decision does not agree with are refused, whatever they say", () => {
  const tampered = JSON.stringify({ ...defaultInterception(), excludeInboundPorts: [] });
  const cases: [string, V1Pod, RegExp][] = [
    ["interception edited after admission", pod("edited", {}, annotate(ANNOTATION_INTERCEPTION, tampered)), /accelerated.*would change replace \/metadata\/annotations\/meshlane.io~1interception/],
    ["interception not JSON", pod("garbled", {}, annotate(ANNOTATION_INTERCEPTION, "{not json")), /would change replace \/metadata\/annotations\/meshlane.io~1interception/],
    ["interception removed", pod("bare", {}, annotate(ANNOTATION_INTERCEPTION, undefined)), /would change add \/metadata\/annotations\/meshlane.io~1interception/],
    ["label removed", pod("unlabelled", {}, (p) => delete p.metadata!.labels![POD_MARK_LABEL]), /would change add \/metadata\/labels\/meshlane.io~1status/],
    ["opted out after admission", pod("optout", {}, (p) => (p.metadata!.labels!["meshlane.io/accelerate"] = "false")), /decision now is skipped \(opt-out/],
    ["marked by hand, never injected", pod("forged", {}, (p) => (p.spec!.containers = [{ name: "app", image: "app:1" }])), /decision now is skipped \(not-injected/],
    ["capture arguments changed", pod("args", {}, (p) => (p.spec!.initContainers![0]!.args = ["istio-iptables", "-p", "15001", "-z", "15006", "-u", "1337", "-m", "REDIRECT", "-i", "*", "-x", "", "-b", "*", "-d", "15090,15021,15020,8080"])), /decision now is skipped \(capture-mismatch/],
  ];
  for (const [what, p, why] of cases) {
    const d = desiredFor(p);
    assert.ok(!d.registered, what);
    assert.equal(d.refused, "decision-disagrees", what);
    assert.match(d.why, why, what);
  }
});

test("a pod IP that is not an address is refused as bad-pod-ip", () => {
  const d = desiredFor(pod("odd", { ips: ["10.0.0.300"] }));
  assert.ok(!d.registered);
  assert.equal(d.refused, "bad-pod-ip");
});

test("status.podIP is used when status.podIPs is absent", () => {
  const p = pod("old");
  p.status = { phase: "Running", podIP: "10.0.0.7" };
  const d = desiredFor(p);
  assert.ok(d.registered);
  assert.deepEqual(JSON.parse(d.registration.document).ips, ["10.0.0.7"]);
});

test("planRepairs: missing objects are written, stale ones rewritten (document or node), strays deleted", () => {
  const want = (uid: string, node: string, document: string): [string, Registered] => [uid, { uid, node, document }];
  const desired = new Map([want("u1", "node-a", "d1"), want("u2", "node-a", "d2"), want("u3", "node-a", "d3"), want("u4", "node-b", "d4")]);
  const actual = [
    { uid: "u1", node: "node-a", document: "d1" },
    { uid: "u2", node: "node-a", document: "old" },
    { uid: "u4", node: "node-c", document: "d4" },
    { uid: "gone", node: "node-c", document: "x" },
  ];
  const r = planRepairs(actual, desired);
  assert.deepEqual([...r.changes], [
    ["u2", { node: "node-a", document: "d2" }],
    ["u3", { node: "node-a", document: "d3" }],
    ["u4", { node: "node-b", document: "d4" }],
    ["gone", { node: "node-c", document: null }],
  ]);
  assert.deepEqual([r.missing, r.stale, r.stray], [1, 2, 1]);
  assert.equal(planRepairs([{ uid: "u1", node: "node-a", document: "d1" }], new Map([want("u1", "node-a", "d1")])).changes.size, 0, "nothing to do is no change");
});
