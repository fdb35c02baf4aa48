// What `meshlane-loader run` exports on /metrics. Data-path counters and map
// occupancy are read from the kernel at scrape time, so they are never stale and
// cost nothing between scrapes.

import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";
import { counterLabel, readCounters } from "./counters.js";
import type { MapHandles } from "./map-handle.js";
import { COUNTERS, mapsWithRole } from "./maps/codecs.js";
import { POD_REASONS, type PodState } from "./pod-steps.js";
import type { SyncReport } from "./sync.js";

/** Maps whose occupancy is exported: config and counters are fixed-size arrays, socket storage cannot be walked. */
const COUNTED_MAPS = mapsWithRole("registry", "programs");
/** Maps with a capacity of their own (socket storage grows with the sockets). */
const SIZED_MAPS = mapsWithRole("registry", "programs", "config", "counters");

export interface LoaderMetrics {
  registry: Registry;
  recordSync(report: SyncReport, seconds: number): void;
  recordSyncError(reason: string): void;
}

export function createMetrics(maps: MapHandles): LoaderMetrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: "meshlane_loader_" });

  new Counter({
    name: "meshlane_datapath_events_total",
    help: "Data-path events counted by the BPF programs (summed over CPUs); fallback_* are connections or messages left to the kernel's own path",
    labelNames: ["event"],
    registers: [registry],
    collect() {
      const values = readCounters(maps.mesh_counters.fd);
      this.reset();
      for (const name of COUNTERS) this.inc({ event: counterLabel(name) }, Number(values[name]));
    },
  });
  new Gauge({
    name: "meshlane_map_entries",
    help: "Entries in each BPF map",
    labelNames: ["map"],
    registers: [registry],
    collect() {
      for (const map of COUNTED_MAPS) this.set({ map }, maps[map].count());
    },
  });
  const capacity = new Gauge({ name: "meshlane_map_capacity", help: "max_entries of each BPF map", labelNames: ["map"], registers: [registry] });
  for (const map of SIZED_MAPS) capacity.set({ map }, maps[map].capacity());

  const pods = new Gauge({
    name: "meshlane_pods",
    help: "Registrations by state and reason: registered/applied, pending-cgroup (no-cgroup, cgroup-vanished), invalid/invalid-document, conflict/ip-taken, not-applied (map-full, write-failed)",
    labelNames: ["state", "reason"],
    registers: [registry],
  });
  const syncs = new Counter({ name: "meshlane_syncs_total", help: "Reconciles of the maps against the registry", registers: [registry] });
  const writes = new Counter({ name: "meshlane_map_writes_total", help: "Map entries written or deleted by reconciles", labelNames: ["op"], registers: [registry] });
  const notWritten = new Counter({ name: "meshlane_map_entries_not_written_total", help: "Entries a reconcile planned but did not write (full map, failed write), by the pod they were for left as it was", registers: [registry] });
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
      for (const [state, reasons] of Object.entries(POD_REASONS) as [PodState, readonly string[]][]) {
        for (const reason of reasons) pods.set({ state, reason }, report.pods.filter((p) => p.state === state && p.reason === reason).length);
      }
      // Per sync that planned the pod: a change syncs only the pods it affects, a full sync all of them.
      const touched = new Set(report.touched);
      for (const p of report.pods) if (touched.has(p.uid) && (p.state === "invalid" || p.state === "conflict" || p.state === "not-applied")) errors.inc({ reason: p.reason });
      notWritten.inc(report.notWritten.reduce((n, w) => n + w.entries, 0));
    },
    recordSyncError(reason) {
      errors.inc({ reason });
    },
  };
}
