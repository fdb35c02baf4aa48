// Keeps the pod maps equal to the registry. Each registration is validated and its
// pod's UID resolved to its cgroup when it changes; the plan (loader/plan.ts,
// loader/pod-steps.ts) is made against a shadow of the maps (loader/shadow.ts) for
// just the pods a change can affect, so a change costs that pod, not the node. A
// full sync reads the maps as the truth and plans every pod (the agent runs one at
// start and on every resync, so a restarted loader or a map edited by hand
// converges). Either way the plan is applied a pod at a time: a pod that does not
// fit the room left, or whose write fails, is left as it was (its own writes
// undone) and reported; every other pod is applied all the same.

import { statSync } from "node:fs";
import { parseRegistration, RegistrationError, type ParsedRegistration } from "../registry/document.js";
import { cgroupId, findPodCgroup, podCgroupIndex } from "./cgroup.js";
import { MapError, mapHandles, type MapHandles } from "./map-handle.js";
import { desiredContents, emptyContents, hex, POD_MAPS, type Contents, type MapOp, type Placement, type PodMap } from "./plan.js";
import { conflictGroup, planSteps, shortfall, type PerMap, type PodReason, type PodState, type PodStep } from "./pod-steps.js";
import { Shadow } from "./shadow.js";

export interface PodStatus {
  uid: string;
  namespace?: string;
  name?: string;
  ips?: string[];
  state: PodState;
  reason: PodReason;
  cgroup?: string;
  cgroupId?: string;
  problem?: string;
}

export interface SyncReport {
  /** Every registration's state, as of this sync. */
  pods: PodStatus[];
  /** The registrations this sync planned (all of them in a full sync). */
  touched: string[];
  writes: number;
  deletes: number;
  /** Entries of the plan that were not written (or were undone), and why; a uid when they were a pod's. */
  notWritten: { uid?: string; entries: number; problem: string }[];
}

export type PodMapFds = Record<PodMap, number>;
export type PodMaps = MapHandles<PodMap>;

/** A registry key whose registration is gone, in a set of changes. */
export const GONE: unique symbol = Symbol("gone");
/** Registry key → its document now (unvalidated), or GONE. */
export type Changes = Map<string, unknown>;

/** The registry keys whose documents differ between what was applied and a new read of the whole registry, and those gone. */
export function changedKeys(applied: ReadonlyMap<string, unknown>, now: Record<string, unknown>): Changes {
  const changes: Changes = new Map();
  for (const [key, doc] of Object.entries(now)) {
    if (!applied.has(key) || JSON.stringify(applied.get(key)) !== JSON.stringify(doc)) changes.set(key, doc);
  }
  for (const key of applied.keys()) if (!(key in now)) changes.set(key, GONE);
  return changes;
}

export function readContents(maps: PodMaps): Contents {
  const contents = emptyContents();
  for (const map of POD_MAPS) for (const [k, v] of maps[map].rawEntries()) contents[map].set(hex(k), hex(v));
  return contents;
}

const message = (e: unknown) => (e instanceof Error ? e.message : String(e));

interface Placed {
  placement: Placement;
  /** Its status when nothing stands in its way. */
  registered: PodStatus;
  ips: string[];
}

/** Validates one registration and finds its cgroup (the I/O: a stat or two). */
function place(key: string, raw: unknown, find: (uid: string) => string | null, kubepods: string): { status: PodStatus; placed?: Placed } {
  let r: ParsedRegistration;
  try {
    r = parseRegistration(raw as never, key);
  } catch (e) {
    // newer-version: a loader older than its registrar keeps the pod on iptables until it is upgraded.
    const reason = e instanceof RegistrationError && e.reason === "newer-version" ? "newer-version" : "invalid-document";
    return { status: { uid: key, state: "invalid", reason, problem: message(e) } };
  }
  const ips = r.ips.map((ip) => ip.address);
  const who = { uid: r.uid, namespace: r.namespace, name: r.name, ips };
  const dir = find(r.uid);
  if (!dir) {
    // kubelet creates the cgroup a moment after the IP is known: retried alone until it is there.
    return { status: { ...who, state: "pending-cgroup", reason: "no-cgroup", problem: `no cgroup for pod ${r.uid} under ${kubepods} yet` } };
  }
  let id: bigint;
  try {
    id = cgroupId(dir);
  } catch (e) {
    // Listed a moment ago, gone now (the pod is being deleted, or kubelet recreates it).
    return { status: { ...who, state: "pending-cgroup", reason: "cgroup-vanished", problem: `cgroup ${dir} vanished: ${message(e)}` } };
  }
  const registered: PodStatus = { ...who, state: "registered", reason: "applied", cgroup: dir, cgroupId: id.toString() };
  return { status: { ...registered }, placed: { placement: { registration: r, cgroupId: id }, registered, ips } };
}

