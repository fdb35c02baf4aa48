// Istio's traffic.sidecar.istio.io exclusions, honoured in the kernel: what a pod
// excludes takes exactly the path its iptables rules give it.

import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { Mesh } from "../../lab/topology/mesh.js";
import type { TestPod } from "../../lab/topology/node.js";

const ONE = { sizes: [50_000], concurrency: 1 };

describe("exclusions", () => {
  let mesh: Mesh;
  let x: TestPod, w: TestPod, y: TestPod, z: TestPod;

  before(async () => {
    mesh = await Mesh.create();
    // Addresses are handed out in order: y is .2, z is .3.
    y = await mesh.node.addPod("y", { interception: { excludeInboundPorts: [82] } });
    z = await mesh.node.addPod("z");
    x = await mesh.node.addPod("x", { interception: { excludeOutboundPorts: [81], excludeOutboundIPRanges: [`${z.ip}/32`] } });
    w = await mesh.node.addPod("w", { interception: { includeOutboundIPRanges: [`${y.ip}/32`] } });
    for (const port of [80, 81, 82]) await y.startApp(port);
    await z.startApp(80);
    mesh.attach();
    const report = mesh.register([x, w, y, z]);
    assert.ok(report.pods.every((p) => p.state === "registered"), JSON.stringify(report.pods));
  });
  after(() => mesh.destroy());

  /** Sends one transfer and returns what changed: meshlane's steering counters and each pod's sidecar log. */
  async function observe(from: TestPod, to: TestPod, port: number) {
    for (const p of [x, w, y, z]) p.sidecarLog = [];
    const before = mesh.counters();
    const iptBefore = await from.redirectCounters();
    const res = await from.send(to.ip, port, ONE);
    assert.deepEqual(res.filter((r) => !r.ok), [], `${from.name} -> ${to.name}:${port} failed`);
    const after = mesh.counters();
    return {
      outboundSteered: Number(after.CNT_CONNECT_OUTBOUND - before.CNT_CONNECT_OUTBOUND),
      inboundSteered: Number(after.CNT_CONNECT_INBOUND - before.CNT_CONNECT_INBOUND),
      iptablesOutbound: (await from.redirectCounters()).outbound - iptBefore.outbound,
      viaOwnSidecar: from.sidecarLog.filter((l) => l.frontend === "outbound").length,
      viaTheirSidecar: to.sidecarLog.filter((l) => l.frontend === "inbound").length,
    };
  }

  test("control: an ordinary destination is steered", async () => {
    assert.deepEqual(await observe(x, y, 80), { outboundSteered: 1, inboundSteered: 1, iptablesOutbound: 0, viaOwnSidecar: 1, viaTheirSidecar: 1 });
  });

  test("excludeOutboundPorts: the port bypasses the sidecar, as iptables lets it", async () => {
    // Straight out of x, into y's iptables inbound capture.
    assert.deepEqual(await observe(x, y, 81), { outboundSteered: 0, inboundSteered: 0, iptablesOutbound: 0, viaOwnSidecar: 0, viaTheirSidecar: 1 });
  });

  test("excludeOutboundIPRanges: the range bypasses the sidecar, as iptables lets it", async () => {
    assert.deepEqual(await observe(x, z, 80), { outboundSteered: 0, inboundSteered: 0, iptablesOutbound: 0, viaOwnSidecar: 0, viaTheirSidecar: 1 });
  });

  test("includeOutboundIPRanges: only the listed range goes to the sidecar", async () => {
    assert.deepEqual(await observe(w, y, 80), { outboundSteered: 1, inboundSteered: 1, iptablesOutbound: 0, viaOwnSidecar: 1, viaTheirSidecar: 1 });
    assert.deepEqual(await observe(w, z, 80), { outboundSteered: 0, inboundSteered: 0, iptablesOutbound: 0, viaOwnSidecar: 0, viaTheirSidecar: 1 });
  });

  test("excludeInboundPorts: the sidecar reaches the excluded port itself, never y's inbound listener", async () => {
    // x's app is steered to x's sidecar (x excludes nothing here); y's exclusion keeps x's sidecar off y's 15006.
    assert.deepEqual(await observe(x, y, 82), { outboundSteered: 1, inboundSteered: 0, iptablesOutbound: 0, viaOwnSidecar: 1, viaTheirSidecar: 0 });
  });

  test("the same exclusions under plain iptables give the same paths", async () => {
    mesh.register([]);
    for (const [from, to, port] of [[x, y, 81], [x, z, 80], [w, z, 80], [x, y, 82]] as const) {
      const seen = await observe(from, to, port);
      assert.equal(seen.outboundSteered + seen.inboundSteered, 0);
      assert.equal(seen.viaOwnSidecar, port === 82 ? 1 : 0, `${from.name} -> ${to.name}:${port} own sidecar`);
      assert.equal(seen.viaTheirSidecar, port === 82 ? 0 : 1, `${from.name} -> ${to.name}:${port} their sidecar`);
    }
  });
});
