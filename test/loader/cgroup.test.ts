import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { findCgroup2Mount, findKubepods, findPodCgroup, podCgroupIndex } from "../../loader/cgroup.js";
import { parseMountinfo } from "../../loader/mounts.js";

test("cgroup2 mount point comes from mountinfo, also on hybrid hosts", () => {
  const hybrid = [
    "25 24 0:22 / /sys/fs/cgroup ro,nosuid - tmpfs tmpfs ro,mode=755",
    "30 25 0:27 / /sys/fs/cgroup/memory rw,relatime shared:7 - cgroup cgroup rw,memory",
    "26 25 0:23 / /sys/fs/cgroup/unified rw,nosuid,nodev shared:6 - cgroup2 cgroup2 rw,nsdelegate",
  ].join("\n");
  assert.equal(findCgroup2Mount(parseMountinfo(hybrid)), "/sys/fs/cgroup/unified");
  assert.equal(findCgroup2Mount(parseMountinfo("30 25 0:27 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory")), null);
});

test("pod cgroups are found for the cgroupfs and systemd drivers in every QoS class, one at a time and through the index", () => {
  const root = mkdtempSync(join(tmpdir(), "cg-"));
  try {
    const uid = "0f3c9a62-1b2c-4d5e-8f90-123456789abc";
    const u = uid.replace(/-/g, "_");
    const cases: [string, string][] = [
      ["kubepods", `kubepods/pod${uid}`],
      ["kubepods", `kubepods/burstable/pod${uid}`],
      ["kubepods", `kubepods/besteffort/pod${uid}`],
      ["kubepods.slice", `kubepods.slice/kubepods-pod${u}.slice`],
      ["kubepods.slice", `kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod${u}.slice`],
      ["kubepods.slice", `kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod${u}.slice`],
    ];
    for (const [top, path] of cases) {
      rmSync(join(root, "kubepods"), { recursive: true, force: true });
      rmSync(join(root, "kubepods.slice"), { recursive: true, force: true });
      mkdirSync(join(root, path), { recursive: true });
      assert.equal(findKubepods(root), join(root, top));
      assert.equal(findPodCgroup(join(root, top), uid), join(root, path), path);
      assert.equal(findPodCgroup(join(root, top), "11111111-2222-3333-4444-555555555555"), null);
      const index = podCgroupIndex(join(root, top));
      assert.equal(findPodCgroup(join(root, top), uid, index), join(root, path), `${path}, indexed`);
      assert.equal(findPodCgroup(join(root, top), "11111111-2222-3333-4444-555555555555", index), null);
    }
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
