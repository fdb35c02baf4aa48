// TCP Fast Open on the sidecars' listeners (HAProxy `bind … tfo`, and `tfo` towards
// the servers, so the sidecar-to-sidecar hop uses it too) with net.ipv4.tcp_fastopen=3
// in the pods: requests succeed under meshlane as under iptables, as real Fast Open
// connections, and no sidecar ever connects to itself. With Fast Open the accepting
// end is established by the SYN, before the client's own sockops callback ran: the
// original destination must already be on its way then.

import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { Mesh } from "../../lab/topology/mesh.js";
import type { TestPod } from "../../lab/topology/node.js";
import { run } from "../../lab/topology/run.js";

const REQUESTS = 30;

describe("TCP Fast Open", () => {
  let mesh: Mesh;
  let a: TestPod, b: TestPod;

  before(async () => {
    mesh = await Mesh.create();
    a = await mesh.node.addPod("a", { sidecar: false });
    b = await mesh.node.addPod("b", { sidecar: false });
    for (const pod of [a, b]) {
      await run("ip", ["netns", "exec", pod.netns, "sysctl", "-qw", "net.ipv4.tcp_fastopen=3"]);
      await pod.startSidecar(undefined, { tfo: true });
    }
    await b.startApp(80);
    mesh.attach();
  });
  after(() => mesh.destroy());

  /** REQUESTS Fast Open connections from a (as the app, or as the proxy user) to b:80, echoed back by b's app. */
  async function requests(client: "sendto" | "connect", opts: { uid?: number } = {}) {
    for (const p of [a, b]) p.sidecarLog = [];
    const before = mesh.counters();
    const r = await a.exec([mesh.node.helperBinary("tfo-client"), b.ip, "80", String(REQUESTS), client, "1000"], opts);
    assert.equal(r.code, 0, r.stderr);
    await mesh.node.sidecarLogsSettled();
    const m = /^ok (\d+) failed (\d+) syn_data (\d+)$/m.exec(r.stdout);
    assert.ok(m, r.stdout);
    const after = mesh.counters();
    const ownListeners = [`127.0.0.1:${a.interception.outboundPort}`, `${a.ip}:${a.interception.inboundPort}`, `${b.ip}:${b.interception.inboundPort}`];
    const log = [...a.sidecarLog, ...b.sidecarLog];
    return {
      ok: Number(m[1]),
      failed: Number(m[2]),
      synData: Number(m[3]),
      outbound: a.sidecarLog.filter((l) => l.frontend === "outbound").length,
      inbound: b.sidecarLog.filter((l) => l.frontend === "inbound").length,
      selfConnections: log.filter((l) => ownListeners.includes(l.server)).length,
      steered: Number(after.CNT_CONNECT_OUTBOUND - before.CNT_CONNECT_OUTBOUND + after.CNT_CONNECT_INBOUND - before.CNT_CONNECT_INBOUND),
      answered: Number(after.CNT_ORIGDST_ANSWERED - before.CNT_ORIGDST_ANSWERED),
      refused: Number(after.CNT_ORIGDST_REFUSED - before.CNT_ORIGDST_REFUSED),
      synDataFallbacks: Number(after.CNT_FALLBACK_SYN_DATA - before.CNT_FALLBACK_SYN_DATA),
    };
  }

  for (const client of ["sendto", "connect"] as const) {
    const how = client === "sendto" ? "sendto(MSG_FASTOPEN)" : "TCP_FASTOPEN_CONNECT";
    test(`an app using ${how}: every request succeeds as under iptables, with data in the SYN, and no sidecar loops`, async () => {
      mesh.register([]);
      const viaIptables = await requests(client);
      assert.deepEqual([viaIptables.ok, viaIptables.failed, viaIptables.selfConnections], [REQUESTS, 0, 0]);
      assert.ok(viaIptables.synData >= REQUESTS - 1, `under iptables all but the cookie request are Fast Open (${viaIptables.synData})`);

      for (const redirect of ["proxy", "all"] as const) {
        for (const p of [a, b]) p.interception.redirect = redirect;
        mesh.register([a, b]);
        const viaMeshlane = await requests(client);
        assert.deepEqual([viaMeshlane.ok, viaMeshlane.failed], [REQUESTS, 0], `redirect mode ${redirect}`);
        assert.ok(viaMeshlane.synData >= REQUESTS - 1, `Fast Open still taken (${viaMeshlane.synData})`);
        assert.equal(viaMeshlane.selfConnections, 0);
        assert.deepEqual([viaMeshlane.outbound, viaMeshlane.inbound], [REQUESTS, REQUESTS], "one connection per request through each sidecar, no more");
        // App to a's sidecar and a's sidecar to b's inbound listener, both steered and both answered.
        assert.deepEqual([viaMeshlane.steered, viaMeshlane.answered, viaMeshlane.refused], [2 * REQUESTS, 2 * REQUESTS, 0]);
        if (redirect === "all") assert.ok(viaMeshlane.synDataFallbacks > 0, "connections whose SYN carried data stayed on the stack");
      }
    });
  }

  test("the proxy user itself connecting with Fast Open to b's inbound listener: answered, no loop", async () => {
    for (const p of [a, b]) p.interception.redirect = "proxy";
    mesh.register([a, b]);
    const viaMeshlane = await requests("sendto", { uid: a.interception.proxyUid });
    assert.deepEqual([viaMeshlane.ok, viaMeshlane.failed, viaMeshlane.selfConnections], [REQUESTS, 0, 0]);
    assert.ok(viaMeshlane.synData >= REQUESTS - 1, `Fast Open taken (${viaMeshlane.synData})`);
    assert.deepEqual([viaMeshlane.outbound, viaMeshlane.inbound], [0, REQUESTS]);
    assert.deepEqual([viaMeshlane.steered, viaMeshlane.answered, viaMeshlane.refused], [REQUESTS, REQUESTS, 0]);
    assert.ok(viaMeshlane.synDataFallbacks >= REQUESTS - 1, "the proxy-to-proxy pair skipped, its SYN carried data");
  });
});
