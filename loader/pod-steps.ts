// Pure: a reconcile cut into steps a pod at a time, so that one pod that cannot be
// written (a full map, a kernel error) leaves every other pod applied and itself as
// it was. loader/plan.ts says what the maps must hold; this module says in which
// order and for whom the writes happen, and whether a pod fits the room left.

import { MAPS } from "./maps/codecs.js";
import { POD_MAPS, type Contents, type MapOp, type PodMap } from "./plan.js";

/** What became of one registration in a reconcile. */
export type PodState = "registered" | "pending-cgroup" | "invalid" | "conflict" | "not-applied";

/** Why, as a closed set of codes (the `reason` label of meshlane_pods). */
export const POD_REASONS = {
  registered: ["applied"],
  "pending-cgroup": ["no-cgroup", "cgroup-vanished"],
  invalid: ["invalid-document", "newer-version"],
  conflict: ["ip-taken"],
  "not-applied": ["map-full", "write-failed"],
} as const satisfies Record<PodState, readonly string[]>;
export type PodReason = (typeof POD_REASONS)[PodState][number];

export type PerMap = Record<PodMap, number>;

export interface PodStep {
  uid: string;
  cgroupId: bigint;
  /** Rules and IPs first, the pod entry (which switches the pod on) last. */
  puts: MapOp[];
  /** This pod's entries it no longer needs, after its puts. */
  deletes: MapOp[];
  /** Keys the puts add (not just overwrite), per map: the room the pod needs. */
  newKeys: PerMap;
}

export interface StepPlan {
  /** Pod entries of pods no longer wanted: taken out first, so they fall back to iptables at once. */
  switchOff: MapOp[];
  /** The other entries of those pods, freeing their room before any pod is written. */
  removed: MapOp[];
  pods: PodStep[];
}

/** The cgroup (pod) an entry of a pod map belongs to. */
export function ownerOf(map: PodMap, key: Buffer, value: Buffer): bigint {
  switch (map) {
    case "mesh_pods":
      return MAPS.mesh_pods.key.decode(key);
    case "mesh_pod_ips":
      return MAPS.mesh_pod_ips.value.decode(value);
    case "mesh_ports":
      return MAPS.mesh_ports.key.decode(key).cgroup_id;
    case "mesh_cidrs":
      return MAPS.mesh_cidrs.key.decode(key).cgroup_id;
  }
}

const zero = (): PerMap => Object.fromEntries(POD_MAPS.map((m) => [m, 0])) as PerMap;
const fromHex = (k: string) => Buffer.from(k, "hex");

export function planSteps(current: Contents, wanted: { uid: string; cgroupId: bigint; contents: Contents }[]): StepPlan {
  const wantedCgroups = new Set(wanted.map((w) => w.cgroupId));
  // Entries no pod wants any more, by the cgroup they belong to: decoded once, so a reconcile stays linear in the entries.
  const staleByOwner = new Map<bigint, Record<PodMap, MapOp[]>>();
  for (const map of POD_MAPS) {
    const wantedKeys = new Set(wanted.flatMap((w) => [...w.contents[map].keys()]));
    for (const [k, v] of current[map]) {
      if (wantedKeys.has(k)) continue;
      const owner = ownerOf(map, fromHex(k), fromHex(v));
      let bucket = staleByOwner.get(owner);
      if (!bucket) staleByOwner.set(owner, (bucket = Object.fromEntries(POD_MAPS.map((m) => [m, []])) as unknown as Record<PodMap, MapOp[]>));
      bucket[map].push({ map, op: "delete", key: fromHex(k) });
    }
  }
  const stale = (map: PodMap, owners: (id: bigint) => boolean): MapOp[] => [...staleByOwner].filter(([id]) => owners(id)).flatMap(([, b]) => b[map]);
  const gone = (id: bigint) => !wantedCgroups.has(id);

  const pods = [...wanted].sort((a, b) => a.uid.localeCompare(b.uid)).map(({ uid, cgroupId, contents }): PodStep => {
    const newKeys = zero();
    const puts = (map: PodMap): MapOp[] =>
      [...contents[map]].filter(([k, v]) => current[map].get(k) !== v).map(([k, v]) => {
        if (!current[map].has(k)) newKeys[map]++;
        return { map, op: "put", key: fromHex(k), value: fromHex(v) };
      });
    const mine = staleByOwner.get(cgroupId);
    return {
      uid,
      cgroupId,
      puts: [...puts("mesh_ports"), ...puts("mesh_cidrs"), ...puts("mesh_pod_ips"), ...puts("mesh_pods")],
      deletes: mine ? [...mine.mesh_pod_ips, ...mine.mesh_cidrs, ...mine.mesh_ports] : [],
      newKeys,
    };
  });
  return {
    switchOff: stale("mesh_pods", gone),
    removed: [...stale("mesh_pod_ips", gone), ...stale("mesh_cidrs", gone), ...stale("mesh_ports", gone)],
    pods,
  };
}

/** The first map a pod's new keys do not fit in, or null when they all fit. */
export function shortfall(newKeys: PerMap, free: PerMap): { map: PodMap; need: number; free: number } | null {
  for (const map of POD_MAPS) if (newKeys[map] > free[map]) return { map, need: newKeys[map], free: free[map] };
  return null;
}

/**
 * The pods whose outcome a change of `changed` can alter: the changed pods and every
 * pod linked to them through a claimed IP, transitively (`addresses` holds the
 * changed pods' IPs before and after). Whether a pod is in conflict depends on
 * every claimant of its IPs (the earliest UID wins), and a pod left out frees its
 * other IPs for their other claimants; outside this group nothing can change.
 * `claims` is IP → the placed pods that claim it; `ipsOf` a placed pod's IPs.
 */
export function conflictGroup(changed: Iterable<string>, addresses: Iterable<string>, claims: ReadonlyMap<string, ReadonlySet<string>>, ipsOf: (uid: string) => readonly string[]): Set<string> {
  const group = new Set<string>(changed);
  const seen = new Set<string>();
  const todo = [...addresses];
  for (const uid of group) todo.push(...ipsOf(uid));
  while (todo.length) {
    const ip = todo.pop()!;
    if (seen.has(ip)) continue;
    seen.add(ip);
    for (const uid of claims.get(ip) ?? []) {
      if (group.has(uid)) continue;
      group.add(uid);
      todo.push(...ipsOf(uid));
    }
  }
  return group;
}
