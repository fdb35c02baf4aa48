// `meshlane-webhook serve --registrar`: the flags, and the process registering a
// pod of the real kube-apiserver through a kubeconfig file holding the webhook's own
// ServiceAccount token, with the registrar's metrics on the webhook's /metrics.

import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CoreV1Api } from "@kubernetes/client-node";
import { listRegistrations } from "../../../registry/configmap.js";
import { SYSTEM_NAMESPACE } from "../../../registry/names.js";
import { parseServeArgs, UsageError, type ServeOptions } from "../../../webhook/options.js";
import { ControlPlane, Kubelet } from "../../../lab/controlplane/index.js";
import { HttpsClient } from "../helpers/https.js";
import { until } from "../../../lab/until.js";
import { injectedPod, markedPod } from "../../../lab/marked-pod.js";

const CLI = new URL("../../../webhook/cli.ts", import.meta.url).pathname;
const serve = (args: string[]): ServeOptions => (parseServeArgs(["serve", ...args]) as { options: ServeOptions }).options;

test("registrar flags: off by default, resync 1m, --registrar-resync only with --registrar", () => {
  assert.equal(serve([]).registrar, undefined);
  assert.deepEqual(serve(["--registrar"]).registrar, { resyncMs: 60_000 });
  assert.deepEqual(serve(["--registrar", "--registrar-resync", "5s", "--kubeconfig", "/k"]), { ...serve(["--kubeconfig", "/k"]), registrar: { resyncMs: 5000 } });
  assert.throws(() => serve(["--registrar-resync", "5s"]), UsageError);
  assert.throws(() => serve(["--registrar", "--registrar-resync", "soon"]), /--registrar-resync: "soon" is not a duration/);
});

test("serve --registrar registers a marked pod of the cluster named by --kubeconfig and counts the write on /metrics", { timeout: 60_000 }, async () => {
  const cp = await ControlPlane.start();
  const dir = mkdtempSync(join(tmpdir(), "meshlane-registrar-cli-"));
  const core = cp.admin.kubeConfig.makeApiClient(CoreV1Api);
  await cp.kubectl(["apply", "--server-side", "-f", new URL("../../../manifests/all-in-one.yaml", import.meta.url).pathname]);
  await cp.createNamespace("shop");
  const kubeconfig = join(dir, "kubeconfig");
  writeFileSync(kubeconfig, (await cp.serviceAccount(SYSTEM_NAMESPACE, "meshlane-webhook")).kubeConfig.exportConfig());
  const child = spawn(process.execPath, ["--import", "tsx", CLI, "serve", "--self-signed", "--cert-dir", dir, "--port", "0", "--host", "127.0.0.1",
    "--san", "localhost", "--audit-log", join(dir, "audit.log"), "--registrar", "--registrar-resync", "2s", "--kubeconfig", kubeconfig], { stdio: ["ignore", "ignore", "pipe"] });
  let stderr = "";
  child.stderr.on("data", (d) => (stderr += d));
  try {
    await until("the registrar is running", () => stderr.includes("registrar running"), 60_000).catch((e: Error) => assert.fail(`${e.message}: ${stderr.slice(-3000)}`));
    const pod = await core.createNamespacedPod({ namespace: "shop", body: markedPod(injectedPod("web", "shop")) });
    await new Kubelet("node-a", { node: cp.node("node-a"), scheduler: cp.admin }).run("shop", "web", ["10.0.0.5"]);
    const uid = pod.metadata!.uid!;
    await until("the pod is registered", async () => (await listRegistrations(core, "node-a")).some((r) => r.uid === uid));
    // The object can be seen before the registrar's line about it has crossed the pipe.
    const writeLine = new RegExp(`"msg":"registry write".*${uid}|${uid}.*"msg":"registry write"`);
    await until("the registrar logs the write", () => writeLine.test(stderr), 10_000).catch(() => assert.fail(`no log line for the write: ${stderr.slice(-3000)}`));
    const port = Number(/"port":(\d+).*listening/.exec(stderr)![1]);
    const client = new HttpsClient(port, readFileSync(join(dir, "ca.crt"), "utf8"));
    const metrics = (await client.send("GET", "/metrics")).body;
    client.close();
    assert.match(metrics, /meshlane_registrar_writes_total\{op="create",result="ok"\} 1/);
    assert.match(metrics, /meshlane_webhook_reviews_total|meshlane_webhook_process_resident_memory_bytes/, "one registry for both halves");
    child.kill("SIGTERM");
    const [code] = await once(child, "exit");
    assert.equal(code, 0, stderr);
    assert.match(stderr, /"msg":"registrar stopped"/);
  } finally {
    child.kill("SIGKILL");
    await cp.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});
