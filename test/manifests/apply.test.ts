// manifests/all-in-one.yaml applied to a real kube-apiserver with kubectl: server-side
// dry-run and strict field validation first, then the real apply of every object; the
// ServiceAccounts' real tokens against the API server's RBAC; and the locked-markings
// ValidatingAdmissionPolicy against real pod updates.

import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { AuthorizationV1Api, CoreV1Api, PatchStrategy, setHeaderOptions, Watch, type KubeConfig } from "@kubernetes/client-node";
import { stringify } from "yaml";
import { ANNOTATION_INTERCEPTION, ANNOTATION_STATUS, SYSTEM_NAMESPACE } from "../../registry/names.js";
import { registrationObjectName } from "../../registry/configmap.js";
import { until } from "../../lab/until.js";
import { ControlPlane, Kubelet, statusOf, type Identity } from "../../lab/controlplane/index.js";
import { find, loadManifest, MANIFEST_PATH } from "./manifest.js";

const objects = loadManifest();
const WEBHOOK_SA = find(objects, "Deployment", "meshlane-webhook").spec!.template.spec!.serviceAccountName!;
const LOADER_SA = find(objects, "DaemonSet", "meshlane-loader").spec!.template.spec!.serviceAccountName!;
const MWC = find(objects, "MutatingWebhookConfiguration", "meshlane-webhook").metadata!.name!;
const CERT_SECRET = find(objects, "Secret", "meshlane-webhook-certs").metadata!.name!;

interface Access {
  verb: string;
  resource: string;
  group?: string;
  namespace?: string;
  name?: string;
  subresource?: string;
}
const show = (a: Access) => `${a.verb} ${a.group ? `${a.group}/` : ""}${a.resource}${a.subresource ? `/${a.subresource}` : ""}${a.namespace ? ` in ${a.namespace}` : ""}${a.name ? ` named ${a.name}` : ""}`;

/**
 * What each component does against the API, and nothing else may be granted. The
 * registrar's list changes with the registry layout (docs/registry.md); keep it the
 * registrar's real calls.
 */
const NEEDS: Record<string, Access[]> = {
  [WEBHOOK_SA]: [
    { verb: "list", resource: "pods" },
    { verb: "watch", resource: "pods" },
    { verb: "get", group: "admissionregistration.k8s.io", resource: "mutatingwebhookconfigurations", name: MWC },
    { verb: "patch", group: "admissionregistration.k8s.io", resource: "mutatingwebhookconfigurations", name: MWC },
    { verb: "list", resource: "configmaps", namespace: SYSTEM_NAMESPACE },
    { verb: "create", resource: "configmaps", namespace: SYSTEM_NAMESPACE },
    { verb: "patch", resource: "configmaps", namespace: SYSTEM_NAMESPACE, name: registrationObjectName("0f6c-uid") },
    { verb: "delete", resource: "configmaps", namespace: SYSTEM_NAMESPACE, name: registrationObjectName("0f6c-uid") },
    { verb: "get", resource: "secrets", namespace: SYSTEM_NAMESPACE, name: CERT_SECRET },
    { verb: "update", resource: "secrets", namespace: SYSTEM_NAMESPACE, name: CERT_SECRET },
  ],
  [LOADER_SA]: [
    { verb: "list", resource: "configmaps", namespace: SYSTEM_NAMESPACE },
    { verb: "watch", resource: "configmaps", namespace: SYSTEM_NAMESPACE },
  ],
};
/** Near misses of each need, each of which must be refused. */
const REFUSED: Record<string, Access[]> = {
  [WEBHOOK_SA]: [
    { verb: "get", resource: "pods", namespace: "shop", name: "web" },
    { verb: "patch", resource: "pods", namespace: "shop", name: "web" },
    { verb: "update", resource: "pods", subresource: "status", namespace: "shop", name: "web" },
    { verb: "patch", group: "admissionregistration.k8s.io", resource: "mutatingwebhookconfigurations", name: "istio-sidecar-injector" },
    { verb: "list", resource: "configmaps", namespace: "default" },
    { verb: "list", resource: "secrets", namespace: SYSTEM_NAMESPACE },
    { verb: "get", resource: "secrets", namespace: SYSTEM_NAMESPACE, name: "other" },
    { verb: "create", resource: "secrets", namespace: SYSTEM_NAMESPACE },
    { verb: "update", group: "admissionregistration.k8s.io", resource: "validatingadmissionpolicies", name: "meshlane-locked-markings" },
  ],
  [LOADER_SA]: [
    { verb: "create", resource: "configmaps", namespace: SYSTEM_NAMESPACE },
    { verb: "patch", resource: "configmaps", namespace: SYSTEM_NAMESPACE, name: registrationObjectName("0f6c-uid") },
    { verb: "delete", resource: "configmaps", namespace: SYSTEM_NAMESPACE, name: registrationObjectName("0f6c-uid") },
    { verb: "list", resource: "configmaps", namespace: "default" },
    { verb: "list", resource: "pods" },
    { verb: "get", resource: "pods", namespace: "shop", name: "web" },
    { verb: "get", resource: "secrets", namespace: SYSTEM_NAMESPACE, name: CERT_SECRET },
  ],
};

