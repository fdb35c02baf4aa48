// A test node with meshlane on it: the topology of node.ts plus the programs
// attached to its kubepods cgroup (pins under a directory of its own) and an
// in-process way to register pods. Kernel suites build on this; two of them on one
// pod network (create({ network })) are two nodes of a cluster.

import { existsSync, readdirSync } from "node:fs";
import { attach, detach } from "../../loader/attach.js";
import { readCounters, type Counters } from "../../loader/counters.js";
import { openPinnedMaps, type PinnedMaps } from "../../loader/pinned.js";
import { reconcile, type SyncReport } from "../../loader/sync.js";
import { DEFAULT_BPFFS } from "../../loader/pins.js";
import { TestNode, type PodNetwork, type TestPod } from "./node.js";
import { run } from "./run.js";

export class Mesh {
  private maps: PinnedMaps | null = null;

  private constructor(readonly node: TestNode, readonly pinDir: string) {}

  static async create(opts: { network?: PodNetwork } = {}): Promise<Mesh> {
    const node = await TestNode.create(opts);
    return new Mesh(node, `${DEFAULT_BPFFS}/meshlane-${node.id}`);
  }

  attach() {
    const r = attach({ cgroup: this.node.kubepods, pinDir: this.pinDir });
    this.maps?.close();
    this.maps = openPinnedMaps(this.pinDir);
    return r;
  }

  async detach(drainMs = 200) {
    this.maps?.close();
    this.maps = null;
    return detach({ pinDir: this.pinDir, drainMs });
  }

  /** Makes the maps hold exactly these pods. */
  register(pods: TestPod[]): SyncReport {
    return reconcile(this.fds(), this.node.kubepods, this.node.registrations(pods));
  }

  counters(): Counters {
    return readCounters(this.fds().mesh_counters);
  }

  fds() {
    if (!this.maps) throw new Error("meshlane is not attached on this test node");
    return this.maps.fds;
  }

  /** Detaches and removes the node; then proves nothing of it is left. */
  async destroy(): Promise<void> {
    try {
      await this.detach(0);
    } finally {
      await this.node.destroy();
    }
    const leftovers = await leftoversOf(this.node.id, this.pinDir, this.node.cgroupRoot);
    if (leftovers.length) throw new Error(`test node ${this.node.id} left state behind: ${leftovers.join("; ")}`);
  }
}

/** Namespaces, cgroups, pins and attachments of one test node that still exist. */
export async function leftoversOf(id: string, pinDir: string, cgroupRoot: string): Promise<string[]> {
  const found: string[] = [];
  const netns = (await run("ip", ["netns", "list"])).stdout.split("\n").filter((l) => l.startsWith(id));
  if (netns.length) found.push(`network namespaces ${netns.map((l) => l.split(" ")[0]).join(", ")}`);
  if (existsSync(cgroupRoot)) found.push(`cgroup ${cgroupRoot}`);
  if (existsSync(pinDir)) found.push(`pins ${pinDir}: ${readdirSync(pinDir).join(", ")}`);
  const tree = (await run("bpftool", ["cgroup", "tree"]).catch(() => ({ stdout: "" }))).stdout;
  if (tree.includes(cgroupRoot)) found.push(`BPF attachments on ${cgroupRoot}`);
  return found;
}
