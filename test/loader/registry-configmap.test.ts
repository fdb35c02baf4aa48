// Kubernetes mode's registry source against the API stand-in: it sees its own
// node's ConfigMap only, follows it through watch breaks, and refuses to answer
// before it has listed once.

import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { CoreV1Api, PatchStrategy, setHeaderOptions } from "@kubernetes/client-node";
import { pino } from "pino";
import type { RegistrySource } from "../../loader/agent.js";
import { configMapRegistrySource } from "../../loader/registry-configmap.js";
import { endpointOfKubeconfigs } from "../../loader/kube-api.js";
import { nodeConfigMapName, SYSTEM_NAMESPACE } from "../../registry/names.js";
import { start, type StandIn } from "../kube/apiserver/index.js";
import { until } from "../../lab/until.js";

describe("ConfigMap registry source", () => {
  let cluster: StandIn;
  let core: CoreV1Api;
  let source: RegistrySource;
  let changes = 0;
  const put = (node: string, data: Record<string, string | null>) =>
    core.patchNamespacedConfigMap({ namespace: SYSTEM_NAMESPACE, name: nodeConfigMapName(node), body: { data } }, setHeaderOptions("Content-Type", PatchStrategy.MergePatch));

  before(async () => {
    cluster = await start();
    core = cluster.kubeConfig.makeApiClient(CoreV1Api);
    await core.createNamespace({ body: { metadata: { name: SYSTEM_NAMESPACE } } });
    source = configMapRegistrySource(endpointOfKubeconfigs([{ text: cluster.kubeConfig.exportConfig(), dir: "/" }]), "node-a", pino({ level: "silent" }));
  });
  after(async () => {
    await source?.stop();
    await cluster?.stop();
  });

  test("read() fails until the first list, then a missing ConfigMap is an empty registry", async () => {
    assert.throws(() => source.read(), /ConfigMap meshlane-system\/meshlane-node-node-a at https:\/\/127\.0\.0\.1:\d+ has not been listed yet/);
    await source.start(() => changes++);
    assert.deepEqual(await source.read(), {});
  });

  test("follows its node's ConfigMap, parsing values, and ignores other nodes'", async () => {
    for (const node of ["node-a", "node-b"]) {
      await core.createNamespacedConfigMap({ namespace: SYSTEM_NAMESPACE, body: { metadata: { name: nodeConfigMapName(node) }, data: { [`uid-${node}`]: '{"version":1}' } } });
    }
    await until("node-a's ConfigMap is seen", async () => "uid-node-a" in (await source.read()));
    assert.deepEqual(await source.read(), { "uid-node-a": { version: 1 } });
    const seen = changes;
    await put("node-b", { other: "{}" });
    await put("node-a", { garbled: "{not json" });
    await until("the garbled key is seen", async () => "garbled" in (await source.read()));
    assert.equal(changes, seen + 1, "one change: node-b's ConfigMap is not watched");
    assert.equal((await source.read()).garbled, "{not json", "a value that is not JSON is handed on as text, for the agent to report");
  });

  test("keeps following after the API server ends every watch, and a deleted ConfigMap empties the registry", async () => {
    cluster.closeWatches();
    await put("node-a", { later: '{"version":1}' });
    await until("a change after the watch broke is seen", async () => "later" in (await source.read()));
    await core.deleteNamespacedConfigMap({ namespace: SYSTEM_NAMESPACE, name: nodeConfigMapName("node-a") });
    await until("the deletion is seen", async () => Object.keys(await source.read()).length === 0);
  });
});