let cp: ControlPlane;
before(async () => {
  cp = await ControlPlane.start();
});
after(() => cp?.stop());


/** The API server's own RBAC+Node decision for `user` (a SubjectAccessReview, as `kubectl auth can-i --as` asks). */
async function allowed(user: string, a: Access): Promise<boolean> {
  const [, , namespace, name] = user.split(":");
  const review = await cp.admin.kubeConfig.makeApiClient(AuthorizationV1Api).createSubjectAccessReview({
    body: {
      spec: {
        user,
        groups: ["system:serviceaccounts", `system:serviceaccounts:${namespace}`, "system:authenticated"],
        resourceAttributes: { verb: a.verb, group: a.group ?? "", resource: a.resource, subresource: a.subresource, namespace: a.namespace, name: a.name },
      },
    },
  });
  assert.ok(name);
  return review.status!.allowed;
}

describe("kubectl apply of manifests/all-in-one.yaml", () => {
  it("holds the objects a cluster needs, each once", () => {
    const kinds = objects.map((o) => `${o.kind}/${o.metadata.name}`);
    assert.equal(new Set(kinds).size, kinds.length, `duplicates in ${kinds.join(", ")}`);
    for (const kind of ["Namespace", "ServiceAccount", "ClusterRole", "Role", "RoleBinding", "Secret", "Deployment", "PodDisruptionBudget", "Service",
      "MutatingWebhookConfiguration", "ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding", "DaemonSet"]) {
      assert.ok(objects.some((o) => o.kind === kind), `no ${kind}`);
    }
  });

  it("passes server-side dry-run with strict field validation", async () => {
    // A dry-run creates nothing, so the namespaced objects need their Namespace first.
    await cp.kubectl(["apply", "-f", "-"], { input: stringify(find(objects, "Namespace", SYSTEM_NAMESPACE)) });
    const out = await cp.kubectl(["apply", "--dry-run=server", "--validate=strict", "-f", MANIFEST_PATH]);
    assert.equal(out.trim().split("\n").filter((l) => l.endsWith("(server dry run)")).length, objects.length, out);
  });

  it("the API server refuses a misspelt field, so that pass means something", async () => {
    const daemonSet = structuredClone(find(objects, "DaemonSet", "meshlane-loader")) as any;
    daemonSet.spec.template.spec.containers[0].securityContext.readOnlyRootFileSystem = true;
    await assert.rejects(cp.kubectl(["apply", "--dry-run=server", "--validate=strict", "-f", "-"], { input: stringify(daemonSet) }), /unknown field "spec.template.spec.containers\[0\].securityContext.readOnlyRootFileSystem"/);
  });

  it("creates every object of the manifest", async () => {
    await cp.kubectl(["apply", "-f", MANIFEST_PATH]);
    for (const o of objects) {
      const args = ["get", `${o.kind.toLowerCase()}.${o.apiVersion.includes("/") ? o.apiVersion.split("/")[0] : ""}`.replace(/\.$/, ""), o.metadata.name, "-o", "name"];
      if (o.metadata.namespace) args.push("-n", o.metadata.namespace);
      assert.notEqual((await cp.kubectl(args)).trim(), "", `${o.kind} ${o.metadata.name}`);
    }
  });
});

