// Reads the per-CPU data-path counters and sums them over CPUs.

import { MapHandle } from "./map-handle.js";
import { COUNTERS, type CounterName } from "./maps/codecs.js";

export type Counters = Record<CounterName, bigint>;

export function readCounters(countersFd: number): Counters {
  const map = new MapHandle("mesh_counters", countersFd);
  const out = {} as Counters;
  COUNTERS.forEach((name, i) => {
    out[name] = (map.lookupPerCpu(i) ?? []).reduce((sum, v) => sum + v, 0n);
  });
  return out;
}

/** A counter as metrics and `status` name it: CNT_FALLBACK_NAT → fallback_nat. */
export function counterLabel(name: CounterName): string {
  return name.replace(/^CNT_/, "").toLowerCase();
}
