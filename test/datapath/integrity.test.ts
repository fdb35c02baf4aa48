// Bytes moved socket-to-socket arrive whole, once and in order, and stay within
// the pod they belong to.

import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { Mesh } from "../../lab/topology/mesh.js";
import type { TestPod } from "../../lab/topology/node.js";
import * as bpf from "../../loader/libbpf.js";
import { MAPS } from "../../loader/maps/codecs.js";

/** Sizes around the interesting edges: one byte, page and 64 KiB boundaries, megabytes. */
const EDGES = [1, 2, 100, 1460, 4095, 4096, 4097, 65_535, 65_536, 65_537, 262_144, 1 << 20, (1 << 20) + 1, 4 << 20];

describe("integrity", () => {
  let mesh: Mesh;
  let a: TestPod, b: TestPod, p: TestPod, q: TestPod;

  // Redirect mode all: every hop, the apps' own included, is socket to socket, which is
  // where integrity is hardest to keep. Proxy mode's single hop is covered below.
  before(async () => {
    mesh = await Mesh.create();
    const all = { interception: { redirect: "all" as const } };
    a = await mesh.node.addPod("a", all);
    b = await mesh.node.addPod("b", all);
    p = await mesh.node.addPod("p", all);
    q = await mesh.node.addPod("q", all);
    await b.startApp(80);
    mesh.attach();
    mesh.register([a, b, p, q]);
  });
  after(() => mesh.destroy());

  test("payloads from 1 byte to 16 MiB over 16 concurrent connections: echoed back intact after half-close and server close", async () => {
    const sizes = [...EDGES, ...EDGES, 16 << 20, 16 << 20, ...Array.from({ length: 20 }, (_, i) => 1 + ((i * 7_919_981) % (3 << 20)))];
    const before = mesh.counters();

    const res = await a.send(b.ip, 80, { sizes, concurrency: 16 });

    assert.equal(res.length, sizes.length);
    assert.deepEqual(res.filter((r) => !r.ok), [], "every transfer's length and sha256 match");
    const after = mesh.counters();
    const payload = BigInt(sizes.reduce((x, y) => x + y, 0));
    assert.equal(after.CNT_CONNECT_OUTBOUND - before.CNT_CONNECT_OUTBOUND, BigInt(sizes.length));
    // Each byte crosses three socket pairs both ways (6× the payload); allow for a
    // few connections whose first bytes raced the peer's pairing and stayed on the stack.
    const redirected = after.CNT_BYTES_REDIRECTED - before.CNT_BYTES_REDIRECTED;
    assert.ok(redirected * 10n >= 55n * payload, `redirected ${redirected} bytes for ${payload} of payload`);
  });

  test("redirect mode proxy: the same payloads arrive intact with only the sidecar-to-sidecar hop redirected", async () => {
    for (const pod of [a, b]) pod.interception.redirect = "proxy";
    mesh.register([a, b, p, q]);
    try {
      const sizes = [...EDGES, 16 << 20, ...Array.from({ length: 10 }, (_, i) => 1 + ((i * 7_919_981) % (3 << 20)))];
      const before = mesh.counters();
      const res = await a.send(b.ip, 80, { sizes, concurrency: 16 });
      assert.deepEqual(res.filter((r) => !r.ok), [], "every transfer's length and sha256 match");
      const after = mesh.counters();
      const payload = BigInt(sizes.reduce((x, y) => x + y, 0));
      const redirected = after.CNT_BYTES_REDIRECTED - before.CNT_BYTES_REDIRECTED;
      // One pair, both ways (2x the payload), less a few connections whose first bytes raced the pairing.
      assert.ok(redirected <= 2n * payload && redirected * 10n >= 18n * payload, `redirected ${redirected} bytes for ${payload} of payload`);
      assert.equal(after.CNT_UNPAIRED_BY_MODE - before.CNT_UNPAIRED_BY_MODE, BigInt(sizes.length), "no app connection joined the sockhash");
    } finally {
      for (const pod of [a, b]) pod.interception.redirect = "all";
      mesh.register([a, b, p, q]);
    }
  });

  test("two pods using the same loopback 4-tuple to their own sidecars never see each other's bytes", async () => {
    for (const pod of [p, q]) pod.sidecarLog = [];
    const before = mesh.counters();
    // Same local address and port in both pods; meshlane steers both to 127.0.0.1:15001,
    // so both app sockets have the tuple 127.0.0.1:40000 -> 127.0.0.1:15001 at the same time.
    // holdMs makes each transfer last ~3 s, so the two overlap however slowly their processes start.
    const spec = { sizes: [8 << 20], concurrency: 1, holdMs: 400, localAddress: "127.0.0.1", localPort: 40_000 };
    let done = false;
    const transfers = Promise.all([p.send(b.ip, 80, spec), q.send(b.ip, 80, spec)]).finally(() => (done = true));
    // While both run, both pods' loopback pairs are in the sockhash side by side, told apart by their netns cookie.
    let most: { port: number; netns: bigint }[] = [];
    while (!done && most.length < 4) {
      const pairs = [...bpf.mapKeys(mesh.fds().mesh_socks, MAPS.mesh_socks.key.size)]
        .map((k) => MAPS.mesh_socks.key.decode(k))
        .filter((k) => k.src_port === 40_000 || k.dst_port === 40_000)
        .map((k) => ({ port: k.src_port, netns: k.netns }));
      if (pairs.length > most.length) most = pairs;
      await new Promise((r) => setTimeout(r, 20));
    }
    const [fromP, fromQ] = await transfers;
    assert.equal(most.length, 4, "app and sidecar socket of each pod, at the same time");
    assert.equal(new Set(most.map((k) => k.netns)).size, 2);
    assert.deepEqual([...fromP!, ...fromQ!].filter((r) => !r.ok), [], "each pod got back exactly its own bytes");
    for (const pod of [p, q]) {
      assert.deepEqual(pod.sidecarLog.filter((l) => l.frontend === "outbound").map((l) => l.client), ["127.0.0.1:40000"]);
    }
    const after = mesh.counters();
    // Two pods × three socket pairs × both directions, less at most one hop's worth for a pairing race.
    const redirected = after.CNT_BYTES_REDIRECTED - before.CNT_BYTES_REDIRECTED;
    assert.ok(redirected >= 11n * BigInt(8 << 20), `both pods' transfers were redirected on every hop (${redirected} bytes)`);
  });
});