describe("the manifest's ServiceAccounts, with their own tokens", () => {
  let loader: Identity;
  let webhook: Identity;
  before(async () => {
    await cp.createNamespace("shop");
    loader = await cp.serviceAccount(SYSTEM_NAMESPACE, LOADER_SA);
    webhook = await cp.serviceAccount(SYSTEM_NAMESPACE, WEBHOOK_SA);
  });

  for (const sa of [WEBHOOK_SA, LOADER_SA]) {
    it(`${sa}: allowed exactly what it needs`, async () => {
      const user = `system:serviceaccount:${SYSTEM_NAMESPACE}:${sa}`;
      for (const need of NEEDS[sa]!) assert.ok(await allowed(user, need), `${sa} may not ${show(need)}`);
      for (const miss of REFUSED[sa]!) assert.equal(await allowed(user, miss), false, `${sa} may ${show(miss)}`);
    });
  }

  it("the loader's token lists and watches ConfigMaps in meshlane-system, and is refused writes and pods", async () => {
    const core = loader.kubeConfig.makeApiClient(CoreV1Api);
    assert.equal(await statusOf(core.listNamespacedConfigMap({ namespace: SYSTEM_NAMESPACE })), 200);
    const seen = await watchOnce(loader.kubeConfig, `/api/v1/namespaces/${SYSTEM_NAMESPACE}/configmaps`, async () => {
      await cp.admin.kubeConfig.makeApiClient(CoreV1Api).createNamespacedConfigMap({ namespace: SYSTEM_NAMESPACE, body: { metadata: { name: registrationObjectName("0f6c-uid") } } });
    });
    assert.equal(seen, registrationObjectName("0f6c-uid"));
    const body = { metadata: { name: "x" } };
    assert.equal(await statusOf(core.createNamespacedConfigMap({ namespace: SYSTEM_NAMESPACE, body })), 403);
    assert.equal(await statusOf(core.patchNamespacedConfigMap({ namespace: SYSTEM_NAMESPACE, name: registrationObjectName("0f6c-uid"), body: { data: { a: "b" } } }, setHeaderOptions("Content-Type", PatchStrategy.MergePatch))), 403);
    assert.equal(await statusOf(core.listPodForAllNamespaces()), 403);
    assert.equal(await statusOf(core.listNamespacedConfigMap({ namespace: "shop" })), 403);
  });

  it("the webhook's token lists pods everywhere and patches a node ConfigMap, and may not read a pod by name", async () => {
    const core = webhook.kubeConfig.makeApiClient(CoreV1Api);
    assert.equal(await statusOf(core.listPodForAllNamespaces()), 200);
    const patch = core.patchNamespacedConfigMap({ namespace: SYSTEM_NAMESPACE, name: registrationObjectName("0f6c-uid"), body: { data: { uid: "{}" } } }, setHeaderOptions("Content-Type", PatchStrategy.MergePatch));
    assert.equal(await statusOf(patch), 200);
    assert.equal(await statusOf(core.readNamespacedSecret({ namespace: SYSTEM_NAMESPACE, name: CERT_SECRET })), 200);
    assert.equal(await statusOf(core.listNamespacedSecret({ namespace: SYSTEM_NAMESPACE })), 403);
  });
});

