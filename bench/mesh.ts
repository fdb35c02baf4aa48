// Switches meshlane on and off under the benchmark's pods: attached with some
// pods registered (each with a redirect mode), or not attached at all. Attaching
// per switch (instead of leaving the programs on and unregistering) keeps the
// "iptables" mode free of every meshlane program, as on a node without meshlane.

import { closeSync } from "node:fs";
import { attach, detach, pinnedLink } from "../loader/attach.js";
import { readCounters, type Counters } from "../loader/counters.js";
import * as bpf from "../loader/libbpf.js";
import { PROGRAMS, PROGRAM_NAMES, type ProgramName } from "../loader/maps/codecs.js";
import { mapPinPath } from "../loader/pins.js";
import { reconcile, type PodMapFds } from "../loader/sync.js";
import type { TestNode, TestPod } from "../lab/topology/node.js";
import type { RedirectMode } from "../registry/document.js";

interface Attached {
  pods: PodMapFds;
  counters: number;
  /** Ids of this attach's programs: the machine runs other copies of meshlane (other suites). */
  programIds: Partial<Record<ProgramName, number>>;
}

export interface Registered {
  pod: TestPod;
  redirect: RedirectMode;
}

export class MeshSwitch {
  private attached: Attached | null = null;
  readonly pinDir: string;

  constructor(private readonly node: TestNode, private readonly objectPath?: string) {
    this.pinDir = `/sys/fs/bpf/meshlane-${node.id}`;
  }

  /** Programs attached to the node's kubepods, exactly `registered` in the pod maps. */
  on(registered: Registered[]): void {
    if (!this.attached) {
      attach({ cgroup: this.node.kubepods, pinDir: this.pinDir, ...(this.objectPath ? { objectPath: this.objectPath } : {}) });
      const open = (name: Parameters<typeof mapPinPath>[1]) => {
        const fd = bpf.objGet(mapPinPath(this.pinDir, name));
        if (fd === null) throw new Error(`map ${name} is not pinned under ${this.pinDir} after attach`);
        return fd;
      };
      const socks = open("mesh_socks");
      const programIds: Attached["programIds"] = {};
      try {
        for (const name of PROGRAM_NAMES) {
          if (PROGRAMS[name].attach === "sockhash") {
            const [id] = bpf.progQuery(socks, PROGRAMS[name].attachType);
            if (id !== undefined) programIds[name] = id;
          } else {
            const link = pinnedLink(this.pinDir, name);
            if (link) programIds[name] = link.progId;
          }
        }
      } finally {
        closeSync(socks);
      }
      this.attached = {
        pods: { mesh_pods: open("mesh_pods"), mesh_pod_ips: open("mesh_pod_ips"), mesh_ports: open("mesh_ports"), mesh_cidrs: open("mesh_cidrs") },
        counters: open("mesh_counters"),
        programIds,
      };
    }
    const registrations = Object.fromEntries(
      registered.map(({ pod, redirect }) => {
        const r = pod.registration();
        return [pod.uid, { ...r, interception: { ...r.interception, redirect } }];
      }),
    );
    const report = reconcile(this.attached.pods, this.node.kubepods, registrations);
    const notRegistered = report.pods.filter((p) => p.state !== "registered");
    if (notRegistered.length) throw new Error(`pods not registered: ${JSON.stringify(notRegistered)}`);
  }

  /** No meshlane program anywhere; safe to call when already off. drainMs: as `meshlane-loader detach` takes it. */
  async off(drainMs = 0): Promise<void> {
    if (this.attached) {
      for (const fd of [...Object.values(this.attached.pods), this.attached.counters]) closeSync(fd);
      this.attached = null;
    }
    await detach({ pinDir: this.pinDir, drainMs });
  }

  /** Data-path counters since attach; null while off. */
  counters(): Counters | null {
    return this.attached ? readCounters(this.attached.counters) : null;
  }

  /** The attached programs' ids ({} while off). */
  programIds(): Partial<Record<ProgramName, number>> {
    return this.attached?.programIds ?? {};
  }
}

/** after - before for every counter. */
export function counterDelta(before: Counters, after: Counters): Record<string, number> {
  return Object.fromEntries(Object.entries(after).map(([k, v]) => [k, Number(v - before[k as keyof Counters])]));
}
