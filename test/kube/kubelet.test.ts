import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { CoreV1Api, PatchStrategy, setHeaderOptions, Watch, type V1Pod } from "@kubernetes/client-node";
import { start, type StandIn } from "./apiserver/index.js";
import { rejectionStatus } from "./client-errors.js";
import { EventQueue } from "./event-queue.js";

const container = { name: "app", image: "registry.local/app:1" };

describe("the kubelet helper", () => {
  let server: StandIn;
  let core: CoreV1Api;
  let watchAbort: AbortController | undefined;

  before(async () => {
    server = await start({ tls: false, namespaces: ["default", "k"] });
    core = server.kubeConfig.makeApiClient(CoreV1Api);
  });
  after(async () => {
    watchAbort?.abort();
    await server.stop();
  });

  const createPod = (name: string) => core.createNamespacedPod({ namespace: "k", body: { metadata: { name }, spec: { containers: [container] } } });

  it("binds, then reports Running with IPs, each step a write that watchers see", async () => {
    const pod = await createPod("web");
    const events = new EventQueue<V1Pod>();
    watchAbort = await new Watch(server.kubeConfig).watch("/api/v1/namespaces/k/pods",
      { resourceVersion: pod.metadata!.resourceVersion!, fieldSelector: "metadata.name=web" }, (_type, obj: V1Pod) => events.push(obj), () => {});
    const running = await server.kubelet("node-a", { hostIP: "127.0.0.1" }).run("k", "web", ["10.9.0.7", "fd00::7"]);

    const bound = await events.next();
    assert.equal(bound.spec?.nodeName, "node-a");
    assert.equal(bound.status?.phase, "Pending");
    assert.deepEqual(bound.status?.conditions?.map((c) => [c.type, c.status]), [["PodScheduled", "True"]]);
    const started = await events.next();
    assert.equal(started.status?.phase, "Running");
    assert.equal(started.status?.podIP, "10.9.0.7");
    assert.deepEqual(started.status?.podIPs, [{ ip: "10.9.0.7" }, { ip: "fd00::7" }]);
    assert.equal(started.status?.hostIP, "127.0.0.1");
    assert.ok(started.status?.conditions?.some((c) => c.type === "Ready" && c.status === "True"));
    assert.equal(running.metadata?.resourceVersion, started.metadata?.resourceVersion);
  });

  it("draws IPs from its node's pod CIDR when none are given, never twice", async () => {
    const kubelet = server.kubelet("node-b", { podCidr: "10.20.30.0/24" });
    await createPod("auto-1");
    await createPod("auto-2");
    assert.equal((await kubelet.run("k", "auto-1")).status?.podIP, "10.20.30.2");
    assert.equal(server.kubelet("node-b"), kubelet, "one kubelet per node, so one IP allocator per node");
    assert.equal((await server.kubelet("node-b").run("k", "auto-2")).status?.podIP, "10.20.30.3");
    assert.throws(() => server.kubelet("node-b", { podCidr: "10.99.0.0/24" }), /already exists/);
  });

  it("refuses to bind a pod twice (409) and to run a pod bound to another node", async () => {
    await createPod("taken");
    await server.kubelet("node-a").bind("k", "taken");
    const status = await rejectionStatus(server.kubelet("node-b").bind("k", "taken"));
    assert.equal(status.code, 409);
    assert.equal(status.message, 'Operation cannot be fulfilled on pods "taken": pod taken is already assigned to node "node-a"');
    await assert.rejects(server.kubelet("node-b").run("k", "taken"), /kubelet node-b: pod k\/taken is bound to node node-a/);
  });

  it("finishes pods as Succeeded or Failed, keeping their IPs, so phase selectors move them", async () => {
    const kubelet = server.kubelet("node-c");
    await createPod("job");
    await kubelet.run("k", "job", ["10.9.0.8"]);
    const done = await kubelet.finish("k", "job", "Succeeded");
    assert.equal(done.status?.phase, "Succeeded");
    assert.equal(done.status?.podIP, "10.9.0.8");
    const running = await core.listNamespacedPod({ namespace: "k", fieldSelector: "spec.nodeName=node-c,status.phase=Running" });
    assert.deepEqual(running.items, []);
    await createPod("crash");
    await kubelet.run("k", "crash");
    assert.equal((await kubelet.finish("k", "crash", "Failed")).status?.phase, "Failed");
  });

  it("changes only status through pods/status, with resourceVersion preconditions", async () => {
    const pod = await createPod("status-only");
    const patched = await core.patchNamespacedPodStatus({
      namespace: "k", name: "status-only", body: { metadata: { labels: { sneaky: "yes" } }, spec: { nodeName: "x" }, status: { phase: "Running" } },
    }, setHeaderOptions("Content-Type", PatchStrategy.MergePatch));
    assert.equal(patched.status?.phase, "Running");
    assert.equal(patched.metadata?.labels, undefined);
    assert.equal(patched.spec?.nodeName, undefined);
    const stale = await rejectionStatus(core.replaceNamespacedPodStatus({ namespace: "k", name: "status-only", body: { ...pod, status: { phase: "Failed" } } }));
    assert.equal(stale.reason, "Conflict");
  });
});
