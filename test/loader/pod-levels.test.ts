import { test } from "node:test";
import assert from "node:assert/strict";
import { cgroupLevel, MAX_CGROUP_LEVEL, podLevels } from "../../loader/pod-levels.js";

const root = { mountPoint: "/sys/fs/cgroup", root: "/" };

test("cgroupLevel counts directories below the hierarchy's root, or says it cannot", () => {
  const cases: [{ mountPoint: string; root: string }, string, number | null][] = [
    [root, "/sys/fs/cgroup", 0],
    [root, "/sys/fs/cgroup/kubepods.slice", 1],
    [root, "/sys/fs/cgroup/kubepods.slice/", 1],
    [root, "/sys/fs/cgroup/meshlane-test-x/kubepods", 2],
    [root, "/sys/fs/cgroup/a/../kubepods", 1],
    [{ mountPoint: "/sys/fs/cgroup/unified", root: "/" }, "/sys/fs/cgroup/unified/kubepods", 1],
    [root, "/sys/fs/cgroupx/kubepods", null], // not below the mount
    [root, "/elsewhere", null],
    [{ mountPoint: "/sys/fs/cgroup", root: "/kubepods.slice/pod1" }, "/sys/fs/cgroup/kubepods.slice", null], // a subtree's view
  ];
  for (const [mount, path, want] of cases) assert.equal(cgroupLevel(mount, path), want, `${mount.mountPoint} (${mount.root}) ${path}`);
});

test("podLevels: the two levels below kubepods; every level when kubepods' level is unknown", () => {
  const cases: [number | null, { pod_level_min: number; pod_level_max: number }][] = [
    [0, { pod_level_min: 1, pod_level_max: 2 }],
    [1, { pod_level_min: 2, pod_level_max: 3 }],
    [2, { pod_level_min: 3, pod_level_max: 4 }],
    [MAX_CGROUP_LEVEL - 2, { pod_level_min: MAX_CGROUP_LEVEL - 1, pod_level_max: MAX_CGROUP_LEVEL }],
    [MAX_CGROUP_LEVEL - 1, { pod_level_min: 1, pod_level_max: MAX_CGROUP_LEVEL }],
    [null, { pod_level_min: 1, pod_level_max: MAX_CGROUP_LEVEL }],
  ];
  for (const [level, want] of cases) assert.deepEqual(podLevels(level), want, `kubepods at level ${level}`);
});
