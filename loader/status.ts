// `meshlane-loader status`: what is attached where, which pods are registered
// with which cgroup, and the data-path counters, read from the pins alone (no
// loader process needs to be running).

import { existsSync, readFileSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { pinnedLink } from "./attach.js";
import { findCgroup2Mount } from "./cgroup.js";
import { counterLabel, readCounters } from "./counters.js";
import { AF_INET, MESH_CFG_DRAINING, PROGRAMS, PROGRAM_NAMES, type CounterName, type ProgramName } from "./maps/codecs.js";
import { openPinnedMaps } from "./pinned.js";
import { formatIp } from "../registry/ip.js";
import type { PodStatus } from "./sync.js";

export interface Status {
  pinDir: string;
  attached: boolean;
  draining: boolean;
  programs: { program: ProgramName; attachedTo: string }[];
  pods: { cgroupId: string; ips: string[]; namespace?: string; name?: string; uid?: string; cgroup?: string }[];
  counters: Record<string, string>;
}

/** Finds a cgroup directory by its id (inode), breadth-first and bounded, for display. */
function cgroupPathById(id: bigint): string {
  const root = findCgroup2Mount();
  if (!root) return `cgroup id ${id}`;
  const queue = [root];
  for (let seen = 0; queue.length && seen < 20_000; seen++) {
    const dir = queue.shift()!;
    if (statSync(dir, { bigint: true }).ino === id) return dir;
    try {
      for (const d of readdirSync(dir, { withFileTypes: true })) if (d.isDirectory()) queue.push(join(dir, d.name));
    } catch {
      /* vanished while walking */
    }
  }
  return `cgroup id ${id}`;
}

export function readStatus(pinDir: string, stateFile?: string): Status {
  const maps = openPinnedMaps(pinDir);
  try {
    const cfg = maps.maps.mesh_config.lookup(0)!;
    const programs = PROGRAM_NAMES.map((program) => {
      if (PROGRAMS[program].attach === "sockhash") return { program, attachedTo: "sockhash mesh_socks" };
      const link = pinnedLink(pinDir, program);
      return { program, attachedTo: link ? cgroupPathById(link.cgroupId) : "not attached" };
    });
    const ipsByCgroup = new Map<string, string[]>();
    for (const [key, cgroup] of maps.maps.mesh_pod_ips.entries()) {
      const id = cgroup.toString();
      ipsByCgroup.set(id, [...(ipsByCgroup.get(id) ?? []), formatIp(key.family === AF_INET ? key.addr.subarray(0, 4) : key.addr)]);
    }
    const known: PodStatus[] = stateFile && existsSync(stateFile) ? (JSON.parse(readFileSync(stateFile, "utf8")).pods as PodStatus[]) : [];
    const pods = [...maps.maps.mesh_pods.keys()].map((k) => {
      const cgroupId = k.toString();
      const who = known.find((p) => p.cgroupId === cgroupId);
      return { cgroupId, ips: ipsByCgroup.get(cgroupId) ?? [], ...(who ? { namespace: who.namespace, name: who.name, uid: who.uid, cgroup: who.cgroup } : {}) };
    });
    const counters = Object.fromEntries(Object.entries(readCounters(maps.fds.mesh_counters)).map(([k, v]) => [counterLabel(k as CounterName), v.toString()]));
    return {
      pinDir,
      attached: programs.every((p) => p.attachedTo !== "not attached"),
      draining: (cfg.flags & MESH_CFG_DRAINING) !== 0,
      programs,
      pods,
      counters,
    };
  } finally {
    maps.close();
  }
}

export function formatStatus(s: Status): string {
  const lines = [
    `pins: ${s.pinDir}${s.draining ? " (DRAINING: a detach is in progress)" : ""}`,
    "",
    "PROGRAM            ATTACHED TO",
    ...s.programs.map((p) => `${p.program.padEnd(18)} ${p.attachedTo}`),
    "",
    `REGISTERED PODS (${s.pods.length})`,
    "CGROUP ID   IPS                 POD",
    ...s.pods.map((p) => `${p.cgroupId.padEnd(11)} ${p.ips.join(",").padEnd(19)} ${p.name ? `${p.namespace}/${p.name} (${p.uid})` : "(name unknown: no loader state file)"}`),
    "",
    "COUNTERS",
    ...Object.entries(s.counters).map(([k, v]) => `${k.padEnd(24)} ${v}`),
  ];
  return lines.join("\n");
}
