// `node --import tsx bench/program-cost.ts [--seconds N] [--object PATH]` (root):
// what meshlane's programs cost per connection, from the kernel's own BPF
// statistics (kernel.bpf_stats_enabled=1), on the benchmark's topology. For each
// case, a new connection per request and keep-alive, it prints per program the
// runs and ns per request (= per connection with a new connection per request),
// the pods' CPU time per request in the same run, and the programs' share of it.
// Cases:
//   unregistered-alone    the iptables pair, programs attached, no pod registered
//   unregistered-beside   the iptables pair while the meshlane pair is registered:
//                         the cost for everyone else on a node that uses meshlane
//   proxy                 the meshlane pair registered in proxy mode
// Not the benchmark: one short run per case, for the before/after breakdown of
// docs/benchmarks.md. bpf_stats times each program run, so machine load moves
// these figures far less than it moves req/s; the load average is printed.

import { execFileSync } from "node:child_process";
import { parseArgs } from "node:util";
import { enableBpfStats, readProgStats, statsDelta, type ProgStats } from "./bpfstats.js";
import { cgroupCpuUsec } from "./cpu.js";
import { counterDelta } from "./mesh.js";
import { loadAverage1m } from "./machine.js";
import { BenchTopology, type Pair } from "./topology.js";
import type { ConnectionMode } from "./wrk.js";

type Case = "unregistered-alone" | "unregistered-beside" | "proxy";
const CASES: Case[] = ["unregistered-alone", "unregistered-beside", "proxy"];
const CONN_MODES: ConnectionMode[] = ["close", "keep-alive"];
const CONNECTIONS = 4;

if (process.getuid?.() !== 0) {
  console.error("program-cost: needs root (network namespaces, cgroups, BPF programs)");
  process.exit(1);
}
const { values } = parseArgs({ options: { seconds: { type: "string", default: "5" }, object: { type: "string" } } });
const seconds = Number(values.seconds);
if (!Number.isInteger(seconds) || seconds < 1 || seconds > 60) throw new Error(`--seconds must be an integer from 1 to 60, got ${values.seconds}`);
execFileSync("taskset", ["-a", "-p", "-c", "0", String(process.pid)], { stdio: "ignore" });

const cleanups: (() => Promise<void>)[] = [];
const cleanup = async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch((e) => console.error(`program-cost: cleanup: ${(e as Error).message}`));
};

interface Row {
  case: Case;
  connMode: ConnectionMode;
  requests: number;
  cpuNsPerRequest: number;
  stats: ProgStats;
  counters: Record<string, number>;
}

async function measure(topology: BenchTopology, c: Case, connMode: ConnectionMode): Promise<Row> {
  const ml = topology.pairs["ml-tcp"];
  const registered = [{ pod: ml.client, redirect: "proxy" as const }, { pod: ml.server, redirect: "proxy" as const }];
  topology.mesh.on(c === "unregistered-alone" ? [] : registered);
  const pair: Pair = c === "proxy" ? ml : topology.pairs["ipt-tcp"];
  const spec = { connections: CONNECTIONS, connMode, placement: "one-cpu" as const };
  await topology.wrk(pair, spec, 1); // warm-up: the sidecars' first connections
  const cpu = () => cgroupCpuUsec(pair.client.cgroup) + cgroupCpuUsec(pair.server.cgroup);
  const ids = topology.mesh.programIds();
  const s0 = readProgStats(ids), k0 = topology.mesh.counters()!, c0 = cpu();
  const wrk = await topology.wrk(pair, spec, seconds);
  const c1 = cpu(), s1 = readProgStats(ids), k1 = topology.mesh.counters()!;
  return { case: c, connMode, requests: wrk.requests, cpuNsPerRequest: ((c1 - c0) * 1000) / wrk.requests, stats: statsDelta(s0, s1), counters: counterDelta(k0, k1) };
}

function print(r: Row): void {
  const total = Object.values(r.stats).reduce((n, p) => n + p.runTimeNs, 0) / r.requests;
  console.log(`\n${r.case} ${r.connMode}: ${r.requests} requests, pods' CPU ${(r.cpuNsPerRequest / 1000).toFixed(1)} µs/request, programs ${total.toFixed(0)} ns/request = ${((total / r.cpuNsPerRequest) * 100).toFixed(2)}%`);
  for (const [name, p] of Object.entries(r.stats)) {
    if (!p.runCnt) continue;
    console.log(`  ${name.padEnd(18)} ${(p.runCnt / r.requests).toFixed(2).padStart(6)} runs/req ${(p.runTimeNs / p.runCnt).toFixed(0).padStart(5)} ns/run ${(p.runTimeNs / r.requests).toFixed(0).padStart(6)} ns/req`);
  }
  const moved = Object.entries(r.counters).filter(([, v]) => v > 0).map(([k, v]) => `${k.replace(/^CNT_/, "")} ${(v / r.requests).toFixed(2)}`);
  if (moved.length) console.log(`  counters per request: ${moved.join(", ")}`);
}

for (const [signal, code] of [["SIGINT", 130], ["SIGTERM", 143]] as const) {
  process.once(signal, () => void cleanup().finally(() => process.exit(code)));
}
const loadStart = loadAverage1m();
try {
  cleanups.push(enableBpfStats());
  const topology = await BenchTopology.create((c) => cleanups.push(c), 0, values.object);
  for (const c of CASES) for (const m of CONN_MODES) print(await measure(topology, c, m));
  console.log(`\nload average (1 min): ${loadStart.toFixed(2)} at start, ${loadAverage1m().toFixed(2)} at end; ${CONNECTIONS} connections, ${seconds} s per case, HAProxy in TCP mode, one CPU`);
} finally {
  await cleanup();
}
