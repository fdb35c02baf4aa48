// Switching one loaded pod pair between the iptables path and meshlane, the way
// users meet it: a registration added (iptables → meshlane), removed (meshlane →
// iptables, the programs stay attached), and `detach` at uninstall. Before each
// switch the pair carries short-connection traffic long enough to be in steady
// state, so the connections of the old path leave their conntrack and TIME_WAIT
// entries behind; the window after the switch is measured as consecutive wrk
// runs. The window's p99 is bounded by its worst segment's p99 (no segment has
// more than 1% of its requests above it, so neither has their union).

import type { TestPod } from "../lab/topology/node.js";
import { run } from "../lab/topology/run.js";
import { counterDelta } from "./mesh.js";
import type { SwitchPlan } from "./plan.js";
import type { BenchTopology, Pair } from "./topology.js";
import type { WrkResult } from "./wrk.js";

export type SwitchKind = "register" | "deregister" | "detach";
export const SWITCH_DRAIN_MS = 2000; // meshlane-loader detach's default

/** Kernel counters of one pod's namespace that show stalled handshakes. */
export interface StallCounters {
  synRetrans: number;
  /** SYNs a TIME_WAIT socket dropped on the PAWS check (TcpExt PAWSTimewait), and all other PAWS drops. */
  pawsTimewait: number;
  pawsOther: number;
  /** conntrack: packets whose entry could not be inserted, or were dropped. */
  conntrackInsertFailed: number;
  conntrackDrop: number;
}

export interface SwitchMeasurement {
  kind: SwitchKind;
  /** The steady state right before the switch, on the path switched from… */
  steadyBefore: WrkResult;
  /** …and the pods' stall counters during it. */
  steadyStalls: PairStalls;
  /** TIME_WAIT sockets per pod at the switch, by local address:port and peer address. */
  timeWait: { client: Record<string, number>; server: Record<string, number> };
  segments: WrkResult[];
  /** Per pod, during the window. */
  stalls: PairStalls;
  /** meshlane's data-path counters during the window (when attached). */
  counters?: Record<string, number>;
}

function netstatField(text: string, section: string, field: string): number {
  const lines = text.split("\n").filter((l) => l.startsWith(`${section}:`));
  for (let i = 0; i + 1 < lines.length; i += 2) {
    const names = lines[i]!.split(/\s+/), values = lines[i + 1]!.split(/\s+/);
    const at = names.indexOf(field);
    if (at > 0) return Number(values[at]);
  }
  return 0;
}

/** Sums a column of /proc/net/stat/nf_conntrack (hexadecimal, one row per CPU). */
function conntrackField(text: string, field: string): number {
  const [head, ...rows] = text.trim().split("\n");
  const at = head!.trim().split(/\s+/).indexOf(field);
  return at < 0 ? 0 : rows.reduce((n, r) => n + parseInt(r.trim().split(/\s+/)[at]!, 16), 0);
}

async function podStalls(pod: TestPod): Promise<StallCounters> {
  const read = async (file: string) => (await run("ip", ["netns", "exec", pod.netns, "cat", file])).stdout;
  const [netstat, snmpCt] = await Promise.all([read("/proc/net/netstat"), read("/proc/net/stat/nf_conntrack")]);
  return {
    synRetrans: netstatField(netstat, "TcpExt", "TCPSynRetrans"),
    pawsTimewait: netstatField(netstat, "TcpExt", "PAWSTimewait"),
    pawsOther: netstatField(netstat, "TcpExt", "PAWSEstab") + netstatField(netstat, "TcpExt", "PAWSActive") + netstatField(netstat, "TcpExt", "PAWSOldAck"),
    conntrackInsertFailed: conntrackField(snmpCt, "insert_failed"),
    conntrackDrop: conntrackField(snmpCt, "drop"),
  };
}

const LISTENER_PORTS = new Set(["8080", "15001", "15006"]);

/** TIME_WAIT sockets in a pod by local port: which hop's old connections a new SYN can meet. */
async function timeWaitByPort(pod: TestPod): Promise<Record<string, number>> {
  const r = await run("ip", ["netns", "exec", pod.netns, "ss", "-Htan", "state", "time-wait"]);
  const out: Record<string, number> = {};
  for (const line of r.stdout.split("\n").filter(Boolean)) {
    // Recv-Q Send-Q Local:Port Peer:Port: keep the local address and port, the peer's address.
    const [, , local, peer] = line.trim().split(/\s+/);
    const key = `${local!.replace(/:(\d+)$/, (p, port: string) => (LISTENER_PORTS.has(port) ? p : ":ephemeral"))} ← ${peer!.replace(/:\d+$/, "")}`;
    out[key] = (out[key] ?? 0) + 1;
  }
  return out;
}

