// loader/kube-api.ts: which credentials the node agent uses, read from kubeconfig
// files the way kubectl reads them, and the errors when there are none.

import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { endpointOfKubeconfigs, loadKubeEndpoint } from "../../loader/kube-api.js";

const kubeconfig = (server: string, user: Record<string, unknown>, current = "x") => `
apiVersion: v1
kind: Config
current-context: ${current}
clusters:
  - name: c
    cluster: { server: "${server}", certificate-authority: ca.pem }
users:
  - name: u
    user: ${JSON.stringify(user)}
contexts:
  - name: x
    context: { cluster: c, user: u }
`;

test("a kubeconfig file wins, then $KUBECONFIG, then the service account; none is an error", () => {
  const dir = mkdtempSync(join(tmpdir(), "meshlane-kube-api-"));
  try {
    writeFileSync(join(dir, "ca.pem"), "CA");
    writeFileSync(join(dir, "token"), "from-file\n");
    writeFileSync(join(dir, "flag.yaml"), kubeconfig("https://flag.example:6443/", { token: "t1" }));
    writeFileSync(join(dir, "env.yaml"), kubeconfig("https://env.example:6443", { tokenFile: "token" }));
    const flag = loadKubeEndpoint(join(dir, "flag.yaml"), { KUBECONFIG: join(dir, "env.yaml") });
    assert.equal(flag.server, "https://flag.example:6443");
    assert.equal(flag.token?.(), "t1");
    assert.equal(flag.ca?.toString(), "CA", "certificate-authority is relative to the kubeconfig's directory");
    const env = loadKubeEndpoint(undefined, { KUBECONFIG: `${join(dir, "env.yaml")}:${join(dir, "flag.yaml")}`, KUBERNETES_SERVICE_HOST: "10.96.0.1" });
    assert.equal(env.server, "https://env.example:6443", "the first file to set a name wins");
    assert.equal(env.token?.(), "from-file");
    assert.throws(() => loadKubeEndpoint(undefined, { KUBERNETES_SERVICE_HOST: "10.96.0.1" }), /loading the Kubernetes configuration: ENOENT.*serviceaccount\/ca\.crt/);
    assert.throws(() => loadKubeEndpoint(undefined, {}), /no credentials: pass --kubeconfig FILE, set KUBECONFIG, or run in a pod with a service account/);
    assert.throws(() => loadKubeEndpoint(join(dir, "missing.yaml"), {}), /loading the Kubernetes configuration from .*missing\.yaml: ENOENT/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("client certificates inline, and what a node agent refuses", () => {
  const b64 = (s: string) => Buffer.from(s).toString("base64");
  const ep = endpointOfKubeconfigs([{ text: kubeconfig("https://k:6443", { "client-certificate-data": b64("CERT"), "client-key-data": b64("KEY") }).replace("certificate-authority: ca.pem", `certificate-authority-data: ${b64("CA")}`), dir: "/" }]);
  assert.deepEqual([ep.ca?.toString(), ep.cert?.toString(), ep.key?.toString(), ep.token], ["CA", "CERT", "KEY", undefined]);
  assert.throws(() => endpointOfKubeconfigs([{ text: kubeconfig("https://k", { exec: { command: "aws" } }), dir: "/" }]), /user u logs in through an exec plugin, which meshlane-loader does not run/);
  assert.throws(() => endpointOfKubeconfigs([{ text: kubeconfig("https://k", {}, "nope"), dir: "/" }]), /has no current cluster \(current context: nope\)/);
  assert.throws(() => endpointOfKubeconfigs([{ text: "kind: Config", dir: "/" }]), /no current-context/);
});
