// Switching a pod between iptables and meshlane (registration added or removed,
// detach) must not stall a new connection: each path's connections must have tuples
// of their own, or the other path's TIME_WAIT sockets and conntrack entries meet a
// SYN with another socket's timestamps, which PAWS drops, and the client
// retransmits its SYN for as long as TIME_WAIT lasts (docs/datapath.md, "Two paths,
// two tuples"). Each case makes connections from fixed source ports under one path,
// switches, and makes them again from the same ports under the other, as a busy
// pod's ephemeral ports do: none may be dropped or retransmitted. The server closes
// first, as an HTTP server does with `Connection: close`, so that the sidecars'
// accepted ends, at their listeners, are the ones left in TIME_WAIT.

import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { Mesh } from "../../lab/topology/mesh.js";
import { waitForLine, type TestPod } from "../../lab/topology/node.js";
import { run } from "../../lab/topology/run.js";

/** Source ports per case: PAWS rejects a SYN only when its timestamp is behind, so one port could pass by chance. */
const PORTS_PER_CASE = 8;
const STALL_COUNTERS = ["PAWSEstab", "PAWSTimewait", "TCPSynRetrans"] as const;

type Stalls = Record<(typeof STALL_COUNTERS)[number], number>;

/** TcpExt counters of a pod's network namespace that count SYNs dropped under PAWS or sent again. */
async function stalls(pod: TestPod): Promise<Stalls> {
  const r = await run("ip", ["netns", "exec", pod.netns, "cat", "/proc/net/netstat"]);
  const lines = r.stdout.split("\n").filter((l) => l.startsWith("TcpExt:"));
  if (lines.length !== 2) throw new Error(`no TcpExt counters in /proc/net/netstat of ${pod.netns}`);
  const names = lines[0]!.split(/\s+/).slice(1), values = lines[1]!.split(/\s+/).slice(1).map(Number);
  const out = {} as Stalls;
  for (const c of STALL_COUNTERS) {
    const i = names.indexOf(c);
    // PAWSTimewait is from Linux 6.16 (LINUX_MIB_PAWS_TW_REJECTED); Debian's 6.1 and 6.12 count those rejects in PAWSEstab.
    if (i < 0 && c === "PAWSTimewait" && names.includes("PAWSEstab")) {
      out[c] = 0;
      continue;
    }
    if (i < 0) throw new Error(`TcpExt counter ${c} missing in ${pod.netns}`);
    out[c] = values[i]!;
  }
  return out;
}

const PORT = 81;
const REPLY = 1000;

/** Sends REPLY bytes and closes at once, before the client does. */
const SERVER = `
const server = require("node:net").createServer((s) => { s.on("error", () => s.destroy()); s.end(Buffer.alloc(${REPLY}, 7)); });
server.listen(${PORT}, "::", () => console.log("listening"));
process.on("SIGTERM", () => process.exit(0));`;

/**
 * One connection from each source port (argv: host, local address, JSON list of ports), all at
 * once; prints one JSON report. Bound to the pod IP as well, as meshlane binds a socket with an
 * ephemeral port, so that the tuple is the one such a socket has.
 */
const CLIENT = `
const [host, localAddress, ports] = [process.argv[1], process.argv[2], JSON.parse(process.argv[3])];
Promise.all(ports.map((localPort) => new Promise((done) => {
  let bytes = 0;
  const s = require("node:net").connect({ host, port: ${PORT}, localAddress, localPort });
  s.on("data", (d) => (bytes += d.length));
  s.on("end", () => { s.end(); done({ localPort, bytes }); });
  s.on("error", (e) => done({ localPort, bytes, error: String(e) }));
}))).then((r) => console.log(JSON.stringify(r)));`;

/** "local peer" of every TIME_WAIT socket in a pod with one of these ports at either end. */
async function timeWait(pod: TestPod, ports: number[]): Promise<string[]> {
  const r = await run("ip", ["netns", "exec", pod.netns, "ss", "-Htan", "state", "time-wait"]);
  const portOf = (ep: string) => Number(ep.slice(ep.lastIndexOf(":") + 1));
  return r.stdout
    .split("\n")
    .map((l) => l.trim().split(/\s+/).slice(-2))
    .filter((ends) => ends.length === 2 && ends.some((ep) => ports.includes(portOf(ep))))
    .map((ends) => ends.join(" "));
}

