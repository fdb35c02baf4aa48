// Differential test (issue 11.5): meshlane must send to the sidecar exactly what Istio's
// own iptables sends there, and the sidecar must see the same original destination.
// For seeded generated pods (random valid include/exclude ports and CIDRs, IPv4 and IPv6,
// "*", empty and absent lists, the proxy's control ports): Istio's injector writes the
// istio-init container, Istio's istio-iptables programs a fresh pod namespace with its
// exact arguments, and a fixed set of destinations is probed twice — iptables only (pod
// not registered), then with meshlane's settings for the pod (derived from the injected
// pod by mesh/istio) in the BPF maps. Every probe's outcome must be identical.
// (A namespace is not reused: istio-iptables picks its iptables backend by which one
// already holds tables there, so a second run in the same namespace takes another path
// than any real pod's first run.)
//
//   MESHLANE_DIFF_SEED=<n> MESHLANE_DIFF_PODS=<n> replay a run (defaults below).
// Cost per pod: a namespace, one istio-iptables run, 2 × 68 connections on the lab's
// bridge and loopback.

import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync, type ChildProcess } from "node:child_process";
import { join } from "node:path";
import { istioSettings } from "../../mesh/istio/index.js";
import { detectInjection } from "../../mesh/istio/detect.js";
import { TRAFFIC_ANNOTATIONS } from "../../mesh/istio/names.js";
import { readPod } from "../../mesh/pod.js";
import { inject } from "../../lab/istio/injector.js";
import { istioInitOf, runIstioIptables } from "../../lab/istio/capture.js";
import { Mesh } from "../../lab/topology/mesh.js";
import { prng } from "../../lab/prng.js";
import type { TestPod } from "../../lab/topology/node.js";
import { run } from "../../lab/topology/run.js";
import { reconcile } from "../../loader/sync.js";
import type { Interception } from "../../registry/document.js";

const SEED = Number(process.env.MESHLANE_DIFF_SEED ?? 20261201);
const PODS = Number(process.env.MESHLANE_DIFF_PODS ?? 240);
const REPO = new URL("../..", import.meta.url).pathname;

// Destinations outside the pod: the peer pod's own addresses (10.77.0.2, fd77::2 on the
// lab's bridge) and four more addresses the peer holds, in ranges the generator names.
const EXTRA = ["10.80.1.5", "10.81.2.6", "fd00:80::5", "fd00:81::6"];
const CIDRS = [
  "10.80.0.0/16", "10.80.1.0/24", "10.80.1.5/32", "10.81.0.0/16", "10.77.0.0/16", "10.77.0.2/32", "0.0.0.0/0", "192.168.0.0/16",
  "fd00:80::/32", "fd00:81::/48", "fd00:81::6/128", "fd77::/64", "::/0", "2001:db8::/32",
];
const PORTS = [80, 443, 3306, 8080, 15000, 15004, 15008, 15020, 15021, 15090];
const OUT_PORTS = [80, 443, 3306, 15000, 15020, 15090];
const IN_PORTS = [80, 443, 3306, 8080, 15008, 15020, 15021];

function generate(rnd: () => number, n: number): Record<string, string>[] {
  const pick = <T>(from: readonly T[], max: number) => {
    const k = Math.floor(rnd() * (max + 1));
    return [...new Set(Array.from({ length: k }, () => from[Math.floor(rnd() * from.length)]!))];
  };
  /** absent (the template's default), empty, "*" where allowed, or a list */
  const list = <T>(from: readonly T[], max: number, star: boolean): string | undefined => {
    const r = rnd();
    if (r < 0.15) return undefined;
    if (r < 0.25) return "";
    if (star && r < 0.55) return "*";
    return pick(from, max).join(",");
  };
  const a = TRAFFIC_ANNOTATIONS;
  return Array.from({ length: n }, () => {
    const ann: Record<string, string | undefined> = {
      [a.includeOutboundIPRanges]: list(CIDRS, 3, true),
      [a.excludeOutboundIPRanges]: list(CIDRS, 2, false),
      [a.includeOutboundPorts]: list(PORTS, 2, false),
      [a.excludeOutboundPorts]: list(PORTS, 2, false),
      [a.includeInboundPorts]: list(PORTS, 3, true),
      [a.excludeInboundPorts]: list(PORTS, 2, false),
    };
    return Object.fromEntries(Object.entries(ann).filter((e): e is [string, string] => e[1] !== undefined));
  });
}

