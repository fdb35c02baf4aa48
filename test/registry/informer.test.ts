// registry/informer.ts: a failed list or watch is retried with growing delays until
// it works, and the cache says when it has been filled.

import { test } from "node:test";
import assert from "node:assert/strict";
import { CoreV1Api, type V1Namespace } from "@kubernetes/client-node";
import { resilientInformer } from "../../registry/informer.js";
import { start } from "../kube/apiserver/index.js";
import { until } from "../../lab/until.js";

test("an informer whose list fails is restarted with backoff, then fills its cache and follows changes", async () => {
  const cluster = await start();
  const core = cluster.kubeConfig.makeApiClient(CoreV1Api);
  let failuresLeft = 2;
  const delays: number[] = [];
  const added: string[] = [];
  const informer = resilientInformer<V1Namespace>({
    kubeConfig: cluster.kubeConfig,
    path: "/api/v1/namespaces",
    list: async () => {
      if (failuresLeft-- > 0) throw new Error("API server unavailable");
      return core.listNamespace();
    },
    onEvent: (event, ns) => event === "add" && added.push(ns.metadata!.name!),
    onError: (_e, retryInMs) => delays.push(retryInMs),
    retryMinMs: 20,
  });
  try {
    await informer.start();
    assert.equal(informer.synced(), false, "the first list failed");
    await until("the informer has listed", () => informer.synced());
    assert.deepEqual(delays, [20, 40], "delays double");
    assert.ok(added.includes("kube-system"));
    await core.createNamespace({ body: { metadata: { name: "later" } } });
    await until("the new namespace is seen", () => informer.cache.get("later") !== undefined);
  } finally {
    await informer.stop();
    await cluster.stop();
  }
});