describe("switching between iptables and meshlane", () => {
  let mesh: Mesh;
  let a: TestPod, b: TestPod;
  // Below the ephemeral range (32768-60999), which the sidecars' own connections use.
  let nextPort = 21_000;

  before(async () => {
    mesh = await Mesh.create();
    a = await mesh.node.addPod("a");
    b = await mesh.node.addPod("b");
    await waitForLine(b.spawn(["node", "-e", SERVER]), /^listening/, "server of pod b");
    mesh.attach();
  });
  after(() => mesh.destroy());

  /** One connection from each source port; every one must get the whole reply. */
  async function connectFrom(ports: number[], uid?: number): Promise<void> {
    const r = await a.exec(["node", "-e", CLIENT, b.ip, a.ip, JSON.stringify(ports)], uid === undefined ? {} : { uid, gid: uid });
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout), ports.map((localPort) => ({ localPort, bytes: REPLY })));
  }

  /** Connections from the same ports before and after `toggle` (`check` asserts which path the first took); no counter of a stall may move. */
  async function acrossSwitch(uid: number | undefined, check: () => void, toggle: () => Promise<unknown> | unknown): Promise<number[]> {
    const ports = Array.from({ length: PORTS_PER_CASE }, () => nextPort++);
    await connectFrom(ports, uid);
    check();
    await toggle();
    const pods = [a, b];
    const before = await Promise.all(pods.map(stalls));
    await connectFrom(ports, uid);
    const after = await Promise.all(pods.map(stalls));
    pods.forEach((p, i) => {
      for (const k of STALL_COUNTERS) assert.equal(after[i]![k] - before[i]![k], 0, `${k} in pod ${p.name}`);
    });
    return ports;
  }

  const registered = () => assert.equal(mesh.register([a, b]).pods.filter((p) => p.state === "registered").length, 2);
  const cases = [
    { hop: "the app's connection to its sidecar", uid: undefined },
    { hop: "the sidecar's connection to another pod", uid: 1337 },
  ];

  for (const { hop, uid } of cases) {
    /** Asserts that the connections made since `before` took meshlane (n of them) or iptables (0). */
    const steeredSince = (before: ReturnType<Mesh["counters"]>, n: number) => () => {
      const cnt = uid === undefined ? "CNT_CONNECT_OUTBOUND" : "CNT_CONNECT_INBOUND";
      assert.equal(mesh.counters()[cnt] - before[cnt], BigInt(n), n ? "the first connections took meshlane" : "the first connections took iptables");
    };

    /**
     * The app's connections leave TIME_WAIT at a's outbound listener (the server closed first):
     * one per path and port if the two paths' tuples differ, one per port if they were the same
     * (the second SYN then met the first's TIME_WAIT). The sidecar's connection is the same under
     * both paths by design, so its SYN meets its own TIME_WAIT, with the same timestamps
     * (steering.test.ts shows it is not remapped and is paired).
     */
    const ownTuples = async (ports: number[]) => {
      if (uid === undefined) assert.equal((await timeWait(a, ports)).length, 2 * PORTS_PER_CASE, "each path's connections have tuples of their own");
    };

    test(`${hop}: registered, then deregistered`, async () => {
      registered();
      await ownTuples(await acrossSwitch(uid, steeredSince(mesh.counters(), PORTS_PER_CASE), () => mesh.register([])));
    });

    test(`${hop}: deregistered, then registered`, async () => {
      mesh.register([]);
      await ownTuples(await acrossSwitch(uid, steeredSince(mesh.counters(), 0), registered));
    });

    test(`${hop}: registered, then detached`, async () => {
      registered();
      try {
        await ownTuples(await acrossSwitch(uid, steeredSince(mesh.counters(), PORTS_PER_CASE), () => mesh.detach(0)));
      } finally {
        mesh.attach();
      }
    });
  }
});
