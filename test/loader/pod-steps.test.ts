// loader/pod-steps.ts: a reconcile cut into per-pod steps, its order for traffic, and
// the room check, as tables.

import { test } from "node:test";
import assert from "node:assert/strict";
import { desiredContents, emptyContents, type Contents } from "../../loader/plan.js";
import { ownerOf, planSteps, shortfall, type PerMap } from "../../loader/pod-steps.js";
import { defaultInterception, parseRegistration, REGISTRATION_VERSION, type ParsedRegistration, type Registration } from "../../registry/document.js";
import { MAPS } from "../../loader/maps/codecs.js";

/** Without control ports unless asked: each would be one more port rule in every table below. */
function reg(uid: string, ips: string[], ic: Partial<Registration["interception"]> = {}): ParsedRegistration {
  return parseRegistration({ version: REGISTRATION_VERSION, namespace: "ns", name: uid, uid, ips, interception: { ...defaultInterception(), controlPorts: [], ...ic } }, uid);
}
const want = (uid: string, cgroupId: bigint, ips: string[], ic: Partial<Registration["interception"]> = {}) => ({
  uid,
  cgroupId,
  contents: desiredContents([{ registration: reg(uid, ips, ic), cgroupId }]).contents,
});
/** What the maps hold after all of these pods were written. */
const holding = (...pods: ReturnType<typeof want>[]): Contents => {
  const c = emptyContents();
  for (const p of pods) for (const [m, entries] of Object.entries(p.contents)) for (const [k, v] of entries) c[m as keyof Contents].set(k, v);
  return c;
};
const ops = (list: { op: string; map: string }[]) => list.map((o) => `${o.op} ${o.map}`);
const none: PerMap = { mesh_pods: 0, mesh_pod_ips: 0, mesh_ports: 0, mesh_cidrs: 0 };

test("each entry of a pod map belongs to the cgroup in its key, or (IPs) in its value", () => {
  const a = want("a", 7n, ["10.0.0.1"], { excludeOutboundPorts: [22], excludeOutboundIPRanges: ["10.9.0.0/16"] });
  for (const [map, entries] of Object.entries(a.contents) as [keyof Contents, Map<string, string>][]) {
    for (const [k, v] of entries) assert.equal(ownerOf(map, Buffer.from(k, "hex"), Buffer.from(v, "hex")), 7n, map);
  }
});

test("steps: a new pod switches on last, a gone pod switches off first, unchanged pods write nothing", () => {
  const a = want("a", 1n, ["10.0.0.1"], { excludeOutboundPorts: [22] });
  const b = want("b", 2n, ["10.0.0.2"], { excludeOutboundPorts: [22, 23] });
  const cases: { name: string; current: Contents; wanted: ReturnType<typeof want>[]; switchOff: string[]; removed: string[]; pods: Record<string, [string[], string[]]> }[] = [
    { name: "from empty", current: emptyContents(), wanted: [a], switchOff: [], removed: [], pods: { a: [["put mesh_ports", "put mesh_pod_ips", "put mesh_pods"], []] } },
    { name: "nothing changed", current: holding(a, b), wanted: [a, b], switchOff: [], removed: [], pods: { a: [[], []], b: [[], []] } },
    { name: "b goes", current: holding(a, b), wanted: [a], switchOff: ["delete mesh_pods"], removed: ["delete mesh_pod_ips", "delete mesh_ports", "delete mesh_ports"], pods: { a: [[], []] } },
    {
      name: "a's rules change",
      current: holding(a),
      wanted: [want("a", 1n, ["10.0.0.1"], { excludeOutboundPorts: [80] })],
      switchOff: [],
      removed: [],
      pods: { a: [["put mesh_ports"], ["delete mesh_ports"]] },
    },
  ];
  for (const c of cases) {
    const plan = planSteps(c.current, c.wanted);
    assert.deepEqual(ops(plan.switchOff), c.switchOff, c.name);
    assert.deepEqual(ops(plan.removed), c.removed, c.name);
    assert.deepEqual(Object.fromEntries(plan.pods.map((p) => [p.uid, [ops(p.puts), ops(p.deletes)]])), c.pods, c.name);
  }
});

test("an IP that moves from a gone pod to a new one is overwritten, never deleted after it was written", () => {
  const old = want("old", 1n, ["10.0.0.9"]);
  const plan = planSteps(holding(old), [want("new", 2n, ["10.0.0.9"])]);
  assert.deepEqual(ops(plan.switchOff), ["delete mesh_pods"]);
  assert.deepEqual(ops(plan.removed), [], "the IP entry is the new pod's now");
  assert.deepEqual(ops(plan.pods[0]!.puts), ["put mesh_pod_ips", "put mesh_pods"]);
  assert.deepEqual(plan.pods[0]!.newKeys, { ...none, mesh_pods: 1 }, "the IP key exists already: only the pod entry needs room");
});

test("new keys count the room a pod needs; overwrites need none", () => {
  const a = want("a", 1n, ["10.0.0.1", "fd00::1"], { excludeOutboundPorts: [22, 23], excludeOutboundIPRanges: ["10.9.0.0/16"] });
  assert.deepEqual(planSteps(emptyContents(), [a]).pods[0]!.newKeys, { mesh_pods: 1, mesh_pod_ips: 2, mesh_ports: 2, mesh_cidrs: 1 });
  const changed = want("a", 1n, ["10.0.0.1", "fd00::1"], { excludeOutboundPorts: [22, 23], excludeOutboundIPRanges: ["10.9.0.0/16"], proxyUid: 1000 });
  const step = planSteps(holding(a), [changed]).pods[0]!;
  assert.deepEqual(ops(step.puts), ["put mesh_pods"], "only the pod entry's value changed");
  assert.deepEqual(step.newKeys, none);
});

