import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import {
  ADD, CoreV1Api, DELETE, makeInformer, PatchStrategy, setHeaderOptions, UPDATE, Watch,
  type KubernetesObject, type V1Pod,
} from "@kubernetes/client-node";
import { start, type StandIn } from "./apiserver/index.js";
import { EventQueue } from "./event-queue.js";

interface Seen {
  type: string;
  name: string | undefined;
  resourceVersion: string | undefined;
  object: KubernetesObject & { code?: number; reason?: string };
}

const container = { name: "app", image: "registry.local/app:1" };
const mergePatch = setHeaderOptions("Content-Type", PatchStrategy.MergePatch);

describe("watch over HTTP with client-node's Watch", () => {
  let server: StandIn;
  let core: CoreV1Api;
  const aborts: AbortController[] = [];

  before(async () => {
    server = await start({ historyLimit: 20, bookmarkIntervalMs: 100 });
    core = server.kubeConfig.makeApiClient(CoreV1Api);
    await core.createNamespace({ body: { metadata: { name: "w" } } });
  });
  after(async () => {
    aborts.forEach((a) => a.abort());
    await server.stop();
  });

  async function watch(path: string, query: Record<string, string>): Promise<{ events: EventQueue<Seen>; done: Promise<unknown> }> {
    const events = new EventQueue<Seen>();
    let finish!: (err: unknown) => void;
    const done = new Promise<unknown>((resolve) => (finish = resolve));
    const controller = await new Watch(server.kubeConfig).watch(path, query, (type, object: Seen["object"]) =>
      events.push({ type, name: object.metadata?.name, resourceVersion: object.metadata?.resourceVersion, object }), finish);
    aborts.push(controller);
    return { events, done };
  }

  it("sends the events after a list's resourceVersion, each with a larger resourceVersion, deletions included", async () => {
    const list = await core.listNamespacedConfigMap({ namespace: "w" });
    const { events } = await watch("/api/v1/namespaces/w/configmaps", { resourceVersion: list.metadata!.resourceVersion! });
    await core.createNamespacedConfigMap({ namespace: "w", body: { metadata: { name: "c1" }, data: { a: "1" } } });
    await core.patchNamespacedConfigMap({ namespace: "w", name: "c1", body: { data: { a: "2" } } }, mergePatch);
    await core.deleteNamespacedConfigMap({ namespace: "w", name: "c1" });
    const seen = [await events.next(), await events.next(), await events.next()];
    assert.deepEqual(seen.map((e) => [e.type, e.name]), [["ADDED", "c1"], ["MODIFIED", "c1"], ["DELETED", "c1"]]);
    const versions = seen.map((e) => Number(e.resourceVersion));
    assert.ok(versions[0]! > Number(list.metadata!.resourceVersion) && versions[0]! < versions[1]! && versions[1]! < versions[2]!, `${versions}`);
  });

  it("starts with the current objects as ADDED when no resourceVersion is given, and replays missed events from one", async () => {
    await core.createNamespacedConfigMap({ namespace: "w", body: { metadata: { name: "existing" } } });
    const before = await core.listNamespacedConfigMap({ namespace: "w" });
    await core.createNamespacedConfigMap({ namespace: "w", body: { metadata: { name: "missed" } } });

    const fresh = await watch("/api/v1/namespaces/w/configmaps", {});
    assert.deepEqual([await fresh.events.next(), await fresh.events.next()].map((e) => [e.type, e.name]).sort(),
      [["ADDED", "existing"], ["ADDED", "missed"]]);
    const resumed = await watch("/api/v1/namespaces/w/configmaps", { resourceVersion: before.metadata!.resourceVersion! });
    const replayed = await resumed.events.next();
    assert.deepEqual([replayed.type, replayed.name], ["ADDED", "missed"]);
  });

  it("turns selector transitions into ADDED and DELETED for a selective watcher", async () => {
    const pod = await core.createNamespacedPod({ namespace: "w", body: { metadata: { name: "p" }, spec: { containers: [container] } } });
    const { events } = await watch("/api/v1/pods", { resourceVersion: pod.metadata!.resourceVersion!, labelSelector: "meshlane.io/status=accelerated" });
    await core.patchNamespacedPod({ namespace: "w", name: "p", body: { metadata: { labels: { "meshlane.io/status": "accelerated" } } } }, mergePatch);
    await core.patchNamespacedPod({ namespace: "w", name: "p", body: { metadata: { annotations: { touched: "yes" } } } }, mergePatch);
    await core.patchNamespacedPod({ namespace: "w", name: "p", body: { metadata: { labels: { "meshlane.io/status": null } } } }, mergePatch);
    const seen = [await events.next(), await events.next(), await events.next()];
    assert.deepEqual(seen.map((e) => e.type), ["ADDED", "MODIFIED", "DELETED"]);
    assert.equal(seen[2]!.object.metadata?.labels?.["meshlane.io/status"], undefined, "DELETED carries the new state");
  });

  it("shows a pod to a spec.nodeName watcher when it is bound to that node", async () => {
    await core.createNamespacedPod({ namespace: "w", body: { metadata: { name: "unbound" }, spec: { containers: [container] } } });
    const { events } = await watch("/api/v1/pods", { fieldSelector: "spec.nodeName=node-w" });
    await server.kubelet("node-w").bind("w", "unbound");
    const added = await events.next();
    assert.deepEqual([added.type, added.name], ["ADDED", "unbound"]);
  });

  it("answers a compacted resourceVersion with one ERROR event carrying 410 Expired, then ends the stream", async () => {
    const list = await core.listNamespacedConfigMap({ namespace: "w" });
    for (let i = 0; i < 25; i++) await core.createNamespacedConfigMap({ namespace: "w", body: { metadata: { name: `churn-${i}` } } });
    const { events, done } = await watch("/api/v1/namespaces/w/configmaps", { resourceVersion: list.metadata!.resourceVersion! });
    const error = await events.next();
    assert.equal(error.type, "ERROR");
    assert.equal(error.object.kind, "Status");
    assert.equal(error.object.code, 410);
    assert.equal(error.object.reason, "Expired");
    assert.match((error.object as { message?: string }).message!, new RegExp(`^too old resource version: ${list.metadata!.resourceVersion} \\(\\d+\\)$`));
    assert.equal(await done, null, "the server closes the stream after the error");
    assert.deepEqual(events.pending(), []);
  });

  it("sends bookmarks with the current resourceVersion when asked", async () => {
    const { events } = await watch("/api/v1/namespaces/w/pods", { allowWatchBookmarks: "true", resourceVersion: "0" });
    let event = await events.next();
    while (event.type !== "BOOKMARK") event = await events.next();
    const list = await core.listNamespacedPod({ namespace: "w" });
    assert.equal(event.object.kind, "Pod");
    assert.ok(Number(event.resourceVersion) <= Number(list.metadata!.resourceVersion) && Number(event.resourceVersion) > 0);
  });

  it("ends a watch after timeoutSeconds and refuses a bad selector with 400", async () => {
    const started = Date.now();
    const { done } = await watch("/api/v1/namespaces/w/pods", { timeoutSeconds: "1", resourceVersion: "0" });
    assert.equal(await done, null);
    assert.ok(Date.now() - started >= 900);
    const bad = await watch("/api/v1/pods", { labelSelector: "a in b" });
    assert.equal((await bad.done as { statusCode?: number }).statusCode, 400);
  });
});