/**
 * The registrations a node's loader follows, what became of each, and a shadow of
 * the maps it keeps. One instance lives as long as the agent.
 */
export class NodeSync {
  private readonly raws = new Map<string, unknown>();
  private readonly statuses = new Map<string, PodStatus>();
  private readonly placed = new Map<string, Placed>();
  /** IP → the placed pods that claim it. */
  private readonly claims = new Map<string, Set<string>>();
  /** Null until a full sync, and again after an undo failed (the shadow may be wrong then). */
  private shadow: Shadow | null = null;

  constructor(
    private readonly maps: PodMaps,
    private readonly kubepods: string,
  ) {}

  /** True until a full sync has read the maps (first, or after a failed undo). */
  needsFull(): boolean {
    return this.shadow === null;
  }

  /** The registrations whose pod's cgroup was not there yet: retried on their own. */
  pendingCgroup(): string[] {
    return [...this.statuses.values()].filter((p) => p.state === "pending-cgroup").map((p) => p.uid);
  }

  /** The registry as last applied (key → document), to find what a new read changed. */
  registry(): ReadonlyMap<string, unknown> {
    return this.raws;
  }

  /**
   * Reads the maps as the truth. The first time (and after an undo that failed) every
   * registration is planned against them; after that the shadow is aligned with them,
   * and planned again are the pods whose document changed, whose entries differed,
   * whose cgroup is gone or was recreated, that wait for their cgroup, or that did not
   * fit or failed: the same outcome at a fraction of the cost. Throws only before its
   * first write (the maps cannot be read); after that every failure is per pod or per
   * entry and is in the report.
   */
  full(registry: Record<string, unknown>): SyncReport {
    const actual = readContents(this.maps);
    if (this.shadow) return this.resync(this.shadow, actual, registry);
    const shadow = Shadow.of(actual);
    this.shadow = shadow;
    this.raws.clear();
    this.statuses.clear();
    this.placed.clear();
    this.claims.clear();
    const index = podCgroupIndex(this.kubepods);
    return this.sync(new Map(Object.entries(registry)), (uid) => findPodCgroup(this.kubepods, uid, index), shadow, true);
  }

  private resync(shadow: Shadow, actual: Contents, registry: Record<string, unknown>): SyncReport {
    const differ = shadow.align(actual);
    const changes = changedKeys(this.raws, registry);
    const byCgroup = new Map([...this.placed].map(([uid, p]) => [p.placement.cgroupId, uid]));
    const again = (uid: string) => {
      if (!changes.has(uid) && uid in registry) changes.set(uid, registry[uid]);
    };
    for (const id of differ) {
      const uid = byCgroup.get(id);
      if (uid !== undefined) again(uid);
    }
    for (const [uid, status] of this.statuses) {
      const p = this.placed.get(uid);
      const moved = p && statSync(p.registered.cgroup!, { bigint: true, throwIfNoEntry: false })?.ino !== p.placement.cgroupId;
      if (moved || status.state === "pending-cgroup" || status.state === "not-applied") again(uid);
    }
    return this.sync(changes, (uid) => findPodCgroup(this.kubepods, uid), shadow, false, differ);
  }

  /** Applies changed registrations against the shadow. Needs a full sync first (needsFull()). */
  update(changes: Changes): SyncReport {
    if (!this.shadow) throw new Error("the maps have not been read yet (or an undo failed): a full sync is needed first");
    return this.sync(changes, (uid) => findPodCgroup(this.kubepods, uid), this.shadow, false);
  }

  /** `owners`: cgroups whose entries are looked at in any case (a resync's that differed: stale ones go). */
  private sync(changes: Changes, find: (uid: string) => string | null, shadow: Shadow, full: boolean, owners = new Set<bigint>()): SyncReport {
    const addresses: string[] = [];
    for (const [key, raw] of changes) {
      const before = this.placed.get(key);
      if (before) {
        owners.add(before.placement.cgroupId);
        addresses.push(...before.ips);
        this.unclaim(key, before);
      }
      this.raws.delete(key);
      this.statuses.delete(key);
      if (raw === GONE) continue;
      this.raws.set(key, raw);
      const { status, placed } = place(key, raw, find, this.kubepods);
      this.statuses.set(key, status);
      if (placed) this.claim(key, placed);
    }
    const group = full ? [...this.placed.keys()] : [...conflictGroup([...changes.keys()].filter((k) => this.placed.has(k)), addresses, this.claims, (uid) => this.placed.get(uid)!.ips)];
    const placements: Placement[] = [];
    for (const uid of group) {
      const p = this.placed.get(uid)!;
      owners.add(p.placement.cgroupId);
      placements.push(p.placement);
      this.statuses.set(uid, { ...p.registered });
    }
    for (const p of desiredContents(placements).problems) Object.assign(this.statuses.get(p.uid)!, { state: "conflict", reason: "ip-taken", problem: p.problem });
    const wanted = placements
      .filter((p) => this.statuses.get(p.registration.uid)!.state === "registered")
      .map((p) => ({ uid: p.registration.uid, cgroupId: p.cgroupId, contents: desiredContents([p]).contents }));
    const wantedKeys = emptyContents();
    for (const w of wanted) for (const map of POD_MAPS) for (const [k, v] of w.contents[map]) wantedKeys[map].set(k, v);
    const current = full ? shadow.all() : shadow.view(owners, wantedKeys);

    const touched = [...new Set([...changes.keys(), ...group])].filter((k) => this.statuses.has(k));
    const report: SyncReport = { pods: [], touched, writes: 0, deletes: 0, notWritten: [] };
    this.apply(planSteps(current, wanted), current, shadow, report);
    report.pods = [...this.statuses.values()];
    return report;
  }

