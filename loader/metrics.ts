// What `meshlane-loader run` exports on /metrics. Data-path counters and map
// occupancy are read from the kernel at scrape time, so they are never stale and
// cost nothing between scrapes.

import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";
import { readCounters } from "./counters.js";
import { COUNTERS, MAPS, type MapName } from "./maps/codecs.js";
import { countEntries } from "./pinned.js";
import type { SyncReport } from "./sync.js";

/** Maps whose occupancy is exported (sk storage cannot be walked from user space; config and counters are fixed-size). */
const COUNTED_MAPS: MapName[] = ["mesh_pods", "mesh_pod_ips", "mesh_ports", "mesh_cidrs", "mesh_pending", "mesh_socks"];

export interface LoaderMetrics {
  registry: Registry;
  recordSync(report: SyncReport, seconds: number): void;
  recordSyncError(reason: string): void;
}

export function createMetrics(mapFds: Record<MapName, number>, maxEntries: Partial<Record<MapName, number>>): LoaderMetrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: "meshlane_loader_" });

  new Counter({
    name: "meshlane_datapath_events_total",
    help: "Data-path events counted by the BPF programs (summed over CPUs); fallback_* are connections or messages left to the kernel's own path",
    labelNames: ["event"],
    registers: [registry],
    collect() {
      const values = readCounters(mapFds.mesh_counters);
      this.reset();
      for (const name of COUNTERS) this.inc({ event: name.replace(/^CNT_/, "").toLowerCase() }, Number(values[name]));
    },
  });
  new Gauge({
    name: "meshlane_map_entries",
    help: "Entries in each BPF map",
    labelNames: ["map"],
    registers: [registry],
    collect() {
      for (const map of COUNTED_MAPS) this.set({ map }, countEntries(mapFds[map], MAPS[map].key.size));
    },
  });
  const capacity = new Gauge({ name: "meshlane_map_capacity", help: "max_entries of each BPF map", labelNames: ["map"], registers: [registry] });
  for (const [map, n] of Object.entries(maxEntries)) capacity.set({ map }, n);

  const pods = new Gauge({ name: "meshlane_pods", help: "Registrations by state (registered, pending-cgroup, invalid, conflict)", labelNames: ["state"], registers: [registry] });
  const syncs = new Counter({ name: "meshlane_syncs_total", help: "Reconciles of the maps against the registry", registers: [registry] });
  const writes = new Counter({ name: "meshlane_map_writes_total", help: "Map entries written or deleted by reconciles", labelNames: ["op"], registers: [registry] });
  const errors = new Counter({ name: "meshlane_sync_errors_total", help: "Failed reconciles and registrations that could not be applied", labelNames: ["reason"], registers: [registry] });
  const duration = new Histogram({ name: "meshlane_sync_duration_seconds", help: "Time of one reconcile", buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1], registers: [registry] });
  const last = new Gauge({ name: "meshlane_last_sync_timestamp_seconds", help: "When the maps last matched the registry", registers: [registry] });

  return {
    registry,
    recordSync(report, seconds) {
      syncs.inc();
      duration.observe(seconds);
      last.set(Date.now() / 1000);
      writes.inc({ op: "put" }, report.writes);
      writes.inc({ op: "delete" }, report.deletes);
      for (const state of ["registered", "pending-cgroup", "invalid", "conflict"] as const) {
        pods.set({ state }, report.pods.filter((p) => p.state === state).length);
      }
      for (const p of report.pods) if (p.state === "invalid" || p.state === "conflict") errors.inc({ reason: p.reason ?? p.state });
    },
    recordSyncError(reason) {
      errors.inc({ reason });
    },
  };
}