describe("informers (makeInformer / ListWatch) against the stand-in", () => {
  let server: StandIn;
  let core: CoreV1Api;

  before(async () => {
    server = await start({ historyLimit: 10 });
    core = server.kubeConfig.makeApiClient(CoreV1Api);
    await core.createNamespace({ body: { metadata: { name: "inf" } } });
  });
  after(() => server.stop());

  it("reports add, update and delete, and only for pods its label selector matches", async () => {
    const informer = makeInformer(server.kubeConfig, "/api/v1/namespaces/inf/pods",
      () => core.listNamespacedPod({ namespace: "inf", labelSelector: "marked=yes" }), "marked=yes");
    const events = new EventQueue<[string, string | undefined]>();
    for (const verb of [ADD, UPDATE, DELETE] as const) informer.on(verb, (pod: V1Pod) => events.push([verb, pod.metadata?.name]));
    await informer.start();
    try {
      await core.createNamespacedPod({ namespace: "inf", body: { metadata: { name: "ignored" }, spec: { containers: [container] } } });
      await core.createNamespacedPod({ namespace: "inf", body: { metadata: { name: "m", labels: { marked: "yes" } }, spec: { containers: [container] } } });
      assert.deepEqual(await events.next(), [ADD, "m"]);
      await server.kubelet("node-i").run("inf", "m", ["10.1.0.5"]);
      assert.deepEqual(await events.next(), [UPDATE, "m"]); // bound
      assert.deepEqual(await events.next(), [UPDATE, "m"]); // running with an IP
      assert.equal(informer.get("m", "inf")?.status?.podIP, "10.1.0.5");
      await core.patchNamespacedPod({ namespace: "inf", name: "m", body: { metadata: { labels: { marked: null } } } }, mergePatch);
      assert.deepEqual(await events.next(), [DELETE, "m"]);
      assert.deepEqual(events.pending(), []);
      assert.deepEqual(informer.list("inf"), []);
    } finally {
      await informer.stop();
    }
  });

  it("relists after a 410 and reports what changed while it was not watching", async () => {
    let lists = 0;
    const informer = makeInformer(server.kubeConfig, "/api/v1/namespaces/inf/configmaps", async () => {
      lists++;
      // The second list is the relist after the 410: a deletion lands just before it,
      // in the gap when no watch is open, so only the relist can reveal it.
      if (lists === 2) await core.deleteNamespacedConfigMap({ namespace: "inf", name: "will-vanish" });
      return core.listNamespacedConfigMap({ namespace: "inf" });
    });
    const events = new EventQueue<[string, string | undefined]>();
    for (const verb of [ADD, DELETE] as const) informer.on(verb, (cm: KubernetesObject) => events.push([verb, cm.metadata?.name]));
    await core.createNamespacedConfigMap({ namespace: "inf", body: { metadata: { name: "will-vanish" } } });
    await informer.start();
    try {
      assert.deepEqual(await events.next(), [ADD, "will-vanish"]);
      // Writes elsewhere push the informer's quiet resourceVersion out of the bounded history.
      await core.createNamespace({ body: { metadata: { name: "busy" } } });
      for (let i = 0; i < 15; i++) await core.createNamespacedPod({ namespace: "busy", body: { metadata: { name: `p${i}` }, spec: { containers: [container] } } });
      server.closeWatches();
      assert.deepEqual(await events.next(), [DELETE, "will-vanish"]);
      assert.equal(lists, 2);
      await core.createNamespacedConfigMap({ namespace: "inf", body: { metadata: { name: "after-relist" } } });
      assert.deepEqual(await events.next(), [ADD, "after-relist"], "the informer watches again after relisting");
    } finally {
      await informer.stop();
    }
  });
});
