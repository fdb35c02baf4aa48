// Switches meshlane on and off under the benchmark's pods: attached with some
// pods registered, or not attached at all. Attaching per switch (instead of
// leaving the programs on and unregistering) keeps the "iptables" mode free of
// every meshlane program, as on a node without meshlane.

import { closeSync } from "node:fs";
import { attach, detach } from "../loader/attach.js";
import { readCounters, type Counters } from "../loader/counters.js";
import * as bpf from "../loader/libbpf.js";
import { mapPinPath } from "../loader/pins.js";
import { reconcile, type PodMapFds } from "../loader/sync.js";
import type { TestNode, TestPod } from "../lab/topology/node.js";

interface Attached {
  pods: PodMapFds;
  counters: number;
}

export class MeshSwitch {
  private attached: Attached | null = null;
  readonly pinDir: string;

  constructor(private readonly node: TestNode) {
    this.pinDir = `/sys/fs/bpf/meshlane-${node.id}`;
  }

  /** Programs attached to the node's kubepods, exactly `registered` in the pod maps. */
  on(registered: TestPod[]): void {
    if (!this.attached) {
      attach({ cgroup: this.node.kubepods, pinDir: this.pinDir });
      const open = (name: Parameters<typeof mapPinPath>[1]) => {
        const fd = bpf.objGet(mapPinPath(this.pinDir, name));
        if (fd === null) throw new Error(`map ${name} is not pinned under ${this.pinDir} after attach`);
        return fd;
      };
      this.attached = {
        pods: { mesh_pods: open("mesh_pods"), mesh_pod_ips: open("mesh_pod_ips"), mesh_ports: open("mesh_ports"), mesh_cidrs: open("mesh_cidrs") },
        counters: open("mesh_counters"),
      };
    }
    const report = reconcile(this.attached.pods, this.node.kubepods, this.node.registrations(registered));
    const notRegistered = report.pods.filter((p) => p.state !== "registered");
    if (notRegistered.length) throw new Error(`pods not registered: ${JSON.stringify(notRegistered)}`);
  }

  /** No meshlane program anywhere; safe to call when already off. */
  async off(): Promise<void> {
    if (this.attached) {
      for (const fd of [...Object.values(this.attached.pods), this.attached.counters]) closeSync(fd);
      this.attached = null;
    }
    // Nothing is in flight between measurements, so there is nothing to drain.
    await detach({ pinDir: this.pinDir, drainMs: 0 });
  }

  /** Data-path counters since attach; null while off. */
  counters(): Counters | null {
    return this.attached ? readCounters(this.attached.counters) : null;
  }
}

/** after - before for every counter. */
export function counterDelta(before: Counters, after: Counters): Record<string, number> {
  return Object.fromEntries(Object.entries(after).map(([k, v]) => [k, Number(v - before[k as keyof Counters])]));
}