  private apply(plan: ReturnType<typeof planSteps>, current: Contents, shadow: Shadow, report: SyncReport): void {
    const maps = this.maps;
    const apply = (op: MapOp): void => {
      if (op.op === "put") {
        maps[op.map].updateRaw(op.key, op.value!);
        shadow.put(op.map, hex(op.key), hex(op.value!));
        report.writes++;
      } else {
        if (maps[op.map].deleteRaw(op.key)) report.deletes++;
        shadow.delete(op.map, hex(op.key));
      }
    };
    // Deletes of pods that went away: a failure leaves that entry (in the shadow too) for the next sync.
    const tryAll = (ops: MapOp[], uid?: string) => {
      for (const op of ops) {
        try {
          apply(op);
        } catch (e) {
          report.notWritten.push({ ...(uid ? { uid } : {}), entries: 1, problem: message(e) });
        }
      }
    };
    tryAll(plan.switchOff);
    tryAll(plan.removed);

    const free = (): PerMap => Object.fromEntries(POD_MAPS.map((m) => [m, maps[m].capacity() - shadow.size(m)])) as PerMap;
    for (const step of plan.pods) {
      const pod = this.statuses.get(step.uid)!;
      const short = shortfall(step.newKeys, free());
      if (short) {
        Object.assign(pod, { state: "not-applied", reason: "map-full", problem: `${short.map} is full: the pod needs ${short.need} new entries, ${short.free} are free of ${maps[short.map].capacity()}; nothing of it was written` });
        report.notWritten.push({ uid: step.uid, entries: step.puts.length + step.deletes.length, problem: pod.problem! });
        continue;
      }
      const failed = applyPod(step, current, maps, apply, (map, key, before) => {
        if (before === undefined) shadow.delete(map, key);
        else shadow.put(map, key, before);
      });
      if (failed) {
        if (failed.undone === false) this.shadow = null;
        Object.assign(pod, { state: "not-applied", reason: "write-failed", problem: `${failed.problem}; the pod's entries are as they were` });
        report.notWritten.push({ uid: step.uid, entries: step.puts.length + step.deletes.length, problem: pod.problem! });
        continue;
      }
      tryAll(step.deletes, step.uid);
    }
  }

  private claim(key: string, p: Placed): void {
    this.placed.set(key, p);
    for (const ip of p.ips) {
      let uids = this.claims.get(ip);
      if (!uids) this.claims.set(ip, (uids = new Set()));
      uids.add(key);
    }
  }

  private unclaim(key: string, p: Placed): void {
    this.placed.delete(key);
    for (const ip of p.ips) {
      const uids = this.claims.get(ip);
      uids?.delete(key);
      if (uids?.size === 0) this.claims.delete(ip);
    }
  }
}

/** One full sync of the maps against `registry` (data key → parsed JSON value), as a restarted loader's first. */
export function reconcile(fds: PodMapFds, kubepods: string, registry: Record<string, unknown>): SyncReport {
  return new NodeSync(mapHandles(fds), kubepods).full(registry);
}

/**
 * Writes one pod's entries; on a failure undoes the ones written and returns what
 * failed, and whether the undo worked (when not, the next full sync plans against
 * what is really there and tries again). `restored` hears of each entry put back.
 */
export function applyPod(
  step: PodStep,
  current: Contents,
  maps: PodMaps,
  apply: (op: MapOp) => void,
  restored: (map: PodMap, key: string, before: string | undefined) => void = () => undefined,
): { problem: string; undone: boolean } | null {
  const done: MapOp[] = [];
  try {
    for (const op of step.puts) {
      apply(op);
      done.push(op);
    }
    return null;
  } catch (e) {
    let undone = true;
    for (const op of done.reverse()) {
      const key = hex(op.key);
      const before = current[op.map].get(key);
      try {
        if (before === undefined) maps[op.map].deleteRaw(op.key);
        else maps[op.map].updateRaw(op.key, Buffer.from(before, "hex"));
        restored(op.map, key, before);
      } catch {
        undone = false;
      }
    }
    return { problem: e instanceof MapError ? e.message : message(e), undone };
  }
}