let mesh: Mesh;
let peer: TestPod;
let probe: string;

function waitReady(child: ChildProcess, what: string): Promise<void> {
  return new Promise((resolve, reject) => {
    child.stdout!.once("data", (d: Buffer) => (d.toString().startsWith("ready") ? resolve() : reject(new Error(`${what}: ${d}`))));
    child.once("exit", (code) => reject(new Error(`${what} exited with ${code}`)));
  });
}

async function serve(pod: TestPod, tag: string, ports: number[], uid?: number): Promise<ChildProcess> {
  const child = pod.spawn([probe, "serve", tag, ...ports.map(String)], uid === undefined ? {} : { uid, gid: uid });
  await waitReady(child, `${tag} server in ${pod.name}`);
  return child;
}

async function reach(from: TestPod, targets: [string, number][], uid?: number): Promise<string[]> {
  const r = await from.exec([probe, "connect", ...targets.flatMap(([h, p]) => [h, String(p)])], uid === undefined ? {} : { uid, gid: uid });
  if (r.code !== 0) throw new Error(`probe in ${from.name} exited ${r.code}: ${r.stderr}`);
  const lines = r.stdout.split("\n").slice(0, targets.length);
  if (lines.length !== targets.length) throw new Error(`probe in ${from.name}: ${lines.length} answers for ${targets.length} targets`);
  return lines;
}

before(async () => {
  mesh = await Mesh.create();
  probe = join(mesh.node.workDir, "differential-probe");
  const cc = spawnSync("cc", ["-O2", "-Wall", "-Werror", "-o", probe, join(REPO, "lab", "istio", "differential-probe.c")], { encoding: "utf8" });
  if (cc.status !== 0) throw new Error(`building differential-probe failed: ${cc.stderr}`);
  peer = await mesh.node.addPod("peer", { iptables: false, sidecar: false });
  for (const ip of EXTRA) await run("ip", ["-n", peer.netns, ...(ip.includes(":") ? ["-6"] : []), "addr", "add", ip, "dev", "eth0", ...(ip.includes(":") ? ["nodad"] : [])]);
  // The peer answers every port it is reached on, saying which address the client asked for.
  for (const ipt of ["iptables", "ip6tables"]) await run("ip", ["netns", "exec", peer.netns, ipt, "-t", "nat", "-A", "PREROUTING", "-p", "tcp", "-j", "REDIRECT", "--to-ports", "9999"]);
  await serve(peer, "peer", [9999]);
  mesh.attach();
});
after(() => mesh?.destroy());

const CHUNK = 60;
let annotations: Record<string, string>[];
let injected: Record<string, unknown>[];
const outcomes = new Map<string, number>();
let steered = 0;

test(`Istio's injector writes istio-init for ${PODS} generated pods (seed ${SEED})`, () => {
  annotations = generate(prng(SEED), PODS);
  injected = inject(
    annotations.map((a, i) => ({ apiVersion: "v1", kind: "Pod", metadata: { name: `gen-${i}`, annotations: a }, spec: { containers: [{ name: "app", image: "registry.example/app:v1" }] } })),
    "dual",
  );
  assert.equal(injected.length, PODS);
});

// Chunks keep each test within the runner's per-test timeout.
for (let from = 0; from < PODS; from += CHUNK) {
  const to = Math.min(PODS, from + CHUNK);
  test(`differential: pods ${from}-${to - 1} (seed ${SEED}), iptables only vs meshlane`, async () => {
    await compare(from, to);
  });
}