export interface PairStalls {
  client: StallCounters;
  server: StallCounters;
}

async function pairStalls(pair: Pair): Promise<PairStalls> {
  const [client, server] = await Promise.all([podStalls(pair.client), podStalls(pair.server)]);
  return { client, server };
}

const minus = (a: StallCounters, b: StallCounters) =>
  Object.fromEntries(Object.keys(a).map((k) => [k, a[k as keyof StallCounters] - b[k as keyof StallCounters]])) as unknown as StallCounters;

/** Sum of one counter over both pods. */
export const stallTotal = (s: PairStalls, k: keyof StallCounters) => s.client[k] + s.server[k];

export async function runSwitchSeries(topo: BenchTopology, plan: SwitchPlan, log: (line: string) => void): Promise<SwitchMeasurement[]> {
  const pair = topo.pairs.switch;
  const registered = [{ pod: pair.client, redirect: "proxy" as const }, { pod: pair.server, redirect: "proxy" as const }];
  const spec = { connections: plan.connections, connMode: "close" as const, placement: "one-cpu" as const };
  /** Consecutive wrk runs filling `seconds`, with the pods' stall counters over them. */
  const traffic = async (seconds: number, segmentSeconds: number) => {
    const stalls0 = await pairStalls(pair);
    const segments: WrkResult[] = [];
    for (let t = 0; t < seconds; t += segmentSeconds) segments.push(await topo.wrk(pair, spec, Math.min(segmentSeconds, seconds - t)));
    const stalls1 = await pairStalls(pair);
    return { segments, stalls: { client: minus(stalls1.client, stalls0.client), server: minus(stalls1.server, stalls0.server) } };
  };
  const out: SwitchMeasurement[] = [];
  const measureSwitch = async (kind: SwitchKind, doSwitch: () => Promise<void>) => {
    const steady = await traffic(plan.steadySeconds, plan.steadySeconds);
    const timeWait = { client: await timeWaitByPort(pair.client), server: await timeWaitByPort(pair.server) };
    await doSwitch();
    const counters0 = topo.mesh.counters();
    const { segments, stalls } = await traffic(plan.windowSeconds, plan.segmentSeconds);
    const counters1 = topo.mesh.counters();
    const m: SwitchMeasurement = {
      kind,
      steadyBefore: steady.segments[0]!,
      steadyStalls: steady.stalls,
      timeWait,
      segments,
      stalls,
      ...(counters0 && counters1 ? { counters: counterDelta(counters0, counters1) } : {}),
    };
    out.push(m);
    log(`switch ${kind}: steady p99 ${Math.round(m.steadyBefore.latencyUs.p99)} µs, window p99 ≤ ${Math.round(windowP99Us(m))} µs, SYN retransmissions client/server ${stalls.client.synRetrans}/${stalls.server.synRetrans}, PAWS drops in TIME_WAIT ${stalls.client.pawsTimewait}/${stalls.server.pawsTimewait} (steady: ${steady.stalls.client.synRetrans + steady.stalls.server.synRetrans} SYN retransmissions)`);
  };
  // Attached but unregistered is the iptables path (the programs leave such pods alone).
  await topo.mesh.off();
  topo.mesh.on([]);
  await measureSwitch("register", async () => topo.mesh.on(registered));
  await measureSwitch("deregister", async () => topo.mesh.on([]));
  // Back on meshlane; that switch's own window passes before the steady state that precedes detach.
  topo.mesh.on(registered);
  await traffic(plan.windowSeconds, plan.segmentSeconds);
  await measureSwitch("detach", () => topo.mesh.off(SWITCH_DRAIN_MS));
  return out;
}

export const windowP99Us = (m: SwitchMeasurement) => Math.max(...m.segments.map((s) => s.latencyUs.p99));

export function switchFigure(m: SwitchMeasurement): { kind: SwitchKind; windowOverSteadyP99: number | null } {
  const steady = m.steadyBefore.latencyUs.p99;
  return { kind: m.kind, windowOverSteadyP99: steady > 0 ? windowP99Us(m) / steady : null };
}
