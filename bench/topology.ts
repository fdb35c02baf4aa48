// The benchmark's pods and one measurement on them. Three pairs of pods on one
// test node (lab/topology), each a client pod running wrk and a server pod
// running the same nginx:
//   plain     no rules, no sidecar (not even conntrack runs there): no-mesh
//   iptables  Istio's rules and HAProxy sidecars: iptables and unregistered
//   meshlane  configured exactly like the iptables pair: meshlane
// The meshed modes do not share pods because a pair that has just carried
// iptables-redirected connections leaves conntrack and TIME_WAIT entries that
// clash with the tuples of meshlane-steered ones (and the other way round):
// new connections then stall for a retransmission timeout, which would measure
// the mode switch instead of the mode. (It also trips a meshlane bug, see the
// README.) "unregistered" is the iptables path by definition, so it shares the
// iptables pair.

import { readFileSync } from "node:fs";
import { join } from "node:path";
import { TestNode, type TestPod } from "../lab/topology/node.js";
import { run } from "../lab/topology/run.js";
import { cgroupCpuUsec, cpuBusyUsec } from "./cpu.js";
import { counterDelta, MeshSwitch } from "./mesh.js";
import { APP_PORT, startNginx } from "./nginx.js";
import type { Mode, Step } from "./plan.js";
import { parseWrk, wrkArgv, type WrkResult } from "./wrk.js";

/**
 * Every process of a measurement (wrk, both sidecars, nginx) on CPU 1; CPU 0 is
 * left to this orchestrator and the rest of the machine. Measured on this 2-vCPU
 * VM: splitting client and server over the two CPUs makes each request a
 * cross-CPU wakeup of a vCPU that may have gone idle, and p90s jumped between
 * 0.1 and 2 ms from one repetition to the next; on one CPU they did not.
 */
export const BENCH_CPU = "1";

/**
 * The machine is shared with other test suites, which are not pinned. At nice
 * -20 a measured process outweighs a nice-0 one about 87 to 1, so the others
 * move to CPU 0 instead of taking turns on the benchmark CPU; they are slowed,
 * never stopped (a real-time class would stop them).
 */
export const BENCH_NICE = "-20";

/**
 * Other work on the benchmark CPU beyond this share of the run's wall time (the
 * machine is shared with other test suites) disturbs latency and rate alike:
 * such a measurement is taken again, at most MAX_ATTEMPTS times in all and
 * while the run's retry budget lasts, and the least disturbed attempt is kept.
 * The share is recorded with each result.
 */
export const MAX_FOREIGN_SHARE = 0.1;
export const MAX_ATTEMPTS = 3;

/** Per-namespace settings applied to every benchmark pod alike. */
const POD_SYSCTLS = [
  // close mode opens thousands of connections a second: reuse TIME_WAIT ports and
  // let conntrack forget closed connections quickly, so neither ephemeral ports nor
  // the (machine-wide) conntrack table run out during a run.
  "net.ipv4.ip_local_port_range=1024 65000",
  "net.ipv4.tcp_tw_reuse=1",
  "net.netfilter.nf_conntrack_tcp_timeout_time_wait=1",
];

export interface Measurement {
  repetition: number;
  mode: Mode;
  connMode: Step["point"]["connMode"];
  connections: number;
  wrk: WrkResult;
  /** CPU time of the client and server pods' cgroups during the measured run. */
  podCpuSec: number;
  /** Busy time of the benchmark CPU not spent by the pods, as a share of the run's wall time. */
  foreignCpuShare: number;
  /** How many times the measurement was taken (more than 1: earlier attempts were disturbed). */
  attempts: number;
  /** meshlane's data-path counters during the run (attached modes only). */
  counters?: Record<string, number>;
  /** Connections Istio's REDIRECT rules caught: outbound in the client pod, inbound in the server pod. */
  iptablesRedirects?: { outbound: number; inbound: number };
}

interface Pair {
  client: TestPod;
  server: TestPod;
}

export class BenchTopology {
  private constructor(
    readonly node: TestNode,
    readonly mesh: MeshSwitch,
    private readonly pairs: Record<"plain" | "iptables" | "meshlane", Pair>,
    private retrySecondsLeft: number,
  ) {}

  /** Builds everything; on failure removes what it built before rethrowing. */
  static async create(register: (cleanup: () => Promise<void>) => void, retryBudgetSec: number): Promise<BenchTopology> {
    const node = await TestNode.create();
    const mesh = new MeshSwitch(node);
    register(async () => {
      await mesh.off().catch((e) => console.error(`bench: detach failed: ${(e as Error).message}`));
      await node.destroy();
    });
    const meshedPair = async (prefix: string): Promise<Pair> => ({
      client: await node.addPod(`${prefix}-client`, { sidecarCpus: BENCH_CPU }),
      server: await node.addPod(`${prefix}-server`, { sidecarCpus: BENCH_CPU }),
    });
    const pairs = {
      plain: {
        client: await node.addPod("plain-client", { sidecar: false, iptables: false }),
        server: await node.addPod("plain-server", { sidecar: false, iptables: false }),
      },
      iptables: await meshedPair("ipt"),
      meshlane: await meshedPair("ml"),
    };
    for (const [name, pair] of Object.entries(pairs)) {
      await applySysctls(pair.client);
      await applySysctls(pair.server);
      await startNginx(pair.server, join(node.workDir, `nginx-${name}`), BENCH_CPU);
      for (const pod of [pair.client, pair.server]) await prioritise(pod);
    }
    return new BenchTopology(node, mesh, pairs, retryBudgetSec);
  }

