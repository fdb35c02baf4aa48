// The lab's control plane itself: real etcd and kube-apiserver, who each identity is
// to the API server, the kubelet helper going through the Node authorizer, a start-up
// failure that names the binary, and a stop that leaves nothing behind.

import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { connect } from "node:net";
import { AuthenticationV1Api, CoreV1Api, PatchStrategy, setHeaderOptions, VersionApi } from "@kubernetes/client-node";
import { ControlPlane, Kubelet, statusOf, type Identity } from "../../lab/controlplane/index.js";
import { kubeAssets } from "../../lab/controlplane/assets.js";
import { BinaryProcess } from "../../lab/controlplane/process.js";

let cp: ControlPlane;
before(async () => {
  cp = await ControlPlane.start();
});
after(() => cp?.stop());

async function whoAmI(identity: Identity): Promise<{ username?: string; groups?: string[] }> {
  const review = await identity.kubeConfig.makeApiClient(AuthenticationV1Api).createSelfSubjectReview({ body: { apiVersion: "authentication.k8s.io/v1", kind: "SelfSubjectReview" } });
  return review.status?.userInfo ?? {};
}


test("the API server is the pinned kube-apiserver, and kubectl built with it reaches it", async () => {
  const version = await cp.admin.kubeConfig.makeApiClient(VersionApi).getCode();
  assert.equal(version.gitVersion, "v1.34.4");
  const out = await cp.kubectl(["get", "namespace", "default", "-o", "jsonpath={.metadata.name}"]);
  assert.equal(out, "default");
});

test("identities: admin in system:masters, a node in system:nodes, a ServiceAccount by TokenRequest", async () => {
  assert.ok((await whoAmI(cp.admin)).groups?.includes("system:masters"));
  const node = await whoAmI(cp.node("node-a"));
  assert.equal(node.username, "system:node:node-a");
  assert.ok(node.groups?.includes("system:nodes"));

  await cp.createNamespace("team");
  const sa = await cp.serviceAccount("team", "default");
  assert.equal((await whoAmI(sa)).username, "system:serviceaccount:team:default");
  assert.equal(await statusOf(sa.kubeConfig.makeApiClient(CoreV1Api).listNamespacedPod({ namespace: "team" })), 403, "RBAC grants a fresh ServiceAccount nothing");
});

test("the kubelet helper binds a pod and sets its IPs as its node; another node may not touch it", async () => {
  const core = cp.admin.kubeConfig.makeApiClient(CoreV1Api);
  await core.createNamespacedPod({ namespace: "team", body: { metadata: { name: "web" }, spec: { containers: [{ name: "app", image: "registry.local/app:1" }] } } });
  const kubelet = new Kubelet("node-a", { node: cp.node("node-a"), scheduler: cp.admin });
  const running = await kubelet.run("team", "web", ["10.244.0.7"]);
  assert.equal(running.spec?.nodeName, "node-a");
  assert.deepEqual(running.status?.podIPs?.map((p) => p.ip), ["10.244.0.7"]);
  assert.equal(running.status?.phase, "Running");
  assert.equal((await core.readNode({ name: "node-a" })).metadata?.name, "node-a", "the kubelet registered its Node");

  const other = cp.node("node-b").kubeConfig.makeApiClient(CoreV1Api);
  const patch = other.patchNamespacedPodStatus({ namespace: "team", name: "web", body: { status: { podIP: "10.244.9.9" } } }, setHeaderOptions("Content-Type", PatchStrategy.MergePatch));
  assert.equal(await statusOf(patch), 403, "the Node authorizer refuses a pod bound to another node");
  assert.equal(await statusOf(other.createNode({ body: { metadata: { name: "node-a" } } })), 403, "NodeRestriction: a node creates only its own Node");
});

test("a binary that does not come up fails the start with its path and its last log lines", async () => {
  const etcd = BinaryProcess.spawn(kubeAssets().etcd, ["--no-such-flag"], process.env);
  await assert.rejects(etcd.waitReady(async () => false, 10_000), (e: Error) => {
    assert.match(e.message, /\/etcd exited with code \d+ while starting; its last log lines:\n/);
    assert.match(e.message, /no-such-flag/);
    return true;
  });
});

test("stop leaves no process, port or directory behind", async () => {
  const other = await ControlPlane.start();
  const port = Number(new URL(other.server).port);
  const pids = other.pids();
  assert.equal(pids.length, 2);
  await other.stop();
  for (const pid of pids) assert.throws(() => process.kill(pid, 0), /ESRCH/, `process ${pid} is gone`);
  assert.equal(existsSync(other.dir), false);
  const refused = await new Promise<boolean>((resolve) => {
    const s = connect(port, "127.0.0.1");
    s.on("connect", () => (s.destroy(), resolve(false)));
    s.on("error", () => resolve(true));
  });
  assert.ok(refused, `nothing listens on ${port} any more`);
});
