// SO_ORIGINAL_DST as iptables would answer it, for IPv4 and IPv6: a probe
// sidecar asks the kernel exactly as Envoy does, once with Istio's nat rules
// doing the redirect and once with meshlane doing it.

import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { Mesh } from "../../lab/topology/mesh.js";
import type { TestPod } from "../../lab/topology/node.js";

/** Destinations that exist nowhere: the probe answers for them, nothing connects onward. */
const DEST = { 4: "10.77.0.99", 6: "fd77::99" } as const;

const CASES = [
  { name: "IPv4", family: 4, connectTo: DEST[4] },
  { name: "IPv6", family: 6, connectTo: DEST[6] },
  // A dual-stack (AF_INET6) socket reaching an IPv4 address: IPv4 on the wire, so IPv4 rules and answers.
  { name: "IPv4 from a dual-stack socket", family: 4, connectTo: `::ffff:${DEST[4]}` },
] as const;

describe("original destination", () => {
  let mesh: Mesh;
  let pod: TestPod;

  before(async () => {
    mesh = await Mesh.create();
    pod = await mesh.node.addPod("a", { sidecar: false });
    mesh.attach();
  });
  after(() => mesh.destroy());

  async function connectThroughProbe(family: 4 | 6, connectTo: string) {
    const { answer } = await pod.startProbe(pod.interception.outboundPort, family);
    const ipt = await pod.redirectCounters(family);
    const before = mesh.counters();
    const res = await pod.send(connectTo, 8080, { sizes: [100_000], concurrency: 1 });
    assert.deepEqual(res.filter((r) => !r.ok), [], "the probe echoed the payload back");
    const after = mesh.counters();
    return {
      origdst: await answer,
      iptablesRedirects: (await pod.redirectCounters(family)).outbound - ipt.outbound,
      steered: Number(after.CNT_CONNECT_OUTBOUND - before.CNT_CONNECT_OUTBOUND),
      answered: Number(after.CNT_ORIGDST_ANSWERED - before.CNT_ORIGDST_ANSWERED),
      redirectedBytes: after.CNT_BYTES_REDIRECTED - before.CNT_BYTES_REDIRECTED,
    };
  }

  for (const { name, family, connectTo } of CASES) {
    test(`${name}: meshlane answers what iptables answers`, async () => {
      mesh.register([]);
      const viaIptables = await connectThroughProbe(family, connectTo);
      assert.equal(viaIptables.origdst, `${DEST[family]} 8080`, "the kernel's own answer (conntrack)");
      assert.deepEqual([viaIptables.iptablesRedirects, viaIptables.steered, viaIptables.answered], [1, 0, 0]);

      mesh.register([pod]);
      const viaMeshlane = await connectThroughProbe(family, connectTo);
      assert.equal(viaMeshlane.origdst, viaIptables.origdst);
      assert.deepEqual([viaMeshlane.iptablesRedirects, viaMeshlane.steered, viaMeshlane.answered], [0, 1, 1]);
      assert.ok(viaMeshlane.redirectedBytes >= 200_000n, `the loopback pair carried the echo socket to socket (${viaMeshlane.redirectedBytes} bytes)`);
    });
  }
});
