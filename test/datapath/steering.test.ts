// Steering in the real kernel: app -> own sidecar, sidecar -> the other pod's
// inbound port, and everything meshlane must leave to iptables.

import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { Mesh } from "../../lab/topology/mesh.js";
import type { TestPod } from "../../lab/topology/node.js";
import * as bpf from "../../loader/libbpf.js";
import { MAPS } from "../../loader/maps/codecs.js";

const SIZES = { sizes: [1, 1000, 100_000, 1 << 20], concurrency: 2 };
const total = SIZES.sizes.length;

describe("steering", () => {
  let mesh: Mesh;
  let a: TestPod, b: TestPod, unregistered: TestPod, host: TestPod;

  before(async () => {
    mesh = await Mesh.create();
    a = await mesh.node.addPod("a");
    b = await mesh.node.addPod("b");
    unregistered = await mesh.node.addPod("c");
    host = await mesh.node.addHost("h");
    await b.startApp(80);
    await b.startApp(81);
    mesh.attach();
  });
  after(() => mesh.destroy());

  const clearLogs = () => [a, b, unregistered].forEach((p) => ((p.sidecarLog = []), (p.appLog = [])));
  /** Clears the logs and starts each sidecar's count for expectSidecarLogged. */
  const startCounting = async () => {
    clearLogs();
    for (const p of [a, b, unregistered]) await p.startSidecarLog();
  };

  test("before registration, a's traffic takes Istio's iptables path", async () => {
    await startCounting();
    const ipt = await a.redirectCounters();
    const before = mesh.counters();
    const res = await a.send(b.ip, 80, SIZES);
    assert.deepEqual(res.filter((r) => !r.ok), []);
    assert.equal((await a.redirectCounters()).outbound - ipt.outbound, total, "iptables redirected each connection to 15001");
    assert.equal(mesh.counters().CNT_CONNECT_OUTBOUND, before.CNT_CONNECT_OUTBOUND);
    await a.expectSidecarLogged(total, (l) => l.server === `${b.ip}:80`, "a's sidecar forwarded every connection to b", [b]);
    for (const l of a.sidecarLog) assert.ok(l.client.startsWith(`${a.ip}:`), `under iptables the sidecar sees the pod IP (${l.client})`);
  });

  test("outbound: a's app reaches b through both sidecars, steered by meshlane instead of iptables", async () => {
    const report = mesh.register([a, b]);
    assert.deepEqual(report.pods.map((p) => p.state), ["registered", "registered"]);
    clearLogs();
    const iptA = await a.redirectCounters();
    const before = mesh.counters();

    const res = await a.send(b.ip, 80, SIZES);

    assert.deepEqual(res.filter((r) => !r.ok), []);
    const after = mesh.counters();
    // a's sidecar accepted on loopback (connect-time steering) and forwarded to the original destination.
    // It sees the app's connection come from the pod IP, as iptables' REDIRECT leaves it.
    const out = a.sidecarLog.filter((l) => l.frontend === "outbound");
    assert.equal(out.length, total);
    for (const l of out) {
      assert.match(l.client, new RegExp(`^${a.ip.replace(/\./g, "\\.")}:\\d+$`));
      assert.equal(l.server, `${b.ip}:80`, "HAProxy read the original destination through SO_ORIGINAL_DST");
    }
    assert.equal((await a.redirectCounters()).outbound, iptA.outbound, "iptables' outbound REDIRECT saw none of it");
    assert.equal(after.CNT_CONNECT_OUTBOUND - before.CNT_CONNECT_OUTBOUND, BigInt(total));
    assert.ok(after.CNT_ORIGDST_ANSWERED - before.CNT_ORIGDST_ANSWERED >= BigInt(2 * total), "both sidecars got the original destination from meshlane");
    const payload = BigInt(SIZES.sizes.reduce((x, y) => x + y, 0));
    // Redirect mode proxy (the default): only the sidecar-sidecar pair is in the sockhash, so each
    // byte is redirected once each way; the app's connections to its sidecar stay off it.
    const redirected = after.CNT_BYTES_REDIRECTED - before.CNT_BYTES_REDIRECTED;
    assert.equal(redirected, 2n * payload, "sidecar to sidecar, socket to socket");
    assert.equal(after.CNT_UNPAIRED_BY_MODE - before.CNT_UNPAIRED_BY_MODE, BigInt(total), "each app connection kept off the sockhash");
  });

  test("inbound on the same node goes to b's 15006; b's sidecar reaches its own app directly", async () => {
    clearLogs();
    const before = mesh.counters();
    const iptB = await b.redirectCounters();

    const res = await a.send(b.ip, 80, SIZES);

    assert.deepEqual(res.filter((r) => !r.ok), []);
    const after = mesh.counters();
    assert.equal(after.CNT_CONNECT_INBOUND - before.CNT_CONNECT_INBOUND, BigInt(total), "a's sidecar's connection to b was recognised as inbound to a registered pod");
    const inbound = b.sidecarLog.filter((l) => l.frontend === "inbound");
    assert.equal(inbound.length, total);
    for (const l of inbound) {
      assert.match(l.client, new RegExp(`^${a.ip.replace(/\./g, "\\.")}:\\d+$`), "b's sidecar was reached straight from a's sidecar");
      assert.equal(l.server, `${b.ip}:80`, "b's sidecar got the original destination");
    }
    // b's sidecar to its app is left alone: it arrives from the passthrough address, not looped back into 15006.
    assert.equal(b.appLog.length, total);
    for (const peer of b.appLog) assert.match(peer, /^(::ffff:)?127\.0\.0\.6:\d+$/);
    // meshlane keeps the destination port: b's own REDIRECT takes the handshake to 15006, as without meshlane.
    assert.equal((await b.redirectCounters()).inbound - iptB.inbound, total);
  });

  test("an unregistered pod is untouched: its traffic takes the iptables path", async () => {
    await startCounting();
    const before = mesh.counters();
    const ipt = await unregistered.redirectCounters();

    const res = await unregistered.send(b.ip, 80, SIZES);

    assert.deepEqual(res.filter((r) => !r.ok), []);
    const after = mesh.counters();
    assert.equal(after.CNT_CONNECT_OUTBOUND, before.CNT_CONNECT_OUTBOUND);
    assert.equal(after.CNT_CONNECT_INBOUND, before.CNT_CONNECT_INBOUND, "its sidecar is not steered to b's inbound port either");
    assert.equal((await unregistered.redirectCounters()).outbound - ipt.outbound, total, "its iptables REDIRECT took every connection");
    await unregistered.expectSidecarLogged(total, (l) => l.server === `${b.ip}:80`, "its own sidecar forwarded every connection", [b]);
  });

  test("a host process is untouched and still reaches the pod through its sidecar", async () => {
    await startCounting();
    const before = mesh.counters();
    const res = await host.send(b.ip, 80, SIZES);
    assert.deepEqual(res.filter((r) => !r.ok), []);
    const after = mesh.counters();
    assert.equal(after.CNT_CONNECT_OUTBOUND, before.CNT_CONNECT_OUTBOUND);
    assert.equal(after.CNT_CONNECT_INBOUND, before.CNT_CONNECT_INBOUND);
    await b.expectSidecarLogged(total, (l) => l.client.startsWith(`${host.ip}:`), "b's iptables sent the host's connections to b's sidecar");
  });

  test("redirect modes: proxy pairs only the sidecars, all every hop, none nothing; the app's bytes arrive alike", async () => {
    // a's mode / b's mode: pairs are made hop by hop, where both ends' pods allow it.
    const expected = {
      "proxy/proxy": { paired: 2, hops: 1 },
      "all/all": { paired: 6, hops: 3 },
      "none/none": { paired: 0, hops: 0 },
      "all/proxy": { paired: 4, hops: 2 }, // a's app hop and the sidecars' hop
      "proxy/none": { paired: 0, hops: 0 }, // b's inbound listener may not join
    } as const;
    const payload = BigInt(SIZES.sizes.reduce((x, y) => x + y, 0));
    try {
      for (const mode of Object.keys(expected) as (keyof typeof expected)[]) {
        const [ma, mb] = mode.split("/") as ("proxy" | "all" | "none")[];
        a.interception.redirect = ma!;
        b.interception.redirect = mb!;
        mesh.register([a, b]);
        const before = mesh.counters();
        const res = await a.send(b.ip, 80, SIZES);
        assert.deepEqual(res.filter((r) => !r.ok), [], mode);
        const after = mesh.counters();
        assert.equal(after.CNT_CONNECT_OUTBOUND - before.CNT_CONNECT_OUTBOUND, BigInt(total), `${mode}: every connection steered`);
        assert.equal(after.CNT_SOCKETS_PAIRED - before.CNT_SOCKETS_PAIRED, BigInt(expected[mode].paired * total), `${mode}: sockets paired`);
        assert.equal(after.CNT_BYTES_REDIRECTED - before.CNT_BYTES_REDIRECTED, BigInt(2 * expected[mode].hops) * payload, `${mode}: bytes redirected`);
      }
    } finally {
      for (const p of [a, b]) p.interception.redirect = "proxy";
      mesh.register([a, b]);
    }
  });

  test("redirect mode proxy: while transfers run, the sockhash holds the sidecars' sockets and no application socket", async () => {
    mesh.register([a, b]);
    const inbound = b.interception.inboundPort;
    let done = false;
    const transfers = a.send(b.ip, 80, { sizes: [1 << 20, 1 << 20], concurrency: 2, holdMs: 200 }).finally(() => (done = true));
    const seen = new Map<string, { src_port: number; dst_port: number }>();
    while (!done) {
      for (const k of bpf.mapKeys(mesh.fds().mesh_socks, MAPS.mesh_socks.key.size)) {
        const key = MAPS.mesh_socks.key.decode(k);
        seen.set(`${key.src_port}>${key.dst_port}`, key);
      }
      await new Promise((r) => setTimeout(r, 20));
    }
    assert.deepEqual((await transfers).filter((r) => !r.ok), []);
    assert.equal(seen.size, 4, "both ends of both sidecar-to-sidecar connections");
    // a's sidecar's socket connects to b:80 (b's REDIRECT takes it to its inbound port); both
    // ends are keyed by that tuple, b's accepted one too (maps.h, key_port): nothing else.
    for (const k of seen.values()) assert.ok(k.src_port === 80 || k.dst_port === 80, `${k.src_port} -> ${k.dst_port}`);
    assert.ok([...seen.values()].every((k) => k.src_port !== inbound && k.dst_port !== inbound), "no key names the inbound port");
  });

  test("two sidecar connections from one source port to two ports of a pod each get their own bytes back", async () => {
    // The kernel lets one source port serve connections to different destination ports
    // (it does so by itself when ports run short); b's REDIRECT sends both to its one
    // inbound port, so a pair key naming that port would be the same for both.
    mesh.register([a, b]);
    const spec = { sizes: [1 << 20], concurrency: 1, holdMs: 300, localAddress: a.ip, localPort: 40_100 };
    const asProxy = { uid: a.interception.proxyUid };
    const before = mesh.counters();
    const [to80, to81] = await Promise.all([a.send(b.ip, 80, spec, asProxy), a.send(b.ip, 81, spec, asProxy)]);
    assert.deepEqual([...to80, ...to81].filter((r) => !r.ok), [], "each connection got exactly its own echo");
    assert.deepEqual([to80[0]!.local, to81[0]!.local], [`${a.ip} 40100`, `${a.ip} 40100`], "both connections used the one source port");
    const [x, y] = [to80[0]!, to81[0]!];
    assert.ok(x.start < y.start + y.ms && y.start < x.start + x.ms, "the two connections were open at the same time");
    assert.equal(mesh.counters().CNT_CONNECT_INBOUND - before.CNT_CONNECT_INBOUND, 2n, "both were the sidecar's connections to b's inbound port");
  });

  test("deregistering a pod sends its traffic back to iptables", async () => {
    mesh.register([b]);
    const ipt = await a.redirectCounters();
    const before = mesh.counters();
    const res = await a.send(b.ip, 80, SIZES);
    assert.deepEqual(res.filter((r) => !r.ok), []);
    assert.equal((await a.redirectCounters()).outbound - ipt.outbound, total);
    assert.equal(mesh.counters().CNT_CONNECT_OUTBOUND, before.CNT_CONNECT_OUTBOUND);
  });
});