describe("locked markings (ValidatingAdmissionPolicy meshlane-locked-markings)", () => {
  const POD = "marked";
  const marked = { [ANNOTATION_STATUS]: "accelerated", [ANNOTATION_INTERCEPTION]: "{}" };
  const annotate = (as: Identity | undefined, annotations: Record<string, string | null>, extra: string[] = []) =>
    cp.kubectl(["annotate", "pod", POD, "-n", "shop", "--overwrite", ...extra, ...Object.entries(annotations).map(([k, v]) => (v === null ? `${k}-` : `${k}=${v}`))], as ? { as } : {});

  before(async () => {
    // The policy's binding is read by the API server from its informer: wait until it refuses.
    await cp.admin.kubeConfig.makeApiClient(CoreV1Api).createNamespacedPod({
      namespace: "shop",
      body: { metadata: { name: POD, annotations: marked }, spec: { containers: [{ name: "app", image: "registry.local/app:1" }] } },
    });
    await until("the policy is in force", async () => (await annotate(undefined, { [ANNOTATION_STATUS]: "skipped" }).then(() => false, () => true)), 20_000, 200);
  });

  it("refuses the cluster admin changing, adding or removing a meshlane.io annotation after admission", async () => {
    await assert.rejects(annotate(undefined, { [ANNOTATION_STATUS]: "skipped" }), /meshlane-locked-markings.*meshlane\.io\/\* annotations are set by meshlane's webhook.*by meshlane-lab-admin/s);
    await assert.rejects(annotate(undefined, { "meshlane.io/redirect": "all" }), /meshlane-locked-markings/);
    await assert.rejects(annotate(undefined, { [ANNOTATION_INTERCEPTION]: null }), /meshlane-locked-markings/);
    const pod = await cp.admin.kubeConfig.makeApiClient(CoreV1Api).readNamespacedPod({ namespace: "shop", name: POD });
    assert.deepEqual(Object.fromEntries(Object.entries(pod.metadata!.annotations!).filter(([k]) => k.startsWith("meshlane.io/"))), marked);
  });

  it("lets other annotations, labels and the kubelet's status through", async () => {
    await annotate(undefined, { "example.com/owner": "team-a" });
    await cp.kubectl(["label", "pod", POD, "-n", "shop", "tier=web"]);
    const running = await new Kubelet("node-a", { node: cp.node("node-a"), scheduler: cp.admin }).run("shop", POD, ["10.244.0.9"]);
    assert.equal(running.status!.podIP, "10.244.0.9");
  });

  it("lets meshlane's own identity change them", async () => {
    // The webhook's ServiceAccount has no RBAC right to update pods; impersonating it with
    // system:masters keeps RBAC out of the way, so the policy alone decides.
    const asMeshlane = [`--as=system:serviceaccount:${SYSTEM_NAMESPACE}:${WEBHOOK_SA}`, "--as-group=system:masters"];
    await annotate(undefined, { [ANNOTATION_STATUS]: "skipped" }, asMeshlane);
    const pod = await cp.admin.kubeConfig.makeApiClient(CoreV1Api).readNamespacedPod({ namespace: "shop", name: POD });
    assert.equal(pod.metadata!.annotations![ANNOTATION_STATUS], "skipped");
  });
});

/** Starts a watch as `kubeConfig`, runs `cause`, and resolves with the name in the first ADDED event. */
async function watchOnce(kubeConfig: KubeConfig, path: string, cause: () => Promise<void>): Promise<string> {
  let stop: (() => void) | undefined;
  const added = new Promise<string>((resolve, reject) => {
    void new Watch(kubeConfig).watch(path, {}, (type, obj: { metadata: { name: string } }) => {
      if (type === "ADDED") resolve(obj.metadata.name);
    }, (err) => err && reject(err)).then((req) => (stop = () => req.abort()), reject);
  });
  await until("the watch is open", () => stop !== undefined, 10_000);
  await cause();
  try {
    return await added;
  } finally {
    stop?.();
  }
}
