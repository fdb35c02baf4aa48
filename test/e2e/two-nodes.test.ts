// Two nodes on one machine, end to end on a real kube-apiserver: two test nodes on one
// pod network (lab/topology: each its own kubepods cgroup tree, pins and meshlane
// programs), one `meshlane-loader run --node` per node watching its own node's
// registrations, pods created with kubectl and placed on a node by spec.nodeName, their
// IPs reported by that node's kubelet. Each loader must hold its own node's pods and no
// other; traffic between two pods of one node is paired on that node; traffic to a pod
// on the other node is steered at connect time on the client's node, reaches the other
// node's pod through its iptables, and is never paired across the nodes; deleting a pod
// removes it from its own node's maps only.

import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { cgroupId } from "../../loader/cgroup.js";
import type { Counters } from "../../loader/counters.js";
import { readStatus } from "../../loader/status.js";
import { ANNOTATION_STATUS } from "../../registry/names.js";
import { Mesh } from "../../lab/topology/mesh.js";
import type { SidecarLogEntry, TestPod } from "../../lab/topology/node.js";
import { until } from "../../lab/until.js";
import { interceptionOf, ISTIO_INJECTION_LABELS, LocalCluster, MESHLANE_LABELS } from "../../lab/local-cluster.js";

const NS = "shop";
const TRAFFIC = { sizes: Array<number>(6).fill(64 << 10), concurrency: 3 };
const PAYLOAD = BigInt(TRAFFIC.sizes.reduce((a, b) => a + b, 0));
const CONNECTIONS = TRAFFIC.sizes.length;

interface Node {
  name: string;
  mesh: Mesh;
  pods: TestPod[];
}

