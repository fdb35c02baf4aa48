// Reads the per-CPU data-path counters and sums them over CPUs.

import * as bpf from "./libbpf.js";
import { COUNTERS, MAPS, type CounterName } from "./maps/codecs.js";

export type Counters = Record<CounterName, bigint>;

export function readCounters(countersFd: number): Counters {
  const cpus = bpf.possibleCpus();
  const { key, value } = MAPS.mesh_counters;
  const out = {} as Counters;
  COUNTERS.forEach((name, i) => {
    // Per-CPU maps return one 8-byte-aligned value per possible CPU.
    const raw = bpf.mapLookup(countersFd, key.encode(i), value.size * cpus);
    let sum = 0n;
    for (let c = 0; raw && c < cpus; c++) sum += value.decode(raw.subarray(c * value.size));
    out[name] = sum;
  });
  return out;
}
