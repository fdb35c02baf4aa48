// The per-hop micro-benchmark: one TCP connection, request/response ping-pong,
// with and without sockmap redirection. Both runs use a pod without Istio rules
// or sidecar; the client runs as the proxy uid and connects to its own pod's IP,
// the sidecar-to-app hop. In the registered pod meshlane pairs both ends into
// its sockhash without steering anything (STEER_PAIR_ONLY), so the bytes go
// socket to socket; in the unregistered pod the same connection takes the TCP
// stack over loopback. The data-path counters prove which one happened.

import { execFileSync } from "node:child_process";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import type { TestNode, TestPod } from "../lab/topology/node.js";
import { waitForLine } from "../lab/topology/node.js";
import { counterDelta, type MeshSwitch } from "./mesh.js";
import type { Plan } from "./plan.js";
import { median } from "./stats.js";
import { BENCH_NICE } from "./topology.js";

const SOURCE = join(dirname(fileURLToPath(import.meta.url)), "pingpong.c");
const ECHO_PORT = 9000;

/** Where client and server of one hop run: on one CPU (each message a context switch) or on two (a cross-CPU wakeup). */
export const PLACEMENTS = {
  "same-cpu": { client: "1", server: "1" },
  "two-cpus": { client: "0", server: "1" },
} as const;
export type CpuPlacement = keyof typeof PLACEMENTS;

export type Path = "tcp-stack" | "sockmap";

export interface PingPong {
  warmupRoundTrips: number;
  roundTrips: number;
  seconds: number;
  meanUs: number;
  p50Us: number;
  p99Us: number;
}

export interface HopMeasurement extends PingPong {
  repetition: number;
  path: Path;
  placement: CpuPlacement;
  bytes: number;
  /** sendmsg calls meshlane redirected per round trip: 2 when both directions went socket to socket. */
  redirectedPerRoundTrip: number;
}

export interface HopSummary {
  path: Path;
  placement: CpuPlacement;
  bytes: number;
  p50Us: number;
  p99Us: number;
  roundTripsPerSec: number;
  redirectedPerRoundTrip: number;
}

/** Compiles pingpong.c into dir with the C compiler the BPF build already needs. */
export function buildPingPong(dir: string): string {
  const out = join(dir, "pingpong");
  try {
    execFileSync("clang", ["-O2", "-Wall", "-o", out, SOURCE], { stdio: "pipe" });
  } catch (e) {
    throw new Error(`building ${SOURCE} failed: ${(e as { stderr?: Buffer }).stderr?.toString() ?? (e as Error).message}`);
  }
  return out;
}

export async function runHopBenchmark(node: TestNode, mesh: MeshSwitch, plan: Plan["hop"], binary: string): Promise<HopMeasurement[]> {
  const pods: Record<Path, TestPod> = {
    sockmap: await node.addPod("hop-mesh", { sidecar: false, iptables: false }),
    "tcp-stack": await node.addPod("hop-plain", { sidecar: false, iptables: false }),
  };
  const proxyUid = pods.sockmap.interception.proxyUid;
  // "all": the hop measured is sidecar to app, whose app end joins the sockhash only in that mode.
  mesh.on([{ pod: pods.sockmap, redirect: "all" }]);
  const out: HopMeasurement[] = [];
  for (const placement of Object.keys(PLACEMENTS) as CpuPlacement[]) {
    const cpus = PLACEMENTS[placement];
    for (const pod of Object.values(pods)) {
      await pod.stopProcesses();
      const echo = pod.spawn(["nice", "-n", BENCH_NICE, "taskset", "-c", cpus.server, binary, "serve", String(ECHO_PORT)]);
      await waitForLine(echo, /^listening/, `echo server in pod ${pod.name}`);
    }
    for (let repetition = 0; repetition < plan.repetitions; repetition++) {
      for (const bytes of plan.sizes) {
        const paths: Path[] = repetition % 2 ? ["tcp-stack", "sockmap"] : ["sockmap", "tcp-stack"];
        for (const path of paths) {
          const pod = pods[path];
          const before = mesh.counters()!;
          const r = await pod.exec(["nice", "-n", BENCH_NICE, "taskset", "-c", cpus.client, binary, "client", pod.ip, String(ECHO_PORT), String(bytes), String(plan.seconds)], {
            uid: proxyUid,
          });
          if (r.code !== 0) throw new Error(`pingpong client in pod ${pod.name} (${bytes} B, ${placement}) exited ${r.code}: ${r.stderr.trim()}`);
          const delta = counterDelta(before, mesh.counters()!);
          const result = JSON.parse(r.stdout.trim()) as PingPong;
          out.push({ ...result, repetition, path, placement, bytes, redirectedPerRoundTrip: (delta.CNT_MSG_REDIRECTED ?? 0) / (result.warmupRoundTrips + result.roundTrips) });
        }
      }
    }
  }
  for (const pod of Object.values(pods)) await pod.stopProcesses();
  return out;
}

export function summariseHops(ms: HopMeasurement[]): HopSummary[] {
  const groups = new Map<string, HopMeasurement[]>();
  for (const m of ms) {
    const k = `${m.placement}|${m.bytes}|${m.path}`;
    groups.set(k, [...(groups.get(k) ?? []), m]);
  }
  return [...groups.values()].map((g) => ({
    path: g[0]!.path,
    placement: g[0]!.placement,
    bytes: g[0]!.bytes,
    p50Us: median(g.map((m) => m.p50Us)),
    p99Us: median(g.map((m) => m.p99Us)),
    roundTripsPerSec: median(g.map((m) => m.roundTrips / m.seconds)),
    redirectedPerRoundTrip: median(g.map((m) => m.redirectedPerRoundTrip)),
  }));
}
