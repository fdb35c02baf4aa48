// loader/sync.ts: a change applied against the shadow leaves the maps and every
// pod's state exactly as a full sync of the whole registry would, step after step
// (conflicts won and given back, invalid and newer documents, late cgroups, full
// maps). The maps are in-memory stand-ins with the handles' raw interface; cgroups
// are directories of a scratch kubepods tree.

import { after, test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { POD_MAPS, type PodMap } from "../../loader/plan.js";
import { changedKeys, GONE, NodeSync, type Changes, type PodMaps, type SyncReport } from "../../loader/sync.js";
import { defaultInterception, REGISTRATION_VERSION, type Registration } from "../../registry/document.js";

class MemoryMap {
  readonly entries = new Map<string, string>();
  constructor(private readonly max: number) {}
  *rawEntries(): Generator<[Buffer, Buffer]> {
    for (const [k, v] of this.entries) yield [Buffer.from(k, "hex"), Buffer.from(v, "hex")];
  }
  updateRaw(k: Buffer, v: Buffer): void {
    if (!this.entries.has(k.toString("hex")) && this.entries.size >= this.max) throw new Error("E2BIG");
    this.entries.set(k.toString("hex"), v.toString("hex"));
  }
  deleteRaw(k: Buffer): boolean {
    return this.entries.delete(k.toString("hex"));
  }
  capacity(): number {
    return this.max;
  }
}
type Memory = Record<PodMap, MemoryMap>;
const memory = (ports = 1000): Memory => Object.fromEntries(POD_MAPS.map((m) => [m, new MemoryMap(m === "mesh_ports" ? ports : 1000)])) as Memory;
const copy = (m: Memory): Memory => {
  const c = memory(m.mesh_ports.capacity());
  for (const map of POD_MAPS) for (const [k, v] of m[map].entries) c[map].entries.set(k, v);
  return c;
};
const dump = (m: Memory) => Object.fromEntries(POD_MAPS.map((map) => [map, [...m[map].entries].sort()]));
const states = (r: SyncReport) => Object.fromEntries(r.pods.map((p) => [p.uid, `${p.state}/${p.reason}`]));

const kubepods = mkdtempSync(join(tmpdir(), "kubepods-"));
after(() => rmSync(kubepods, { recursive: true, force: true }));
const cgroup = (uid: string) => mkdirSync(join(kubepods, `pod${uid}`), { recursive: true });

/** Without control ports unless asked: each would be one more port rule. */
const doc = (uid: string, ips: string[], ic: Partial<Registration["interception"]> = {}, version = REGISTRATION_VERSION) => ({
  version,
  namespace: "ns",
  name: `pod-${uid}`,
  uid,
  ips,
  interception: { ...defaultInterception(), controlPorts: [], ...ic },
});

test("changed keys of a whole new read: new, changed and gone documents, not the unchanged ones", () => {
  const applied = new Map<string, unknown>([["a", { x: 1 }], ["b", { x: 2 }], ["c", "text"]]);
  const rows: [Record<string, unknown>, [string, unknown][]][] = [
    [{ a: { x: 1 }, b: { x: 2 }, c: "text" }, []],
    [{ a: { x: 1 }, b: { x: 3 }, c: "text" }, [["b", { x: 3 }]]],
    [{ a: { x: 1 }, c: "text", d: undefined }, [["d", undefined], ["b", GONE]]],
    [{}, [["a", GONE], ["b", GONE], ["c", GONE]]],
  ];
  for (const [now, expected] of rows) assert.deepEqual([...changedKeys(applied, now)], expected, JSON.stringify(now));
});

test("each change, applied alone, leaves maps and states as a full sync of the registry would", () => {
  for (const uid of ["0a", "a", "b", "c", "d"]) cgroup(uid);
  const steps: { name: string; changes: [string, unknown][]; expect: Record<string, string>; prepare?: () => void }[] = [
    { name: "two pods", changes: [["a", doc("a", ["10.0.0.1"], { excludeOutboundPorts: [22] })], ["b", doc("b", ["10.0.0.2", "fd00::2"])]], expect: { a: "registered/applied", b: "registered/applied" } },
    { name: "a later UID claims b's IP", changes: [["c", doc("c", ["10.0.0.2", "10.0.0.9"])]], expect: { c: "conflict/ip-taken" } },
    { name: "b moves to another IP: c gets its IPs", changes: [["b", doc("b", ["10.0.0.3"])]], expect: { b: "registered/applied", c: "registered/applied" } },
    { name: "an earlier UID claims a's IP: a is taken out", changes: [["0a", doc("0a", ["10.0.0.1"])]], expect: { "0a": "registered/applied", a: "conflict/ip-taken" } },
    { name: "it goes away: a is back", changes: [["0a", GONE]], expect: { a: "registered/applied" } },
    { name: "a's rules change", changes: [["a", doc("a", ["10.0.0.1"], { excludeOutboundPorts: [23, 24], excludeOutboundIPRanges: ["10.9.0.0/16"] })]], expect: { a: "registered/applied" } },
    { name: "b's document turns invalid: its entries go", changes: [["b", { ...doc("b", ["10.0.0.3"]), ips: ["nope"] }]], expect: { b: "invalid/invalid-document" } },
    { name: "a newer version", changes: [["b", doc("b", ["10.0.0.3"], {}, REGISTRATION_VERSION + 1)]], expect: { b: "invalid/newer-version" } },
    { name: "a pod without its cgroup yet", changes: [["e", doc("e", ["10.0.0.5"])]], expect: { e: "pending-cgroup/no-cgroup" } },
    { name: "its cgroup appears and it is retried", prepare: () => cgroup("e"), changes: [["e", doc("e", ["10.0.0.5"])]], expect: { e: "registered/applied" } },
    { name: "a pod whose rules do not fit", changes: [["d", doc("d", ["10.0.0.4"], { excludeInboundPorts: Array.from({ length: 1000 }, (_, i) => i + 1) })]], expect: { d: "not-applied/map-full" } },
    { name: "everything goes", changes: ["a", "b", "c", "d", "e"].map((k) => [k, GONE]), expect: {} },
  ];
  const maps = memory();
  const sync = new NodeSync(maps as unknown as PodMaps, kubepods);
  sync.full({});
  const registry: Record<string, unknown> = {};
  for (const step of steps) {
    step.prepare?.();
    const changes: Changes = new Map(step.changes);
    for (const [k, v] of changes) {
      if (v === GONE) delete registry[k];
      else registry[k] = v;
    }
    const r = sync.update(changes);
    for (const [uid, state] of Object.entries(step.expect)) assert.equal(states(r)[uid], state, `${step.name}: ${uid}`);
    const fresh = copy(maps);
    const full = new NodeSync(fresh as unknown as PodMaps, kubepods).full(registry);
    assert.deepEqual(states(r), states(full), `${step.name}: states`);
    assert.deepEqual([full.writes, full.deletes], [0, 0], `${step.name}: a full sync finds nothing to write`);
    assert.deepEqual(dump(fresh), dump(maps), step.name);
    const resync = sync.full(registry);
    assert.deepEqual([resync.writes, resync.deletes, states(resync)], [0, 0, states(full)], `${step.name}: a resync finds nothing to do`);
  }
  assert.deepEqual(dump(maps), dump(memory()), "empty at the end");
});

test("a change touches only its own pod's entries, and a full sync repairs what was edited by hand", () => {
  cgroup("p1");
  cgroup("p2");
  const maps = memory();
  const sync = new NodeSync(maps as unknown as PodMaps, kubepods);
  sync.full({ p1: doc("p1", ["10.1.0.1"]) });
  const r = sync.update(new Map([["p2", doc("p2", ["10.1.0.2"])]]));
  assert.deepEqual(r.touched, ["p2"]);
  assert.equal(r.writes, 2, "p2's IP and pod entry");
  // A hand edit the shadow cannot know of: p1's IP deleted behind the agent's back.
  maps.mesh_pod_ips.entries.clear();
  assert.equal(sync.update(new Map([["p2", doc("p2", ["10.1.0.2"])]])).writes, 0, "an unchanged pod writes nothing");
  const repaired = sync.full({ p1: doc("p1", ["10.1.0.1"]), p2: doc("p2", ["10.1.0.2"]) });
  assert.equal(repaired.writes, 2, "both IPs written back");
  assert.equal(maps.mesh_pod_ips.entries.size, 2);
});

test("a resync reads the maps and cgroups as the truth: foreign entries go, lost ones come back, a vanished cgroup is seen", () => {
  for (const uid of ["r1", "r2"]) cgroup(uid);
  const maps = memory();
  const sync = new NodeSync(maps as unknown as PodMaps, kubepods);
  const registry = { r1: doc("r1", ["10.3.0.1"], { excludeOutboundPorts: [22] }), r2: doc("r2", ["10.3.0.2"]) };
  sync.full(registry);
  const before = dump(maps);
  // Someone else's entries (a cgroup no registration has) and one of r1's lost.
  const foreign = copy(maps);
  const other = new NodeSync(foreign as unknown as PodMaps, kubepods);
  cgroup("x9");
  other.full({ x9: doc("x9", ["10.3.0.9"], { excludeOutboundPorts: [99] }) });
  for (const map of POD_MAPS) for (const [k, v] of foreign[map].entries) maps[map].entries.set(k, v);
  maps.mesh_ports.entries.delete([...maps.mesh_ports.entries.keys()].find((k) => !foreign.mesh_ports.entries.has(k))!);
  const r = sync.full(registry);
  assert.ok(r.deletes >= 3 && r.writes === 1, `x9's entries deleted, r1's rule written back (${r.writes} written, ${r.deletes} deleted)`);
  assert.deepEqual(dump(maps), before);
  rmSync(join(kubepods, "podr2"), { recursive: true });
  const gone = sync.full(registry);
  assert.equal(states(gone).r2, "pending-cgroup/no-cgroup");
  assert.deepEqual(gone.touched, ["r2"], "only the pod whose cgroup went is planned");
  assert.equal(maps.mesh_pods.entries.size, 1);
});

test("a failed write is undone and leaves the pod as it was; a failed undo makes the next sync a full one", () => {
  cgroup("q1");
  const maps = memory();
  const sync = new NodeSync(maps as unknown as PodMaps, kubepods);
  sync.full({});
  const real = maps.mesh_pods.updateRaw.bind(maps.mesh_pods);
  maps.mesh_pods.updateRaw = () => {
    throw new Error("ENOMEM");
  };
  const r = sync.update(new Map([["q1", doc("q1", ["10.2.0.1"], { excludeOutboundPorts: [22] })]]));
  assert.equal(states(r).q1, "not-applied/write-failed");
  assert.deepEqual(dump(maps), dump(memory()), "its rules and IP were taken out again");
  assert.equal(sync.needsFull(), false);
  maps.mesh_pods.updateRaw = real;
  const realDelete = maps.mesh_ports.deleteRaw.bind(maps.mesh_ports);
  maps.mesh_pods.updateRaw = () => {
    throw new Error("ENOMEM");
  };
  maps.mesh_ports.deleteRaw = () => {
    throw new Error("EPERM");
  };
  sync.update(new Map([["q1", doc("q1", ["10.2.0.1"], { excludeOutboundPorts: [22] })]]));
  assert.equal(sync.needsFull(), true, "the shadow may be wrong: the maps are read again");
  assert.throws(() => sync.update(new Map()), /a full sync is needed first/);
  maps.mesh_pods.updateRaw = real;
  maps.mesh_ports.deleteRaw = realDelete;
  assert.equal(states(sync.full({ q1: doc("q1", ["10.2.0.1"], { excludeOutboundPorts: [22] }) })).q1, "registered/applied");
});
