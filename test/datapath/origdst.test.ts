// SO_ORIGINAL_DST as iptables would answer it, for IPv4 and IPv6: a probe
// sidecar asks the kernel exactly as Envoy does, once with Istio's nat rules
// doing the redirect and once with meshlane doing it. The app's own view of its
// socket (getsockname, getpeername) and the sidecar's view of the client are
// compared the same way. And when meshlane loses a connection's original
// destination, the probe gets an error, never its own listener's address.

import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { Mesh } from "../../lab/topology/mesh.js";
import type { TestPod } from "../../lab/topology/node.js";
import { run } from "../../lab/topology/run.js";

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

  async function connectThroughProbe(family: 4 | 6, connectTo: string, bind: { localPort?: number } = {}) {
    const { answer, client } = await pod.startProbe(pod.interception.outboundPort, family);
    const ipt = await pod.redirectCounters(family);
    const before = mesh.counters();
    const res = await pod.send(connectTo, 8080, { sizes: [100_000], concurrency: 1, ...bind });
    assert.deepEqual(res.filter((r) => !r.ok), [], "the probe echoed the payload back");
    const after = mesh.counters();
    const [localAddress, localPort] = res[0]!.local!.split(" ");
    return {
      origdst: await answer,
      /** The app's view (ports left out: they differ from run to run) and the sidecar's. */
      view: { local: localAddress, remote: res[0]!.remote, sidecarSees: (await client).replace(/ \d+$/, "") },
      samePort: (await client).endsWith(` ${localPort}`),
      refused: Number(after.CNT_ORIGDST_REFUSED - before.CNT_ORIGDST_REFUSED),
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
      // Redirect mode proxy (the default): the app's socket stays off the sockhash, so the loopback
      // hop to the probe is the TCP stack's, as under iptables.
      assert.equal(viaMeshlane.redirectedBytes, 0n);
    });

    test(`${name}: the app sees its own address and the peer it asked for, and the sidecar the pod IP, as under iptables`, async () => {
      mesh.register([]);
      const viaIptables = await connectThroughProbe(family, connectTo);
      assert.equal(viaIptables.view.local, family === 6 ? pod.ip6 : connectTo.startsWith("::ffff:") ? `::ffff:${pod.ip}` : pod.ip);
      assert.equal(viaIptables.view.remote, `${connectTo} 8080`);
      assert.ok(viaIptables.samePort);
      for (const redirect of ["proxy", "all", "none"] as const) {
        pod.interception.redirect = redirect;
        mesh.register([pod]);
        const viaMeshlane = await connectThroughProbe(family, connectTo);
        assert.equal(viaMeshlane.steered, 1, redirect);
        assert.deepEqual(viaMeshlane.view, viaIptables.view, `redirect mode ${redirect}`);
        assert.ok(viaMeshlane.samePort, "the sidecar sees the app's own source port");
      }
      pod.interception.redirect = "proxy";
    });
  }

  test("an app socket bound to a port but no address still reports the pod IP (getsockname), as under iptables", async () => {
    mesh.register([]);
    const viaIptables = await connectThroughProbe(4, DEST[4], { localPort: 40_123 });
    assert.equal(viaIptables.view.local, pod.ip);
    mesh.register([pod]);
    const viaMeshlane = await connectThroughProbe(4, DEST[4], { localPort: 40_123 });
    assert.equal(viaMeshlane.steered, 1);
    assert.equal(viaMeshlane.view.local, viaIptables.view.local);
    assert.equal(viaMeshlane.view.remote, viaIptables.view.remote);
    // Not bound to the pod IP, the socket is steered to the pod's own address (not the loopback listener), so the
    // kernel picks that as its source: the sidecar sees what it sees under iptables.
    assert.equal(viaMeshlane.view.sidecarSees, pod.ip);
  });

  test("a connection whose original destination meshlane lost: SO_ORIGINAL_DST fails, never names the probe's own listener", async () => {
    // A source NAT on the pod's loopback makes the accepting end see another client address, so
    // the handover from the connecting end never matches: meshlane steered the connection and
    // has no record of where it was going. (Under iptables the same NAT changes nothing.)
    const snat = ["-t", "nat", "-I", "POSTROUTING", "-o", "lo", "-p", "tcp", "--dport", String(pod.interception.outboundPort), "-j", "SNAT", "--to-source", "127.0.0.9"];
    await run("ip", ["netns", "exec", pod.netns, "iptables", ...snat]);
    try {
      mesh.register([]);
      const viaIptables = await connectThroughProbe(4, DEST[4]);
      assert.equal(viaIptables.origdst, `${DEST[4]} 8080`);
      assert.equal(viaIptables.refused, 0);

      mesh.register([pod]);
      const lost = await connectThroughProbe(4, DEST[4]);
      assert.equal(lost.steered, 1);
      assert.equal(lost.answered, 0);
      assert.equal(lost.origdst, "error 2", "ENOENT, as for a socket without a conntrack entry");
      assert.equal(lost.refused, 1);
    } finally {
      await run("ip", ["netns", "exec", pod.netns, "iptables", ...snat.map((a) => (a === "-I" ? "-D" : a))]);
    }
  });
});
