// Keeps the pod maps equal to the registry. Each reconcile validates every
// registration, resolves each pod's UID to its cgroup, plans against what the
// maps hold right now (the maps are the truth, so a restarted loader or a map
// edited by hand converges too) and applies the plan a pod at a time: a pod that
// does not fit the room left, or whose write fails, is left as it was (its own
// writes undone) and reported; every other pod is applied all the same.

import { parseRegistration, RegistrationError, type ParsedRegistration } from "../registry/document.js";
import { cgroupId, findPodCgroup, podCgroupIndex } from "./cgroup.js";
import { MapError, mapHandles, type MapHandles } from "./map-handle.js";
import { desiredContents, emptyContents, POD_MAPS, type Contents, type MapOp, type Placement, type PodMap } from "./plan.js";
import { planSteps, shortfall, type PerMap, type PodReason, type PodState, type PodStep } from "./pod-steps.js";

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
  pods: PodStatus[];
  writes: number;
  deletes: number;
  /** Entries of the plan that were not written (or were undone), and why; a uid when they were a pod's. */
  notWritten: { uid?: string; entries: number; problem: string }[];
}

export type PodMapFds = Record<PodMap, number>;
export type PodMaps = MapHandles<PodMap>;

export function readContents(maps: PodMaps): Contents {
  const contents = emptyContents();
  for (const map of POD_MAPS) for (const [k, v] of maps[map].rawEntries()) contents[map].set(k.toString("hex"), v.toString("hex"));
  return contents;
}

const message = (e: unknown) => (e instanceof Error ? e.message : String(e));

/**
 * One reconcile of the maps against `registry` (data key → parsed JSON value).
 * Throws only before its first write (the maps cannot be read); after that every
 * failure is per pod or per entry and is in the report.
 */
export function reconcile(fds: PodMapFds, kubepods: string, registry: Record<string, unknown>): SyncReport {
  const maps = mapHandles(fds);
  const pods: PodStatus[] = [];
  const placements: Placement[] = [];
  const cgroups = podCgroupIndex(kubepods);
  for (const [key, raw] of Object.entries(registry)) {
    let r: ParsedRegistration;
    try {
      r = parseRegistration(raw, key);
    } catch (e) {
      // newer-version: a loader older than its registrar keeps the pod on iptables until it is upgraded.
      const reason = e instanceof RegistrationError && e.reason === "newer-version" ? "newer-version" : "invalid-document";
      pods.push({ uid: key, state: "invalid", reason, problem: message(e) });
      continue;
    }
    const who = { uid: r.uid, namespace: r.namespace, name: r.name, ips: r.ips.map((ip) => ip.address) };
    const dir = findPodCgroup(kubepods, r.uid, cgroups);
    if (!dir) {
      // kubelet creates the cgroup a moment after the IP is known: retried on the next reconcile.
      pods.push({ ...who, state: "pending-cgroup", reason: "no-cgroup", problem: `no cgroup for pod ${r.uid} under ${kubepods} yet` });
      continue;
    }
    let id: bigint;
    try {
      id = cgroupId(dir);
    } catch (e) {
      // Listed a moment ago, gone now (the pod is being deleted, or kubelet recreates it).
      pods.push({ ...who, state: "pending-cgroup", reason: "cgroup-vanished", problem: `cgroup ${dir} vanished: ${message(e)}` });
      continue;
    }
    placements.push({ registration: r, cgroupId: id });
    pods.push({ ...who, state: "registered", reason: "applied", cgroup: dir, cgroupId: id.toString() });
  }
  const byUid = new Map(pods.map((p) => [p.uid, p]));
  const { problems } = desiredContents(placements);
  for (const p of problems) Object.assign(byUid.get(p.uid)!, { state: "conflict", reason: "ip-taken", problem: p.problem });
  const wanted = placements
    .filter((p) => byUid.get(p.registration.uid)!.state === "registered")
    .map((p) => ({ uid: p.registration.uid, cgroupId: p.cgroupId, contents: desiredContents([p]).contents }));

  const current = readContents(maps);
  const plan = planSteps(current, wanted);
  const report: SyncReport = { pods, writes: 0, deletes: 0, notWritten: [] };
  const used = Object.fromEntries(POD_MAPS.map((m) => [m, current[m].size])) as PerMap;

  const apply = (op: MapOp): void => {
    if (op.op === "put") {
      maps[op.map].updateRaw(op.key, op.value!);
      report.writes++;
    } else if (maps[op.map].deleteRaw(op.key)) {
      used[op.map]--;
      report.deletes++;
    }
  };
  // Deletes of pods that went away: a failure leaves that entry for the next reconcile.
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

  const free = (): PerMap => Object.fromEntries(POD_MAPS.map((m) => [m, maps[m].capacity() - used[m]])) as PerMap;
  for (const step of plan.pods) {
    const pod = byUid.get(step.uid)!;
    const short = shortfall(step.newKeys, free());
    if (short) {
      Object.assign(pod, { state: "not-applied", reason: "map-full", problem: `${short.map} is full: the pod needs ${short.need} new entries, ${short.free} are free of ${maps[short.map].capacity()}; nothing of it was written` });
      report.notWritten.push({ uid: step.uid, entries: step.puts.length + step.deletes.length, problem: pod.problem! });
      continue;
    }
    const failed = applyPod(step, current, maps, apply);
    if (failed) {
      Object.assign(pod, { state: "not-applied", reason: "write-failed", problem: `${failed}; the pod's entries are as they were` });
      report.notWritten.push({ uid: step.uid, entries: step.puts.length + step.deletes.length, problem: pod.problem! });
      continue;
    }
    for (const map of POD_MAPS) used[map] += step.newKeys[map];
    tryAll(step.deletes, step.uid);
  }
  return report;
}

/** Writes one pod's entries; on a failure undoes the ones written and returns what failed. */
export function applyPod(step: PodStep, current: Contents, maps: PodMaps, apply: (op: MapOp) => void): string | null {
  const done: MapOp[] = [];
  try {
    for (const op of step.puts) {
      apply(op);
      done.push(op);
    }
    return null;
  } catch (e) {
    for (const op of done.reverse()) {
      const before = current[op.map].get(op.key.toString("hex"));
      try {
        if (before === undefined) maps[op.map].deleteRaw(op.key);
        else maps[op.map].updateRaw(op.key, Buffer.from(before, "hex"));
      } catch {
        // The next reconcile plans against what is really there and tries again.
      }
    }
    return e instanceof MapError ? e.message : message(e);
  }
}
