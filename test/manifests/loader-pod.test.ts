// The loader DaemonSet's pod, run as the manifest declares it (kernel test, root):
// its containers' exact commands, with exactly their capabilities (BPF, NET_ADMIN),
// in a mount namespace laid out from its volumes (bpffs at /sys/fs/bpf, a cgroup tree
// read-only at /sys/fs/cgroup, /run/meshlane in memory, read-only root filesystem),
// against a real kube-apiserver with the manifest applied, with its ServiceAccount's
// own token; the API server's audit log shows what it asked for. Its node's cgroup tree is a scratch cgroup holding kubepods/ and one
// pod, and its bpffs a fresh instance, so nothing of the machine is touched.

import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { execFileSync, type ChildProcess } from "node:child_process";
import { mkdirSync, mkdtempSync, rmdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { CoreV1Api } from "@kubernetes/client-node";
import { findCgroup2Mount } from "../../loader/cgroup.js";
import { defaultInterception, REGISTRATION_VERSION, type Registration } from "../../registry/document.js";
import { SYSTEM_NAMESPACE } from "../../registry/names.js";
import { registrationObject, registrationObjectName, REGISTRY_NAMESPACE } from "../../registry/configmap.js";
import { until } from "../../lab/until.js";
import { ControlPlane, type Identity } from "../../lab/controlplane/index.js";
import { find, loadManifest, MANIFEST_PATH } from "./manifest.js";
import { PodSandbox, RUN_ID } from "./pod-sandbox.js";
import { assertGrantsMatchUse, grantsFor } from "./rbac.js";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const objects = loadManifest();
const podSpec = find(objects, "DaemonSet", "meshlane-loader").spec!.template.spec!;
const attach = podSpec.initContainers!.find((c) => c.name === "attach")!;
const loader = podSpec.containers.find((c) => c.name === "loader")!;
const NODE = "node-a";
const POD_UID = randomUUID();

describe("loader DaemonSet pod, run as the manifest says", { timeout: 180_000 }, () => {
  let cp: ControlPlane;
  let identity: Identity;
  let core: CoreV1Api;
  let sandbox: PodSandbox;
  let scratch: string;
  let podCgroup: string;
  let work: string;
  let main: ChildProcess | undefined;
  const probe = loader.readinessProbe!.httpGet!;
  const probePort = loader.ports!.find((p) => p.name === probe.port)!.containerPort;
  const probeUrl = (path: string): string => `http://127.0.0.1:${probePort}${path}`;

  before(async () => {
    const cg2 = findCgroup2Mount();
    assert.ok(cg2, "cgroup2 is mounted");
    scratch = join(cg2, `meshlane-test-${RUN_ID}`);
    podCgroup = join(scratch, "kubepods", "besteffort", `pod${POD_UID}`);
    mkdirSync(podCgroup, { recursive: true });

    cp = await ControlPlane.start({ audit: true });
    await cp.kubectl(["apply", "-f", MANIFEST_PATH]);
    core = cp.admin.kubeConfig.makeApiClient(CoreV1Api);
    identity = await cp.serviceAccount(SYSTEM_NAMESPACE, podSpec.serviceAccountName!);
    const registration: Registration = { version: REGISTRATION_VERSION, namespace: "shop", name: "web-1", uid: POD_UID, ips: ["10.244.1.5"], interception: defaultInterception() };
    await core.createNamespacedConfigMap({ namespace: REGISTRY_NAMESPACE, body: registrationObject(NODE, POD_UID, JSON.stringify(registration)) });

    work = mkdtempSync(join(tmpdir(), `${RUN_ID}-loader-pod-`));
    writeFileSync(join(work, "kubeconfig"), identity.kubeConfig.exportConfig());
    sandbox = await PodSandbox.start({
      containers: [attach, loader],
      volumes: podSpec.volumes!,
      podSecurityContext: podSpec.securityContext!,
      hostPaths: { "/sys/fs/bpf": "fresh-bpffs", "/sys/fs/cgroup": scratch },
      commands: { "meshlane-loader": [process.execPath, join(ROOT, "dist/loader/cli.js")] },
      fieldRefs: { "spec.nodeName": NODE },
      env: { KUBECONFIG: join(work, "kubeconfig") },
    });
  });

  after(async () => {
    if (main && main.exitCode === null && main.signalCode === null) main.kill("SIGKILL");
    await sandbox?.stop();
    for (const dir of [podCgroup, join(scratch, "kubepods", "besteffort"), join(scratch, "kubepods"), scratch]) {
      try {
        rmdirSync(dir);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== "ENOENT") throw e;
      }
    }
    await cp?.stop();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it("init container: attach finds kubepods under the mounted cgroup tree and attaches", () => {
    const r = sandbox.exec(attach, attach.command!);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /^attached to \/sys\/fs\/cgroup\/kubepods /m);
  });

  it(`main container: run --node $(NODE_NAME) becomes ready on ${probe.path}`, async () => {
    main = sandbox.spawn(loader, loader.command!);
    let log = "";
    main.stderr!.on("data", (d: Buffer) => (log += d.toString()));
    main.stdout!.on("data", (d: Buffer) => (log += d.toString()));
    await until(
      `${probeUrl(probe.path!)} answers 200 (loader output so far: ${log.slice(-2000)})`,
      async () => (await fetch(probeUrl(probe.path!)).catch(() => undefined))?.status === 200,
      30_000,
      200,
    );
  });

  it("kubectl exec … status: the registered pod is in the maps, with its cgroup", () => {
    const r = sandbox.exec(loader, ["meshlane-loader", "status", "--json"]);
    assert.equal(r.status, 0, r.stderr);
    const status = JSON.parse(r.stdout) as { attached: boolean; pods: { cgroupId: string; uid?: string; name?: string }[] };
    assert.equal(status.attached, true);
    assert.deepEqual(
      status.pods.map((p) => ({ uid: p.uid, name: p.name, cgroupId: p.cgroupId })),
      [{ uid: POD_UID, name: "web-1", cgroupId: statSync(podCgroup, { bigint: true }).ino.toString() }],
    );
  });

  it("metrics on the declared port", async () => {
    const res = await fetch(probeUrl("/metrics"));
    assert.equal(res.status, 200);
    assert.match(await res.text(), /^meshlane_pods\{/m);
  });

  it("a registry object deleted leaves the maps (the watch works)", async () => {
    await core.deleteNamespacedConfigMap({ name: registrationObjectName(POD_UID), namespace: REGISTRY_NAMESPACE });
    await until("the pod's entry is gone from the maps", () => {
      const r = sandbox.exec(loader, ["meshlane-loader", "status", "--json"]);
      return r.status === 0 && (JSON.parse(r.stdout) as { pods: unknown[] }).pods.length === 0;
    }, 20_000, 250);
  });

  it("preStop detach, then SIGTERM: nothing of meshlane is left on the pod cgroup root", async () => {
    const r = sandbox.exec(loader, loader.lifecycle!.preStop!.exec!.command!);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /^detached: /);
    const exited = new Promise<number | null>((resolve) => main!.once("exit", (code) => resolve(code)));
    main!.kill("SIGTERM");
    assert.equal(await exited, 0);
    assert.equal(execFileSync("bpftool", ["cgroup", "show", join(scratch, "kubepods")], { encoding: "utf8" }).trim(), "");
    const status = sandbox.exec(loader, ["meshlane-loader", "status"]);
    assert.notEqual(status.status, 0);
    assert.match(status.stderr, /meshlane is not attached/);
  });

  for (const cap of attach.securityContext!.capabilities!.add!) {
    it(`without ${cap}, attach fails`, () => {
      const fewer = structuredClone(attach);
      fewer.securityContext!.capabilities!.add = fewer.securityContext!.capabilities!.add!.filter((c) => c !== cap);
      const r = sandbox.exec(fewer, attach.command!);
      // A partial attempt may leave empty pin directories; the full set removes them.
      sandbox.exec(loader, ["meshlane-loader", "detach", "--drain-ms", "0"]);
      assert.notEqual(r.status, 0, `attach succeeded without ${cap}: ${r.stdout}`);
      assert.match(r.stderr, /Operation not permitted/);
    });
  }

  it("every request the loader made was granted to its service account, and it used every grant", () => {
    assertGrantsMatchUse(grantsFor(objects, { namespace: SYSTEM_NAMESPACE, name: podSpec.serviceAccountName! }), cp.auditEvents(identity.user), "the loader");
  });
});
