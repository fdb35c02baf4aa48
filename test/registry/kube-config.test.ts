// registry/kube-config.ts: which credentials meshlane's processes use, and that
// finding none is an error that says what to do.

import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { KubeConfig } from "@kubernetes/client-node";
import { loadKubeConfig } from "../../registry/kube-config.js";

function withEnv(env: Record<string, string | undefined>, body: () => void): void {
  const saved = Object.fromEntries(Object.keys(env).map((k) => [k, process.env[k]]));
  for (const [k, v] of Object.entries(env)) v === undefined ? delete process.env[k] : (process.env[k] = v);
  try {
    body();
  } finally {
    for (const [k, v] of Object.entries(saved)) v === undefined ? delete process.env[k] : (process.env[k] = v);
  }
}

test("a kubeconfig file wins, then $KUBECONFIG, then the pod's service account; none is an error", () => {
  const dir = mkdtempSync(join(tmpdir(), "meshlane-kubeconfig-"));
  try {
    const file = (server: string) => {
      const kc = new KubeConfig();
      kc.loadFromOptions({ clusters: [{ name: "c", server }], users: [{ name: "u", token: "t" }], contexts: [{ name: "x", cluster: "c", user: "u" }], currentContext: "x" });
      const path = join(dir, `${new URL(server).hostname}.yaml`);
      writeFileSync(path, kc.exportConfig());
      return path;
    };
    const flag = file("https://flag.example:6443");
    const env = file("https://env.example:6443");
    withEnv({ KUBECONFIG: env, KUBERNETES_SERVICE_HOST: "10.96.0.1", KUBERNETES_SERVICE_PORT: "443" }, () => {
      assert.equal(loadKubeConfig(flag).getCurrentCluster()?.server, "https://flag.example:6443");
      assert.equal(loadKubeConfig().getCurrentCluster()?.server, "https://env.example:6443");
    });
    withEnv({ KUBECONFIG: undefined, KUBERNETES_SERVICE_HOST: "10.96.0.1", KUBERNETES_SERVICE_PORT: "443" }, () => {
      assert.equal(loadKubeConfig().getCurrentCluster()?.server, "https://10.96.0.1:443");
    });
    withEnv({ KUBECONFIG: undefined, KUBERNETES_SERVICE_HOST: undefined }, () => {
      assert.throws(() => loadKubeConfig(), /no credentials: pass --kubeconfig FILE, set KUBECONFIG, or run in a pod/);
    });
    assert.throws(() => loadKubeConfig(join(dir, "missing.yaml")), /loading the Kubernetes configuration from .*missing\.yaml: .*ENOENT/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