test("shortfall names the first map a pod does not fit", () => {
  const rows: [PerMap, PerMap, ReturnType<typeof shortfall>][] = [
    [{ ...none, mesh_ports: 3 }, { ...none, mesh_ports: 3 }, null],
    [{ ...none, mesh_ports: 4 }, { ...none, mesh_ports: 3 }, { map: "mesh_ports", need: 4, free: 3 }],
    [{ ...none, mesh_pods: 1, mesh_cidrs: 2 }, { mesh_pods: 0, mesh_pod_ips: 9, mesh_ports: 9, mesh_cidrs: 0 }, { map: "mesh_pods", need: 1, free: 0 }],
    [none, none, null],
  ];
  for (const [need, free, expected] of rows) assert.deepEqual(shortfall(need, free), expected);
});

test("the pod maps are the map table's registry maps", () => {
  assert.deepEqual(Object.keys(emptyContents()).sort(), Object.entries(MAPS).filter(([, s]) => s.role === "registry").map(([n]) => n).sort());
});

test("a pod whose write fails is undone: new keys deleted, overwritten ones restored, in reverse order", async () => {
  const { applyPod } = await import("../../loader/sync.js");
  const { MapError } = await import("../../loader/map-handle.js");
  const { BpfError } = await import("../../loader/libbpf.js");
  const before = want("a", 1n, ["10.0.0.1"], { excludeOutboundPorts: [22] });
  const after = want("a", 1n, ["10.0.0.1"], { excludeOutboundPorts: [22, 23], proxyUid: 1000 });
  const step = planSteps(holding(before), [after]).pods[0]!;
  assert.deepEqual(ops(step.puts), ["put mesh_ports", "put mesh_pods"]);
  const calls: string[] = [];
  const fake = (map: string) => ({
    updateRaw: (k: Buffer, v: Buffer) => calls.push(`put ${map} ${k.toString("hex")}=${v.toString("hex")}`),
    deleteRaw: (k: Buffer) => (calls.push(`delete ${map} ${k.toString("hex")}`), true),
  });
  const maps = Object.fromEntries(["mesh_pods", "mesh_pod_ips", "mesh_ports", "mesh_cidrs"].map((m) => [m, fake(m)])) as never;
  let n = 0;
  const failing = (op: { map: string; op: string; key: Buffer; value?: Buffer }) => {
    if (++n === 2) throw new MapError("mesh_pods", "1", new BpfError("bpf_map_update_elem", 12));
    calls.push(`${op.op} ${op.map}`);
  };
  const problem = applyPod(step, holding(before), maps, failing as never);
  assert.match(problem!.problem, /^map mesh_pods, key 1: bpf_map_update_elem failed: ENOMEM/);
  assert.equal(problem!.undone, true);
  const portKey = step.puts[0]!.key.toString("hex");
  assert.deepEqual(calls, ["put mesh_ports", `delete mesh_ports ${portKey}`], "the new port rule is taken out again; the pod entry was never changed");

  // An IP taken over from a pod that went away is given back to it.
  const old = want("old", 9n, ["10.0.0.9"]);
  const takeover = planSteps(holding(old), [want("new", 2n, ["10.0.0.9"])]).pods[0]!;
  n = 0;
  calls.length = 0;
  applyPod(takeover, holding(old), maps, failing as never);
  const [ipKey, oldOwner] = [...old.contents.mesh_pod_ips][0]!;
  assert.deepEqual(calls, ["put mesh_pod_ips", `put mesh_pod_ips ${ipKey}=${oldOwner}`]);

  n = 0;
  calls.length = 0;
  assert.equal(applyPod(step, holding(before), maps, (op) => void calls.push(`${op.op} ${op.map}`)), null);
  assert.deepEqual(calls, ["put mesh_ports", "put mesh_pods"]);
});

test("map errors name the map and the key's fields, padding left out", async () => {
  const { describeKey } = await import("../../loader/map-handle.js");
  assert.equal(describeKey(MAPS.mesh_ports.key.decode(MAPS.mesh_ports.key.encode({ cgroup_id: 42n, port: 22, list: 1 }))), "{cgroup_id: 42, port: 22, list: 1}");
  assert.equal(describeKey(7n), "7");
});

test("the pods a change can affect: linked through claimed IPs, transitively, also through the IPs a pod had", async () => {
  const { conflictGroup } = await import("../../loader/pod-steps.js");
  const ips: Record<string, string[]> = { a: ["1"], b: ["1", "2"], c: ["2"], d: ["3"], e: ["4"] };
  const claims = new Map<string, Set<string>>();
  for (const [uid, list] of Object.entries(ips)) for (const ip of list) (claims.get(ip) ?? claims.set(ip, new Set()).get(ip)!).add(uid);
  const rows: [string[], string[], string[]][] = [
    [["a"], [], ["a", "b", "c"]],
    [["d"], [], ["d"]],
    [[], ["3"], ["d"]],
    [["e"], ["2"], ["b", "c", "e", "a"]],
    [[], ["9"], []],
  ];
  for (const [changed, addresses, expected] of rows) {
    assert.deepEqual([...conflictGroup(changed, addresses, claims, (uid) => ips[uid]!)].sort(), expected.sort(), `${changed} ${addresses}`);
  }
});
