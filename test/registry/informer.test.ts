// registry/informer.ts against the real kube-apiserver: a failed list is retried with
// growing delays until it works, the cache says when it has been filled, and a label
// selector keeps what the cache holds to the objects selected.

import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { CoreV1Api, type V1Namespace } from "@kubernetes/client-node";
import { resilientInformer } from "../../registry/informer.js";
import { ControlPlane } from "../../lab/controlplane/index.js";
import { until } from "../../lab/until.js";

let cp: ControlPlane;
before(async () => {
  cp = await ControlPlane.start();
});
after(async () => {
  await cp?.stop();
});

test("an informer whose list fails is restarted with backoff, then fills its cache and follows changes", async () => {
  const core = cp.admin.kubeConfig.makeApiClient(CoreV1Api);
  let failuresLeft = 2;
  const delays: number[] = [];
  const added: string[] = [];
  const informer = resilientInformer<V1Namespace>({
    kubeConfig: cp.admin.kubeConfig,
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
  }
});

test("with a label selector, the cache holds only the selected objects, and losing the label is a deletion", async () => {
  const core = cp.admin.kubeConfig.makeApiClient(CoreV1Api);
  const labelSelector = "meshlane.io/test=selected";
  const events: string[] = [];
  const informer = resilientInformer<V1Namespace>({
    kubeConfig: cp.admin.kubeConfig,
    path: "/api/v1/namespaces",
    list: () => core.listNamespace({ labelSelector }),
    labelSelector,
    onEvent: (event, ns) => events.push(`${event} ${ns.metadata!.name!}`),
    onError: () => undefined,
  });
  try {
    await core.createNamespace({ body: { metadata: { name: "picked", labels: { "meshlane.io/test": "selected" } } } });
    await core.createNamespace({ body: { metadata: { name: "passed-over" } } });
    await informer.start();
    assert.deepEqual(informer.cache.list().map((n) => n.metadata!.name), ["picked"]);
    await core.patchNamespace({ name: "picked", body: [{ op: "remove", path: "/metadata/labels/meshlane.io~1test" }] });
    await until("the unlabelled namespace leaves the cache", () => informer.cache.list().length === 0);
    assert.deepEqual(events, ["add picked", "delete picked"]);
  } finally {
    await informer.stop();
  }
});
