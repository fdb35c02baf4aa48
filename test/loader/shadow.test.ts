// loader/shadow.ts: the agent's picture of the pod maps, filed by owning cgroup, and
// the part of it a plan for some pods sees.

import { test } from "node:test";
import assert from "node:assert/strict";
import { desiredContents, emptyContents, POD_MAPS, type Contents } from "../../loader/plan.js";
import { Shadow } from "../../loader/shadow.js";
import { defaultInterception, parseRegistration, REGISTRATION_VERSION } from "../../registry/document.js";

const pod = (uid: string, cgroupId: bigint, ips: string[], ports: number[] = []) =>
  desiredContents([{ registration: parseRegistration({ version: REGISTRATION_VERSION, namespace: "ns", name: uid, uid, ips, interception: { ...defaultInterception(), controlPorts: [], excludeOutboundPorts: ports } }, uid), cgroupId }]).contents;
const union = (...cs: Contents[]): Contents => {
  const out = emptyContents();
  for (const c of cs) for (const m of POD_MAPS) for (const [k, v] of c[m]) out[m].set(k, v);
  return out;
};
const sizes = (c: Contents) => POD_MAPS.map((m) => c[m].size);

test("a view holds the owners' entries and the present value of each wanted key, nothing else", () => {
  const a = pod("a", 1n, ["10.0.0.1"], [22]);
  const b = pod("b", 2n, ["10.0.0.2"], [80, 81]);
  const c = pod("c", 3n, ["10.0.0.3"]);
  const s = Shadow.of(union(a, b, c));
  const rows: { name: string; owners: bigint[]; wanted: Contents; expected: Contents }[] = [
    { name: "one owner", owners: [2n], wanted: emptyContents(), expected: b },
    { name: "an owner with nothing", owners: [9n], wanted: emptyContents(), expected: emptyContents() },
    { name: "a new pod wanting c's IP sees c's entry for it", owners: [4n], wanted: pod("d", 4n, ["10.0.0.3"]), expected: { ...emptyContents(), mesh_pod_ips: c.mesh_pod_ips } },
    { name: "two owners", owners: [1n, 3n], wanted: a, expected: union(a, c) },
  ];
  for (const row of rows) assert.deepEqual(s.view(row.owners, row.wanted), row.expected, row.name);
  assert.deepEqual(s.all(), union(a, b, c));
});

test("puts and deletes keep sizes and owners: an IP taken over moves to its new owner", () => {
  const a = pod("a", 1n, ["10.0.0.1"], [22]);
  const s = Shadow.of(a);
  assert.deepEqual(POD_MAPS.map((m) => s.size(m)), sizes(a));
  const ip = [...pod("b", 2n, ["10.0.0.1"]).mesh_pod_ips][0]!;
  s.put("mesh_pod_ips", ip[0], ip[1]);
  assert.equal(s.size("mesh_pod_ips"), 1, "overwritten, not added");
  assert.equal(s.view([1n], emptyContents()).mesh_pod_ips.size, 0, "no longer a's");
  assert.deepEqual([...s.view([2n], emptyContents()).mesh_pod_ips], [ip]);
  for (const m of POD_MAPS) for (const k of a[m].keys()) s.delete(m, k);
  s.delete("mesh_pod_ips", ip[0]);
  s.delete("mesh_pod_ips", ip[0]);
  assert.deepEqual(POD_MAPS.map((m) => s.size(m)), [0, 0, 0, 0]);
  assert.deepEqual(s.view([1n, 2n], emptyContents()), emptyContents());
});