  private async setMode(mode: Mode): Promise<Pair> {
    switch (mode) {
      case "no-mesh":
        await this.mesh.off();
        return this.pairs.plain;
      case "iptables":
        await this.mesh.off();
        return this.pairs.iptables;
      case "unregistered":
        this.mesh.on([]);
        return this.pairs.iptables;
      case "meshlane":
        this.mesh.on([this.pairs.meshlane.client, this.pairs.meshlane.server]);
        return this.pairs.meshlane;
    }
  }

  private async wrk(pair: Pair, step: Step, seconds: number): Promise<WrkResult> {
    const argv = wrkArgv({ url: `http://${pair.server.ip}:${APP_PORT}/`, connections: step.point.connections, seconds, mode: step.point.connMode });
    const r = await pair.client.exec(["nice", "-n", BENCH_NICE, "taskset", "-c", BENCH_CPU, ...argv]);
    if (r.code !== 0) throw new Error(`${argv.join(" ")} in pod ${pair.client.name} exited ${r.code}: ${r.stderr.trim()}`);
    try {
      return parseWrk(r.stdout);
    } catch (e) {
      throw new Error(`${step.mode} ${step.point.connMode} c=${step.point.connections}: ${(e as Error).message}`);
    }
  }

  /** One point in one mode; repeated while other work disturbed the benchmark CPU (see MAX_FOREIGN_SHARE). */
  async measure(step: Step, seconds: number, warmupSeconds: number): Promise<Measurement> {
    let best: Measurement | null = null;
    for (let attempt = 1; attempt <= MAX_ATTEMPTS; attempt++) {
      if (attempt > 1) this.retrySecondsLeft -= seconds + warmupSeconds;
      const m = await this.measureOnce(step, seconds, warmupSeconds);
      if (!best || m.foreignCpuShare < best.foreignCpuShare) best = m;
      best.attempts = attempt;
      if (best.foreignCpuShare <= MAX_FOREIGN_SHARE || this.retrySecondsLeft < seconds + warmupSeconds) break;
    }
    return best!;
  }

  private async measureOnce(step: Step, seconds: number, warmupSeconds: number): Promise<Measurement> {
    const pair = await this.setMode(step.mode);
    if (warmupSeconds > 0) await this.wrk(pair, step, warmupSeconds);
    const podCpu = () => cgroupCpuUsec(pair.client.cgroup) + cgroupCpuUsec(pair.server.cgroup);
    const meshed = step.mode !== "no-mesh";
    const redirects0 = meshed ? await redirects(pair) : null;
    const counters0 = this.mesh.counters();
    const cpu0 = podCpu(), busy0 = cpuBusyUsec(BENCH_CPU), t0 = performance.now();
    const wrk = await this.wrk(pair, step, seconds);
    const cpu1 = podCpu(), busy1 = cpuBusyUsec(BENCH_CPU), t1 = performance.now();
    const counters1 = this.mesh.counters();
    const redirects1 = meshed ? await redirects(pair) : null;
    const podUsec = cpu1 - cpu0;
    return {
      repetition: step.repetition,
      mode: step.mode,
      connMode: step.point.connMode,
      connections: step.point.connections,
      wrk,
      podCpuSec: podUsec / 1e6,
      foreignCpuShare: Math.max(0, busy1 - busy0 - podUsec) / ((t1 - t0) * 1000),
      attempts: 1,
      ...(counters0 && counters1 ? { counters: counterDelta(counters0, counters1) } : {}),
      ...(redirects0 && redirects1
        ? { iptablesRedirects: { outbound: redirects1.outbound - redirects0.outbound, inbound: redirects1.inbound - redirects0.inbound } }
        : {}),
    };
  }
}

async function redirects(pair: Pair): Promise<{ outbound: number; inbound: number }> {
  const [c, s] = await Promise.all([pair.client.redirectCounters(), pair.server.redirectCounters()]);
  return { outbound: c.outbound, inbound: s.inbound };
}

/** Gives every thread already in the pod (sidecar, nginx) the benchmark's priority. */
export async function prioritise(pod: TestPod): Promise<void> {
  const tids = readFileSync(join(pod.cgroup, "cgroup.threads"), "utf8").split("\n").filter(Boolean);
  if (tids.length) await run("renice", ["-n", BENCH_NICE, "-p", ...tids]);
}

async function applySysctls(pod: TestPod): Promise<void> {
  // The meshed pods' nat rules load nf_conntrack, so its sysctls exist by now.
  for (const s of POD_SYSCTLS) await run("ip", ["netns", "exec", pod.netns, "sysctl", "-q", "-w", s]);
}
