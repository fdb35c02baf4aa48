// Finding cgroups: the cgroup2 mount, the node's pod cgroup root (kubepods) for
// both kubelet cgroup drivers, and a pod's own cgroup from its UID. A cgroup's id,
// the value BPF programs see from bpf_get_current_ancestor_cgroup_id, is the inode
// number of its directory.

import { existsSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { parseMountinfo, type Mount } from "./mounts.js";

/** The cgroup2 mount point (hybrid hosts mount it at /sys/fs/cgroup/unified). */
export function findCgroup2Mount(mounts: Mount[] = parseMountinfo()): string | null {
  return mounts.find((m) => m.fsType === "cgroup2")?.mountPoint ?? null;
}

/** kubepods under the cgroup2 root: "kubepods.slice" (systemd driver) or "kubepods" (cgroupfs driver). */
export function findKubepods(cgroup2Root: string): string | null {
  for (const name of ["kubepods.slice", "kubepods"]) {
    const p = join(cgroup2Root, name);
    if (existsSync(p)) return p;
  }
  return null;
}

export function cgroupId(path: string): bigint {
  return statSync(path, { bigint: true }).ino;
}

/** The directory names kubelet gives a pod's cgroup, for both drivers. */
export function podCgroupNames(podUid: string): string[] {
  const underscored = podUid.replace(/-/g, "_");
  return [`pod${podUid}`, ...["", "burstable-", "besteffort-"].map((qos) => `kubepods-${qos}pod${underscored}.slice`)];
}

/** Names of the QoS cgroups below kubepods, for both drivers: where Burstable and BestEffort pods' cgroups are. */
const QOS_DIR = /^(kubepods-)?(burstable|besteffort)(\.slice)?$/;
/** Where a pod's cgroup can be, relative to kubepods: kubepods itself (Guaranteed), then every name QOS_DIR accepts. */
const POD_PARENTS = ["", ...["", "kubepods-"].flatMap((p) => ["burstable", "besteffort"].flatMap((q) => ["", ".slice"].map((s) => `${p}${q}${s}`)))];

/**
 * Every directory below kubepods and below its burstable/besteffort QoS cgroups, by
 * name: where pods' cgroups are. Read once per full reconcile, so finding n pods costs
 * one pass over the directories rather than n.
 */
export function podCgroupIndex(kubepods: string): Map<string, string> {
  const dirs = [kubepods];
  for (const entry of safeReaddir(kubepods)) {
    if (QOS_DIR.test(entry)) dirs.push(join(kubepods, entry));
  }
  const index = new Map<string, string>();
  for (const dir of dirs) {
    for (const entry of safeReaddir(dir)) if (!index.has(entry)) index.set(entry, join(dir, entry));
  }
  return index;
}

/**
 * Finds a pod's cgroup below kubepods: directly (Guaranteed QoS) or one level down
 * in the burstable/besteffort QoS cgroups. Null while kubelet has not created it yet.
 * With an index (podCgroupIndex) it is looked up there; without, the few places it
 * can be are tried, so one pod costs the same whatever the node's pod count.
 */
export function findPodCgroup(kubepods: string, podUid: string, index?: Map<string, string>): string | null {
  for (const name of podCgroupNames(podUid)) {
    if (index) {
      const dir = index.get(name);
      if (dir) return dir;
      continue;
    }
    for (const parent of POD_PARENTS) {
      const dir = join(kubepods, parent, name);
      if (isDirectory(dir)) return dir;
    }
  }
  return null;
}

function isDirectory(path: string): boolean {
  return statSync(path, { throwIfNoEntry: false })?.isDirectory() ?? false;
}

function safeReaddir(dir: string): string[] {
  try {
    return readdirSync(dir, { withFileTypes: true }).filter((d) => d.isDirectory()).map((d) => d.name);
  } catch {
    return [];
  }
}
