// Pure: at which cgroup levels the programs look for a task's pod (mesh_config
// pod_level_min/max, bpf/maps.h). Levels count from the cgroup2 root (0), as
// bpf_get_current_ancestor_cgroup_id does.

import { posix } from "node:path";

/** bpf/maps.h MESH_MAX_CGROUP_LEVEL: the deepest level current_pod() looks at. */
export const MAX_CGROUP_LEVEL = 15;

export interface PodLevels {
  pod_level_min: number;
  pod_level_max: number;
}

/**
 * The level of the cgroup at `path`, given where the cgroup2 hierarchy is mounted
 * and which of its directories the mount shows at its mount point (mountinfo's
 * root field). Null when that is not the hierarchy's root (a cgroup namespace's
 * view, a bind mount of a subtree) or `path` is not below the mount: counting
 * directories there would give a wrong level.
 */
export function cgroupLevel(mount: { mountPoint: string; root: string }, path: string): number | null {
  if (mount.root !== "/") return null;
  const rel = posix.relative(mount.mountPoint, posix.resolve(path));
  if (rel.startsWith("..") || posix.isAbsolute(rel)) return null;
  return rel === "" ? 0 : rel.split("/").length;
}

/**
 * Where pod cgroups can be for programs attached at the kubepods cgroup at
 * `kubepodsLevel`: right below it (Guaranteed QoS) or below its burstable and
 * besteffort cgroups (loader/cgroup.ts findPodCgroup looks nowhere else). An
 * unknown level gives every level, which is correct and costs one lookup per
 * level of a task's cgroup path.
 */
export function podLevels(kubepodsLevel: number | null): PodLevels {
  if (kubepodsLevel === null || kubepodsLevel + 2 > MAX_CGROUP_LEVEL) return { pod_level_min: 1, pod_level_max: MAX_CGROUP_LEVEL };
  return { pod_level_min: kubepodsLevel + 1, pod_level_max: kubepodsLevel + 2 };
}