describe("two nodes on one machine", { timeout: 240_000 }, () => {
  let cluster: LocalCluster;
  const nodes: Node[] = [];
  let a: Node, b: Node;
  const pod: Record<string, TestPod> = {};

  /** What the node's maps hold, as its loader's status shows it: pod cgroup ids and their IPs. */
  function mapped(node: Node): { cgroups: string[]; ips: string[] } {
    const status = readStatus(node.mesh.pinDir);
    return { cgroups: status.pods.map((p) => p.cgroupId).sort(), ips: status.pods.flatMap((p) => p.ips).sort() };
  }
  const expected = (pods: TestPod[]) => ({ cgroups: pods.map((p) => cgroupId(p.cgroup).toString()).sort(), ips: pods.map((p) => p.ip).sort() });

  /** Creates the pod in the API on the node (spec.nodeName), its test namespace under the UID the API gave it, and runs it. */
  async function podOn(node: Node, name: string, app = false): Promise<TestPod> {
    const api = await cluster.createPod(NS, name, node.name);
    assert.equal(api.spec!.nodeName, node.name);
    assert.equal(api.metadata!.annotations![ANNOTATION_STATUS], "accelerated", `meshlane's webhook marked ${name}`);
    const p = await node.mesh.node.addPod(name, { uid: api.metadata!.uid!, interception: interceptionOf(api) });
    if (app) await p.startApp(80);
    await cluster.runPod(NS, name, [p.ip], node.name);
    node.pods.push(p);
    pod[name] = p;
    return p;
  }

  const delta = (after: Counters, before: Counters) =>
    Object.fromEntries(Object.keys(after).map((k) => [k, after[k as keyof Counters] - before[k as keyof Counters]])) as Counters;

  /** Sends TRAFFIC from one pod's app to another pod's app; returns each node's counter changes and the two pods' iptables REDIRECT counts. */
  async function exchange(from: TestPod, to: TestPod) {
    const [outBefore, inBefore] = [await from.redirectCounters(), await to.redirectCounters()];
    await to.startSidecarLog();
    const before = nodes.map((n) => n.mesh.counters());
    const results = await from.send(to.ip, 80, TRAFFIC);
    await to.node.sidecarLogsSettled();
    assert.deepEqual(results.filter((r) => !r.ok), [], "every byte came back intact, in order, on every connection");
    assert.ok(results.every((r) => r.remote === `${to.ip} 80`), "the app saw the destination it asked for");
    const counted = nodes.map((n, i) => delta(n.mesh.counters(), before[i]!));
    return {
      a: counted[0]!,
      b: counted[1]!,
      clientIptablesOutbound: (await from.redirectCounters()).outbound - outBefore.outbound,
      serverIptablesInbound: (await to.redirectCounters()).inbound - inBefore.inbound,
    };
  }

  /** Every counter of one node that moves when meshlane touches a connection there. */
  const untouched = (c: Counters) => ({
    steeredOutbound: c.CNT_CONNECT_OUTBOUND, steeredInbound: c.CNT_CONNECT_INBOUND, paired: c.CNT_SOCKETS_PAIRED,
    messagesRedirected: c.CNT_MSG_REDIRECTED, bytesRedirected: c.CNT_BYTES_REDIRECTED, noPeer: c.CNT_FALLBACK_NO_PEER, origdst: c.CNT_ORIGDST_ANSWERED,
  });
  const NOTHING = { steeredOutbound: 0n, steeredInbound: 0n, paired: 0n, messagesRedirected: 0n, bytesRedirected: 0n, noPeer: 0n, origdst: 0n };

  before(async () => {
    const first = await Mesh.create();
    nodes.push({ name: "node-a", mesh: first, pods: [] });
    nodes.push({ name: "node-b", mesh: await Mesh.create({ network: first.node.network }), pods: [] });
    [a, b] = nodes as [Node, Node];
    for (const n of nodes) n.mesh.attach();
    const workDir = join(a.mesh.node.workDir, "cluster");
    mkdirSync(workDir);
    cluster = await LocalCluster.start({
      workDir, nodes: nodes.map((n) => ({ name: n.name, kubepods: n.mesh.node.kubepods, pinDir: n.mesh.pinDir })), registrarResync: "1s", loaderResyncSeconds: 2,
    });
  });
  after(async () => {
    try {
      await cluster?.stop();
    } finally {
      // node-b joined node-a's pod network: node-a, which made it, goes last.
      for (const n of [...nodes].reverse()) await n.mesh.destroy();
    }
  });

  test("the nodes are separate: own kubepods tree, own pins, one pod network", () => {
    assert.notEqual(a.mesh.node.kubepods, b.mesh.node.kubepods);
    assert.ok(!a.mesh.node.kubepods.startsWith(b.mesh.node.cgroupRoot) && !b.mesh.node.kubepods.startsWith(a.mesh.node.cgroupRoot));
    assert.notEqual(a.mesh.pinDir, b.mesh.pinDir);
    assert.equal(a.mesh.node.bridgeNs, b.mesh.node.bridgeNs);
  });

  test("pods placed on each node are registered on that node only, and each loader maps exactly its own node's pods", async () => {
    await cluster.createNamespace(NS, { ...ISTIO_INJECTION_LABELS, ...MESHLANE_LABELS });
    await podOn(a, "a-server", true);
    await podOn(a, "a-client");
    await podOn(b, "b-server", true);
    await podOn(b, "b-client");

    const known = (n: Node) => readStatus(n.mesh.pinDir, cluster.node(n.name).loaderStateFile).pods.map((p) => p.uid).sort();
    for (const n of nodes) {
      const uids = n.pods.map((p) => p.uid).sort();
      await until(`${n.name}'s registrations are its pods`, async () => (await cluster.nodeRegistry(n.name)).map((r) => r.uid).sort().join() === uids.join());
      await until(`${n.name}'s loader mapped its pods`, () => mapped(n).cgroups.length === n.pods.length);
      // The loader writes its state file at most once a second.
      await until(`${n.name}'s loader state names its pods`, () => known(n).every((uid) => uid !== undefined) && known(n).length === n.pods.length);
    }
    // A loader that also took the other node's registrations would hold their IPs (or
    // report them pending a cgroup that never appears under its kubepods).
    for (const n of nodes) {
      assert.deepEqual(mapped(n), expected(n.pods), `${n.name}'s maps hold its own pods and nothing else`);
      assert.deepEqual(known(n), n.pods.map((p) => p.uid).sort(), `${n.name}'s loader knows only its own pods`);
    }
  });

  for (const [client, server] of [["a-client", "a-server"], ["b-client", "b-server"]] as const) {
    test(`same-node traffic (${client} → ${server}) is steered and paired on that node, and the other node sees none of it`, async () => {
      const r = await exchange(pod[client]!, pod[server]!);
      const [here, there] = client.startsWith("a") ? [r.a, r.b] : [r.b, r.a];
      assert.equal(r.clientIptablesOutbound, 0, "the client's iptables redirected none of it");
      assert.equal(here.CNT_CONNECT_OUTBOUND, BigInt(CONNECTIONS), "every app connection steered to the client's sidecar");
      assert.equal(here.CNT_CONNECT_INBOUND, BigInt(CONNECTIONS), "every sidecar connection steered to the server's inbound port");
      // (The server's ISTIO_INBOUND has no exception for 15006, so its REDIRECT rule counts
      // these connections too, rewriting 15006 to 15006: no discriminator. Who answered
      // the sidecars' SO_ORIGINAL_DST is one.)
      assert.equal(here.CNT_ORIGDST_ANSWERED, 2n * BigInt(CONNECTIONS), "both sidecars learnt the original destination from meshlane");
      assert.ok(here.CNT_SOCKETS_PAIRED >= 2n * BigInt(CONNECTIONS), `sidecar-to-sidecar connections paired (${here.CNT_SOCKETS_PAIRED} sockets)`);
      assert.ok(here.CNT_BYTES_REDIRECTED >= 2n * PAYLOAD, `the payload moved socket to socket (${here.CNT_BYTES_REDIRECTED} bytes)`);
      assert.equal(here.CNT_FALLBACK_NO_PEER, 0n);
      assert.deepEqual(untouched(there), NOTHING, "the other node's programs never saw these connections");
    });
  }

  for (const [client, server] of [["a-client", "b-server"], ["b-client", "a-server"]] as const) {
    test(`cross-node traffic (${client} → ${server}) is steered at connect time on the client's node and never paired across the nodes`, async () => {
      const r = await exchange(pod[client]!, pod[server]!);
      const [clientNode, serverNode] = client.startsWith("a") ? [r.a, r.b] : [r.b, r.a];
      assert.equal(r.clientIptablesOutbound, 0, "the client's own node steered every connection at connect time, before iptables");
      assert.equal(clientNode.CNT_CONNECT_OUTBOUND, BigInt(CONNECTIONS));
      // The server is no pod of the client's node: its sidecar's connection keeps its
      // destination and is not set up for pairing, so no redirect ever looks for a peer.
      assert.equal(clientNode.CNT_CONNECT_INBOUND, 0n, "no connection steered to a pod of another node");
      assert.equal(clientNode.CNT_FALLBACK_NO_PEER, 0n, "no socket waited for a peer on the other node");
      assert.equal(clientNode.CNT_ORIGDST_ANSWERED, BigInt(CONNECTIONS), "only the client's sidecar learnt the original destination from meshlane");
      assert.equal(r.serverIptablesInbound, CONNECTIONS, "the connections reached the server's pod from the network and took its iptables");
      assert.deepEqual(untouched(serverNode), NOTHING, "the server's node steered, paired, redirected and answered nothing of it");
      const fromClient = (l: SidecarLogEntry) => l.frontend === "inbound" && l.client.startsWith(`${pod[client]!.ip}:`);
      await pod[server]!.expectSidecarLogged(CONNECTIONS, fromClient, "the server's sidecar saw each connection coming from the client pod's address");
    });
  }

  test("a cross-node exchange pairs only the client's in-pod hop: fewer sockets than a same-node one", async () => {
    const same = (await exchange(pod["a-client"]!, pod["a-server"]!)).a;
    const cross = (await exchange(pod["a-client"]!, pod["b-server"]!)).a;
    assert.ok(cross.CNT_SOCKETS_PAIRED < same.CNT_SOCKETS_PAIRED, `cross-node ${cross.CNT_SOCKETS_PAIRED} paired sockets, same-node ${same.CNT_SOCKETS_PAIRED}`);
    assert.ok(cross.CNT_BYTES_REDIRECTED < same.CNT_BYTES_REDIRECTED);
  });

  test("deleting a pod removes it from its own node's maps only", async () => {
    const bBefore = mapped(b);
    await cluster.deletePod(NS, "a-client");
    await until("a-client's registration is gone", async () => !(await cluster.nodeRegistry(a.name)).some((r) => r.uid === pod["a-client"]!.uid));
    await until("and its map entry on node-a", () => !mapped(a).cgroups.includes(cgroupId(pod["a-client"]!.cgroup).toString()));
    assert.deepEqual(mapped(a), expected([pod["a-server"]!]), "node-a keeps a-server");
    assert.deepEqual(mapped(b), bBefore, "node-b's maps did not change");

    await cluster.deletePod(NS, "b-server");
    await until("b-server's map entry on node-b is gone", () => !mapped(b).cgroups.includes(cgroupId(pod["b-server"]!.cgroup).toString()));
    assert.deepEqual(mapped(b), expected([pod["b-client"]!]));
    assert.deepEqual(mapped(a), expected([pod["a-server"]!]), "node-a's maps did not change");
  });
});
