// Keeps the pod maps equal to the registry. Each reconcile validates every
// registration, resolves each pod's UID to its cgroup, plans against what the
// maps hold right now (the maps are the truth, so a restarted loader or a map
// edited by hand converges too) and applies the plan.

import * as bpf from "./libbpf.js";
import { MAPS } from "./maps/codecs.js";
import { parseRegistration, RegistrationError, type ParsedRegistration, type RegistrationProblem } from "../registry/document.js";
import { cgroupId, findPodCgroup, podCgroupIndex } from "./cgroup.js";
import { desiredContents, emptyContents, planOps, POD_MAPS, type Contents, type Placement } from "./plan.js";

export interface PodStatus {
  uid: string;
  namespace?: string;
  name?: string;
  ips?: string[];
  state: "registered" | "pending-cgroup" | "invalid" | "conflict";
  /** Why an invalid registration was refused: newer-version is a loader older than its registrar. */
  reason?: RegistrationProblem;
  cgroup?: string;
  cgroupId?: string;
  problem?: string;
}

export interface SyncReport {
  pods: PodStatus[];
  writes: number;
  deletes: number;
}

export type PodMapFds = Record<(typeof POD_MAPS)[number], number>;

export function readContents(fds: PodMapFds): Contents {
  const contents = emptyContents();
  for (const map of POD_MAPS) {
    const { key, value } = MAPS[map];
    for (const k of bpf.mapKeys(fds[map], key.size)) {
      const v = bpf.mapLookup(fds[map], k, value.size);
      if (v) contents[map].set(k.toString("hex"), v.toString("hex"));
    }
  }
  return contents;
}

/** One reconcile of the maps against `registry` (data key → parsed JSON value). */
export function reconcile(fds: PodMapFds, kubepods: string, registry: Record<string, unknown>): SyncReport {
  const pods: PodStatus[] = [];
  const placements: Placement[] = [];
  const cgroups = podCgroupIndex(kubepods);
  for (const [key, raw] of Object.entries(registry)) {
    let r: ParsedRegistration;
    try {
      r = parseRegistration(raw, key);
    } catch (e) {
      pods.push({ uid: key, state: "invalid", reason: e instanceof RegistrationError ? e.reason : "invalid", problem: (e as Error).message });
      continue;
    }
    const who = { uid: r.uid, namespace: r.namespace, name: r.name, ips: r.ips.map((ip) => ip.address) };
    const dir = findPodCgroup(kubepods, r.uid, cgroups);
    if (!dir) {
      // kubelet creates the cgroup a moment after the IP is known: retried on the next reconcile.
      pods.push({ ...who, state: "pending-cgroup", problem: `no cgroup for pod ${r.uid} under ${kubepods} yet` });
      continue;
    }
    const id = cgroupId(dir);
    placements.push({ registration: r, cgroupId: id });
    pods.push({ ...who, state: "registered", cgroup: dir, cgroupId: id.toString() });
  }
  const { contents, problems } = desiredContents(placements);
  for (const p of problems) {
    const pod = pods.find((x) => x.uid === p.uid)!;
    pod.state = "conflict";
    pod.problem = p.problem;
  }
  const ops = planOps(readContents(fds), contents);
  for (const op of ops) {
    if (op.op === "put") bpf.mapUpdate(fds[op.map], op.key, op.value!);
    else bpf.mapDelete(fds[op.map], op.key);
  }
  return { pods, writes: ops.filter((o) => o.op === "put").length, deletes: ops.filter((o) => o.op === "delete").length };
}
