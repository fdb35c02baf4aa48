// Kubernetes mode's registry source against the real kube-apiserver, with the
// loader's own ServiceAccount token and the manifest's RBAC: it sees its own node's
// registry objects only (label selector), follows them through broken connections,
// and refuses to answer before it has listed once.

import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { createConnection, createServer, type Server, type Socket } from "node:net";
import { CoreV1Api, KubeConfig, PatchStrategy, setHeaderOptions } from "@kubernetes/client-node";
import { pino } from "pino";
import type { RegistrySource } from "../../loader/agent.js";
import { configMapRegistrySource } from "../../loader/registry-configmap.js";
import { endpointOfKubeconfigs } from "../../loader/kube-api.js";
import { registrationObject, registrationObjectName, REGISTRY_NAMESPACE } from "../../registry/configmap.js";
import { ControlPlane } from "../../lab/controlplane/index.js";
import { until } from "../../lab/until.js";

const MANIFEST = new URL("../../manifests/all-in-one.yaml", import.meta.url).pathname;

/** A TCP relay to the API server whose connections the test can cut, as a network or server restart would. */
async function cuttableRelay(target: URL): Promise<{ port: number; cut(): void; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  const server: Server = createServer((client) => {
    const upstream = createConnection(Number(target.port), target.hostname);
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on("close", () => sockets.delete(s));
      s.on("error", () => s.destroy());
    }
    client.pipe(upstream).pipe(client);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    port: (server.address() as { port: number }).port,
    cut: () => sockets.forEach((s) => s.destroy()),
    close: () => new Promise((resolve) => { sockets.forEach((s) => s.destroy()); server.close(() => resolve()); }),
  };
}

/** The same identity, reaching the API server through the relay. */
function through(kubeConfig: KubeConfig, port: number): KubeConfig {
  const copy = new KubeConfig();
  copy.loadFromString(kubeConfig.exportConfig());
  const cluster = copy.getCurrentCluster()!;
  const url = new URL(cluster.server);
  url.port = String(port);
  copy.clusters = copy.clusters.map((c) => (c.name === cluster.name ? { ...c, server: url.origin } : c));
  return copy;
}

describe("registry objects as the loader's source", () => {
  let cp: ControlPlane;
  let relay: Awaited<ReturnType<typeof cuttableRelay>>;
  let core: CoreV1Api;
  let source: RegistrySource;
  let changes = 0;
  /** The keys each change named (undefined: any may have changed, after a list). */
  const named: (readonly string[] | undefined)[] = [];
  const create = (node: string, uid: string, document: string) => core.createNamespacedConfigMap({ namespace: REGISTRY_NAMESPACE, body: registrationObject(node, uid, document) });
  const patch = (uid: string, document: string) =>
    core.patchNamespacedConfigMap({ namespace: REGISTRY_NAMESPACE, name: registrationObjectName(uid), body: { data: { registration: document } } }, setHeaderOptions("Content-Type", PatchStrategy.MergePatch));

  before(async () => {
    cp = await ControlPlane.start();
    core = cp.admin.kubeConfig.makeApiClient(CoreV1Api);
    await cp.kubectl(["apply", "--server-side", "-f", MANIFEST]);
    const loader = await cp.serviceAccount(REGISTRY_NAMESPACE, "meshlane-loader");
    relay = await cuttableRelay(new URL(cp.server));
    source = configMapRegistrySource(endpointOfKubeconfigs([{ text: through(loader.kubeConfig, relay.port).exportConfig(), dir: "/" }]), "node-a", pino({ level: "silent" }));
  });
  after(async () => {
    await source?.stop();
    await relay?.close();
    await cp?.stop();
  });

  test("read() fails until the first list, then no objects is an empty registry", async () => {
    assert.throws(() => source.read(), /registry objects app\.kubernetes\.io\/part-of=meshlane,meshlane\.io\/node=node-a in meshlane-system at https:\/\/127\.0\.0\.1:\d+ have not been listed yet/);
    await source.start((keys) => {
      changes++;
      named.push(keys);
    });
    assert.deepEqual(await source.read(), {});
  });

  test("follows its node's objects, parsing documents, and never sees other nodes' or other ConfigMaps", async () => {
    await create("node-a", "uid-a", '{"version":2}');
    await create("node-b", "uid-b", '{"version":2}');
    await core.createNamespacedConfigMap({ namespace: REGISTRY_NAMESPACE, body: { metadata: { name: "unrelated" }, data: { x: "y" } } });
    await until("node-a's object is seen", async () => "uid-a" in (await source.read()));
    assert.deepEqual(await source.read(), { "uid-a": { version: 2 } });
    const seen = changes;
    await patch("uid-b", "{}");
    await patch("uid-a", "{not json");
    await until("the garbled document is seen", async () => (await source.read())["uid-a"] === "{not json");
    assert.equal(changes, seen + 1, "one change: node-b's object is not watched");
    assert.deepEqual(named.at(-1), ["uid-a"], "the change names the one key it changed");
    assert.deepEqual(await source.read(["uid-a", "uid-b", "uid-none"]), { "uid-a": "{not json" }, "read by keys: only this node's, only those that exist");
  });

  test("keeps following after its connections to the API server are cut; a deleted object leaves the registry", async () => {
    relay.cut();
    await create("node-a", "uid-later", '{"version":2}');
    await until("an object created after the watch broke is seen", async () => "uid-later" in (await source.read()));
    await core.deleteNamespacedConfigMap({ namespace: REGISTRY_NAMESPACE, name: registrationObjectName("uid-a") });
    await until("the deletion is seen", async () => !("uid-a" in (await source.read())));
    await until("the deletion names its key", () => named.at(-1)?.join() === "uid-a");
    assert.deepEqual(await source.read(["uid-a"]), {}, "a deleted key is absent from a read by keys");
    assert.deepEqual(Object.keys(await source.read()), ["uid-later"]);
  });
});
