import { test } from "node:test";
import assert from "node:assert/strict";
import { fsTypeAt, parseMountinfo } from "../../loader/mounts.js";

test("the last filesystem mounted at a point is the visible one", () => {
  const mounts = parseMountinfo([
    "40 25 0:33 / /sys/fs/bpf rw,nosuid shared:15 - bpf bpf rw,mode=700",
    "26 25 0:23 / /sys/fs/cgroup/unified rw,nosuid,nodev shared:6 - cgroup2 cgroup2 rw",
    "90 40 0:50 / /sys/fs/bpf rw - tmpfs none rw",
    "",
  ].join("\n"));
  assert.deepEqual(mounts.map((m) => m.fsType), ["bpf", "cgroup2", "tmpfs"]);
  assert.equal(fsTypeAt("/sys/fs/bpf", mounts), "tmpfs");
  assert.equal(fsTypeAt("/sys/fs/cgroup/unified", mounts), "cgroup2");
  assert.equal(fsTypeAt("/nowhere", mounts), null);
});
