// Kubernetes mode's registry source against an API server: it sees its own node's
// registry objects only (label selector), follows them through watch breaks, and
// refuses to answer before it has listed once.

import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { CoreV1Api, PatchStrategy, setHeaderOptions } from "@kubernetes/client-node";
import { pino } from "pino";
import type { RegistrySource } from "../../loader/agent.js";
import { configMapRegistrySource } from "../../loader/registry-configmap.js";
import { endpointOfKubeconfigs } from "../../loader/kube-api.js";
import { registrationObject, registrationObjectName, REGISTRY_NAMESPACE } from "../../registry/configmap.js";
import { start, type StandIn } from "../kube/apiserver/index.js";
import { until } from "../../lab/until.js";

describe("registry objects as the loader's source", () => {
  let cluster: StandIn;
  let core: CoreV1Api;
  let source: RegistrySource;
  let changes = 0;
  const create = (node: string, uid: string, document: string) => core.createNamespacedConfigMap({ namespace: REGISTRY_NAMESPACE, body: registrationObject(node, uid, document) });
  const patch = (uid: string, document: string) =>
    core.patchNamespacedConfigMap({ namespace: REGISTRY_NAMESPACE, name: registrationObjectName(uid), body: { data: { registration: document } } }, setHeaderOptions("Content-Type", PatchStrategy.MergePatch));

  before(async () => {
    cluster = await start();
    core = cluster.kubeConfig.makeApiClient(CoreV1Api);
    await core.createNamespace({ body: { metadata: { name: REGISTRY_NAMESPACE } } });
    source = configMapRegistrySource(endpointOfKubeconfigs([{ text: cluster.kubeConfig.exportConfig(), dir: "/" }]), "node-a", pino({ level: "silent" }));
  });
  after(async () => {
    await source?.stop();
    await cluster?.stop();
  });

  test("read() fails until the first list, then no objects is an empty registry", async () => {
    assert.throws(() => source.read(), /registry objects app\.kubernetes\.io\/part-of=meshlane,meshlane\.io\/node=node-a in meshlane-system at https:\/\/127\.0\.0\.1:\d+ have not been listed yet/);
    await source.start(() => changes++);
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
  });

  test("keeps following after the API server ends every watch; a deleted object leaves the registry", async () => {
    cluster.closeWatches();
    await create("node-a", "uid-later", '{"version":2}');
    await until("an object created after the watch broke is seen", async () => "uid-later" in (await source.read()));
    await core.deleteNamespacedConfigMap({ namespace: REGISTRY_NAMESPACE, name: registrationObjectName("uid-a") });
    await until("the deletion is seen", async () => !("uid-a" in (await source.read())));
    assert.deepEqual(Object.keys(await source.read()), ["uid-later"]);
  });
});
