// The loader DaemonSet's pod, run as the manifest declares it (kernel test, root):
// its containers' exact commands, with exactly their capabilities (BPF, NET_ADMIN),
// in a mount namespace laid out from its volumes (bpffs at /sys/fs/bpf, a cgroup tree
// read-only at /sys/fs/cgroup, /run/meshlane in memory, read-only root filesystem),
// against the stand-in API server through a proxy that records each request for the
// RBAC check. Its node's cgroup tree is a scratch cgroup holding kubepods/ and one
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
import { start, type StandIn } from "../kube/apiserver/index.js";
import { find, loadManifest } from "./manifest.js";
import { PodSandbox, RUN_ID } from "./pod-sandbox.js";
import { allowedBy, grantsFor } from "./rbac.js";
import { startRecordingProxy, type RecordingProxy } from "./recording-proxy.js";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const objects = loadManifest();
const podSpec = find(objects, "DaemonSet", "meshlane-loader").spec!.template.spec!;
const attach = podSpec.initContainers!.find((c) => c.name === "attach")!;
const loader = podSpec.containers.find((c) => c.name === "loader")!;
const NODE = "node-a";
const POD_UID = randomUUID();

describe("loader DaemonSet pod, run as the manifest says", { timeout: 180_000 }, () => {
  let api: StandIn;
  let proxy: RecordingProxy;
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

    api = await start({ tls: false });
    proxy = await startRecordingProxy(api.url);
    core = api.kubeConfig.makeApiClient(CoreV1Api);
    await core.createNamespace({ body: { metadata: { name: SYSTEM_NAMESPACE } } });
    const registration: Registration = { version: REGISTRATION_VERSION, namespace: "shop", name: "web-1", uid: POD_UID, ips: ["10.244.1.5"], interception: defaultInterception() };
    await core.createNamespacedConfigMap({ namespace: REGISTRY_NAMESPACE, body: registrationObject(NODE, POD_UID, JSON.stringify(registration)) });

    work = mkdtempSync(join(tmpdir(), `${RUN_ID}-loader-pod-`));
    writeFileSync(join(work, "kubeconfig"), proxy.kubeConfigText);
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
    await proxy?.close();
    await api?.stop();
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

  it("every request the loader made is granted to its service account, and it used every grant", () => {
    const grants = grantsFor(objects, { namespace: SYSTEM_NAMESPACE, name: podSpec.serviceAccountName! });
    assert.ok(proxy.requests.length > 0);
    for (const request of proxy.requests) assert.ok(allowedBy(grants, request), `not granted: ${JSON.stringify(request)}`);
    // Discovery paths, which every authenticated client may read.
    for (const path of proxy.nonResource) assert.match(path, /^\/(api|apis|version|openapi)(\/|$)/);
    const used = new Set(proxy.requests.map((r) => `${r.resource} ${r.verb}`));
    for (const g of grants) for (const resource of g.rule.resources!) for (const verb of g.rule.verbs) assert.ok(used.has(`${resource} ${verb}`), `${resource} ${verb} is granted but never used`);
  });
});