describe("steering right after iptables handled the same ports", () => {
  let mesh: Mesh;
  let a: TestPod, b: TestPod;

  before(async () => {
    mesh = await Mesh.create();
    a = await mesh.node.addPod("a");
    b = await mesh.node.addPod("b");
    await b.startApp(80);
    mesh.attach();
  });
  after(() => mesh.destroy());

  test("a connection from the same source port right after iptables handled it is the same connection iptables made: not remapped, paired", async () => {
    // A sidecar-side connection (uid 1337) from a fixed port, first under iptables: b's
    // conntrack entry (a:40001 -> b:80, reply b:15006 -> a:40001) and b's TIME_WAIT
    // (b:15006 <- a:40001) stay after it closes.
    const spec = { sizes: [10_000], concurrency: 1, localPort: 40_001 };
    assert.deepEqual((await a.send(b.ip, 80, spec, { uid: 1337 })).filter((r) => !r.ok), []);
    // Registered now: meshlane keeps the destination port and b's REDIRECT takes the SYN
    // to 15006, so the new connection has the old one's tuples everywhere; nothing clashes.
    mesh.register([a, b]);
    b.sidecarLog = [];
    const before = mesh.counters();

    const res = await a.send(b.ip, 80, spec, { uid: 1337 });

    assert.deepEqual(res.filter((r) => !r.ok), []);
    const after = mesh.counters();
    assert.equal(after.CNT_CONNECT_INBOUND - before.CNT_CONNECT_INBOUND, 1n);
    assert.equal(after.CNT_ORIGDST_ANSWERED - before.CNT_ORIGDST_ANSWERED, 1n, "b's sidecar got the original destination");
    assert.deepEqual(b.sidecarLog.map((l) => l.server), [`${b.ip}:80`]);
    assert.deepEqual(b.sidecarLog.map((l) => l.client), [`${a.ip}:40001`], "conntrack kept the source port");
    assert.equal(after.CNT_FALLBACK_NAT - before.CNT_FALLBACK_NAT, 0n);
    assert.equal(after.CNT_SOCKETS_PAIRED - before.CNT_SOCKETS_PAIRED, 2n, "both ends found each other across b's REDIRECT");
  });
});