test("the probes discriminate: the sidecar, the peer and the pod's own listeners are reached, and meshlane steered", () => {
  for (const tag of ["sidecar", "peer", "app"]) assert.ok((outcomes.get(tag) ?? 0) > PODS, `outcome ${tag} seen ${outcomes.get(tag) ?? 0} times: ${JSON.stringify([...outcomes])}`);
  assert.ok(steered > PODS, `meshlane steered only ${steered} connections`);
});

async function compare(from: number, to: number): Promise<void> {

  const mismatches: string[] = [];
  for (let i = from; i < to; i++) {
    const pod = readPod(injected[i]!);
    const settings = istioSettings(pod, detectInjection(pod));
    assert.ok(settings.ok, `pod ${i} (seed ${SEED}): ${settings.ok ? "" : settings.detail}`);
    const interception: Interception = settings.interception;
    const gen = await mesh.node.addPod(`g${i}`, { iptables: false, sidecar: false });
    for (const [fam, via, dst] of [["-4", peer.ip, "10.80.0.0/15"], ["-6", peer.ip6, "fd00::/16"]] as const) await run("ip", ["-n", gen.netns, fam, "route", "add", dst, "via", via]);
    const init = istioInitOf(injected[i]!);
    await runIstioIptables(gen.netns, init);
    const servers = [await serve(gen, "sidecar", [15001, 15006], 1337), await serve(gen, "app", [...new Set([...OUT_PORTS, ...IN_PORTS])])];
    const outbound: [string, number][] = [];
    for (const host of [peer.ip, peer.ip6, ...EXTRA, "127.0.0.1", "::1", gen.ip]) for (const p of OUT_PORTS) outbound.push([host, p]);
    const inbound: [string, number][] = [];
    for (const host of [gen.ip, gen.ip6]) for (const p of IN_PORTS) inbound.push([host, p]);
    const probeAll = async () => [...(await reach(gen, outbound)), ...(await reach(peer, inbound, 1337))];

    reconcile(mesh.fds(), mesh.node.kubepods, {});
    const viaIptables = await probeAll();
    const regs = mesh.node.registrations([gen, peer]);
    regs[gen.uid]!.interception = interception;
    const report = reconcile(mesh.fds(), mesh.node.kubepods, regs);
    assert.ok(report.pods.every((p) => p.state === "registered"), JSON.stringify(report.pods));
    const before = mesh.counters();
    const viaMeshlane = await probeAll();
    const after = mesh.counters();
    steered += Number(after.CNT_CONNECT_OUTBOUND - before.CNT_CONNECT_OUTBOUND) + Number(after.CNT_CONNECT_INBOUND - before.CNT_CONNECT_INBOUND);
    for (const s of servers) s.kill();

    const targets = [...outbound.map((t) => `app→${t[0]}:${t[1]}`), ...inbound.map((t) => `peer's proxy→${t[0]}:${t[1]}`)];
    // The listener's tag and the address it reports; how it learnt it (conntrack or not) may differ.
    const strip = (o: string) => o.replace(/ (origdst|local) /, " ");
    for (let k = 0; k < targets.length; k++) {
      const a = strip(viaIptables[k]!), b = strip(viaMeshlane[k]!);
      outcomes.set(a.split(" ")[0]!, (outcomes.get(a.split(" ")[0]!) ?? 0) + 1);
      if (a !== b && mismatches.length < 20) {
        mismatches.push(`pod ${i}: ${targets[k]}: iptables ${JSON.stringify(a)}, meshlane ${JSON.stringify(b)}\n  annotations ${JSON.stringify(annotations[i])}\n  istio-init ${JSON.stringify(init.args)}\n  settings ${JSON.stringify(interception)}`);
      }
    }
  }
  reconcile(mesh.fds(), mesh.node.kubepods, {});
  assert.deepEqual(mismatches, [], `seed ${SEED}: replay with MESHLANE_DIFF_SEED=${SEED} MESHLANE_DIFF_PODS=${PODS}`);
}
