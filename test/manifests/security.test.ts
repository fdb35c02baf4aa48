// The security-relevant fields of manifests/all-in-one.yaml, as issue 5 asks for them:
// least-privilege RBAC, a locked-down webhook Deployment, the admission webhook's
// selectors and failure mode, and a loader DaemonSet with two capabilities and no
// more. Names come from registry/names.ts wherever the code has them.

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { V1Container, V1PodSpec, V1SecurityContext } from "@kubernetes/client-node";
import { DEFAULT_BPFFS } from "../../loader/pins.js";
import {
  NAMESPACE_LABEL,
  NAMESPACE_LABEL_VALUE,
  PART_OF_LABEL,
  PART_OF_VALUE,
  POD_OPT_OUT_KEY,
  SYSTEM_NAMESPACE,
} from "../../registry/names.js";
import { all, find, loadManifest } from "./manifest.js";
import { flatten, grantsFor } from "./rbac.js";

const objects = loadManifest();

/** A selector of matchLabels only (the manifest's are) selects these labels. */
function selects(selector: { matchLabels?: Record<string, string>; matchExpressions?: unknown[] } | undefined, labels: Record<string, string>): boolean {
  assert.equal(selector?.matchExpressions, undefined, "only matchLabels here");
  return Object.entries(selector?.matchLabels ?? {}).every(([k, v]) => labels[k] === v) && Object.keys(selector?.matchLabels ?? {}).length > 0;
}
const CLUSTER_SCOPED = new Set(["Namespace", "ClusterRole", "ClusterRoleBinding", "MutatingWebhookConfiguration", "ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"]);

const webhook = find(objects, "Deployment", "meshlane-webhook");
const webhookPod = webhook.spec!.template.spec!;
const loader = find(objects, "DaemonSet", "meshlane-loader");
const loaderPod = loader.spec!.template.spec!;
const mwc = find(objects, "MutatingWebhookConfiguration", "meshlane-webhook");
const hook = mwc.webhooks![0]!;

function argValue(args: string[], flag: string): string | undefined {
  const joined = args.find((a) => a.startsWith(`${flag}=`));
  if (joined) return joined.slice(flag.length + 1);
  const i = args.indexOf(flag);
  return i >= 0 ? args[i + 1] : undefined;
}
const webhookArgs = webhookPod.containers[0]!.args ?? [];

function containersOf(pod: V1PodSpec): V1Container[] {
  return [...(pod.initContainers ?? []), ...pod.containers];
}

describe("every object", () => {
  it(`is part of meshlane and, when namespaced, lives in ${SYSTEM_NAMESPACE}`, () => {
    for (const o of objects) {
      assert.equal(o.metadata.labels?.[PART_OF_LABEL], PART_OF_VALUE, `${o.kind} ${o.metadata.name}`);
      assert.equal(o.metadata.namespace, CLUSTER_SCOPED.has(o.kind) ? undefined : SYSTEM_NAMESPACE, `${o.kind} ${o.metadata.name}`);
    }
    assert.equal(find(objects, "Namespace", SYSTEM_NAMESPACE).metadata!.name, SYSTEM_NAMESPACE);
  });

  it("pods of meshlane never get an Istio sidecar", () => {
    assert.equal(find(objects, "Namespace", SYSTEM_NAMESPACE).metadata!.labels!["istio-injection"], "disabled");
    for (const pod of [webhook.spec!.template, loader.spec!.template]) assert.equal(pod.metadata!.annotations!["sidecar.istio.io/inject"], "false");
  });
});

describe("RBAC, least privilege", () => {
  const webhookSa = { namespace: SYSTEM_NAMESPACE, name: webhookPod.serviceAccountName! };
  const loaderSa = { namespace: SYSTEM_NAMESPACE, name: loaderPod.serviceAccountName! };

  it("each workload has its own service account", () => {
    assert.equal(webhookSa.name, "meshlane-webhook");
    assert.equal(loaderSa.name, "meshlane-loader");
    for (const sa of [webhookSa, loaderSa]) find(objects, "ServiceAccount", sa.name);
  });

  it("no wildcard, and no verb that grants more rights (escalate, bind, impersonate)", () => {
    for (const role of [...all(objects, "Role"), ...all(objects, "ClusterRole")]) {
      for (const rule of role.rules ?? []) {
        for (const list of [rule.apiGroups, rule.resources, rule.verbs, rule.resourceNames]) assert.ok(!list?.includes("*"), `${role.metadata!.name}: ${JSON.stringify(rule)}`);
        for (const verb of ["escalate", "bind", "impersonate"]) assert.ok(!rule.verbs.includes(verb), `${role.metadata!.name} grants ${verb}`);
      }
    }
  });

  it("the webhook: pods read cluster-wide, node ConfigMaps written in meshlane-system, its own Secret and webhook configuration by name", () => {
    const certSecret = argValue(webhookArgs, "--cert-secret");
    const webhookConfig = argValue(webhookArgs, "--webhook-config");
    assert.equal(webhookConfig, mwc.metadata!.name, "--webhook-config names the manifest's MutatingWebhookConfiguration");
    assert.deepEqual(flatten(grantsFor(objects, webhookSa)), [
      "(cluster) admissionregistration.k8s.io/mutatingwebhookconfigurations get [meshlane-webhook]",
      "(cluster) admissionregistration.k8s.io/mutatingwebhookconfigurations patch [meshlane-webhook]",
      "(cluster) core/pods list",
      "(cluster) core/pods watch",
      `${SYSTEM_NAMESPACE} core/configmaps create`,
      `${SYSTEM_NAMESPACE} core/configmaps delete`,
      `${SYSTEM_NAMESPACE} core/configmaps list`,
      `${SYSTEM_NAMESPACE} core/configmaps patch`,
      `${SYSTEM_NAMESPACE} core/secrets get [${certSecret}]`,
      `${SYSTEM_NAMESPACE} core/secrets update [${certSecret}]`,
    ]);
  });

  it("the certificate Secret exists beforehand (no create right needed), with no data key for kubectl apply to reset", () => {
    const secret = find(objects, "Secret", argValue(webhookArgs, "--cert-secret")!);
    assert.equal(secret.type, "Opaque", "a kubernetes.io/tls Secret would have to carry tls.crt and tls.key");
    assert.equal(secret.data, undefined);
    assert.equal(secret.stringData, undefined);
    assert.ok(webhookArgs.includes("--self-signed"), "the webhook issues the certificates itself");
  });

  it("the loader: configmaps list and watch in meshlane-system, nothing else", () => {
    assert.deepEqual(flatten(grantsFor(objects, loaderSa)), [`${SYSTEM_NAMESPACE} core/configmaps list`, `${SYSTEM_NAMESPACE} core/configmaps watch`]);
  });
});

describe("webhook Deployment", () => {
  const container = webhookPod.containers[0]!;
  const templateLabels = webhook.spec!.template.metadata!.labels!;

  it("two replicas, never fewer during a rollout, spread over nodes, guarded by a PodDisruptionBudget", () => {
    assert.equal(webhook.spec!.replicas, 2);
    assert.equal(webhook.spec!.strategy!.rollingUpdate!.maxUnavailable, 0);
    const anti = webhookPod.affinity!.podAntiAffinity!.preferredDuringSchedulingIgnoredDuringExecution![0]!;
    assert.equal(anti.podAffinityTerm.topologyKey, "kubernetes.io/hostname");
    assert.ok(selects(anti.podAffinityTerm.labelSelector, templateLabels), "anti-affinity selects the webhook's own pods");
    const pdb = find(objects, "PodDisruptionBudget", "meshlane-webhook");
    assert.equal(pdb.spec!.minAvailable, 1);
    assert.ok(selects(pdb.spec!.selector, templateLabels), "the PDB selects the webhook's pods");
  });

  it("readiness on /readyz and liveness on /healthz, over HTTPS on the serving port", () => {
    assert.equal(container.readinessProbe!.httpGet!.path, "/readyz");
    assert.equal(container.livenessProbe!.httpGet!.path, "/healthz");
    for (const probe of [container.readinessProbe!, container.livenessProbe!]) {
      assert.equal(probe.httpGet!.scheme, "HTTPS");
      assert.equal(probe.httpGet!.port, container.ports![0]!.name);
    }
  });

  it("requests and limits for CPU and memory", () => {
    for (const kind of ["requests", "limits"] as const) for (const r of ["cpu", "memory"]) assert.ok(container.resources![kind]![r], `${kind}.${r}`);
  });

  it("non-root, read-only root filesystem, no capability, no escalation, seccomp RuntimeDefault", () => {
    const pod = webhookPod.securityContext!;
    assert.equal(pod.runAsNonRoot, true);
    assert.ok(pod.runAsUser! > 0);
    assert.equal(pod.seccompProfile!.type, "RuntimeDefault");
    const sc = container.securityContext!;
    assert.equal(sc.readOnlyRootFilesystem, true);
    assert.equal(sc.allowPrivilegeEscalation, false);
    assert.notEqual(sc.privileged, true);
    assert.deepEqual(sc.capabilities, { drop: ["ALL"] });
    assert.ok(!webhookPod.hostNetwork && !webhookPod.hostPID && !webhookPod.hostIPC && !webhookPod.volumes, "no host namespace, no volume");
  });

  it("a Service on 443 reaching the container's serving port", () => {
    const service = find(objects, "Service", "meshlane-webhook");
    const port = service.spec!.ports![0]!;
    assert.equal(port.port, 443);
    assert.equal(port.targetPort, container.ports![0]!.name);
    assert.ok(selects({ matchLabels: service.spec!.selector }, templateLabels), "the Service selects the webhook's pods");
  });
});

describe("MutatingWebhookConfiguration", () => {
  const service = find(objects, "Service", "meshlane-webhook");

  it("one webhook, pod CREATE only, calling the Service on 443 at /mutate", () => {
    assert.equal(mwc.webhooks!.length, 1);
    assert.deepEqual(hook.rules, [{ operations: ["CREATE"], apiGroups: [""], apiVersions: ["v1"], resources: ["pods"], scope: "Namespaced" }]);
    assert.deepEqual(hook.clientConfig.service, { name: service.metadata!.name, namespace: SYSTEM_NAMESPACE, path: "/mutate", port: service.spec!.ports![0]!.port });
  });

  it("failurePolicy Ignore, sideEffects None, timeout <= 5 s, reinvocation IfNeeded, AdmissionReview v1", () => {
    assert.equal(hook.failurePolicy, "Ignore");
    assert.equal(hook.sideEffects, "None");
    assert.ok(hook.timeoutSeconds !== undefined && hook.timeoutSeconds >= 1 && hook.timeoutSeconds <= 5, `timeoutSeconds ${hook.timeoutSeconds}`);
    assert.equal(hook.reinvocationPolicy, "IfNeeded");
    assert.deepEqual(hook.admissionReviewVersions, ["v1"]);
  });

  it("caBundle is left for the webhook to fill", () => {
    assert.equal(hook.clientConfig.caBundle, undefined);
  });

  // Which namespaces and pods the selectors send is the API server's to decide:
  // webhook-pod.test.ts creates pods in labelled, unlabelled and system namespaces and
  // with the opt-out label against the real one.
});

describe("loader DaemonSet", () => {
  const attach = loaderPod.initContainers!.find((c) => c.name === "attach")!;
  const run = loaderPod.containers.find((c) => c.name === "loader")!;

  it("attach in the init container, run for this node, detach before the pod stops", () => {
    assert.deepEqual(loaderPod.initContainers!.map((c) => c.name), ["attach"]);
    assert.deepEqual(attach.command, ["meshlane-loader", "attach"]);
    assert.deepEqual(run.command, ["meshlane-loader", "run", "--node", "$(NODE_NAME)"]);
    assert.deepEqual(run.env, [
      { name: "NODE_NAME", valueFrom: { fieldRef: { fieldPath: "spec.nodeName" } } },
      // The agent's memory budget (docs/loader.md): a small young generation.
      { name: "NODE_OPTIONS", value: "--max-semi-space-size=1" },
    ]);
    assert.deepEqual(run.lifecycle!.preStop!.exec!.command, ["meshlane-loader", "detach"]);
    assert.equal(attach.image, run.image);
  });

  it("two capabilities, BPF and NET_ADMIN; not privileged; no escalation; read-only root filesystem", () => {
    for (const c of [attach, run]) {
      const sc: V1SecurityContext = c.securityContext!;
      assert.notEqual(sc.privileged, true, c.name);
      assert.deepEqual(sc.capabilities, { drop: ["ALL"], add: ["BPF", "NET_ADMIN"] }, c.name);
      assert.equal(sc.allowPrivilegeEscalation, false, c.name);
      assert.equal(sc.readOnlyRootFilesystem, true, c.name);
    }
  });

  it("no host network, PID or IPC namespace; seccomp RuntimeDefault", () => {
    assert.ok(!loaderPod.hostNetwork && !loaderPod.hostPID && !loaderPod.hostIPC);
    assert.equal(loaderPod.securityContext!.seccompProfile!.type, "RuntimeDefault");
    for (const c of containersOf(loaderPod)) assert.equal(c.securityContext!.seccompProfile, undefined, `${c.name} keeps the pod's seccomp profile`);
  });

  it("host paths: the node's bpffs and cgroup tree only; cgroups read-only; nothing Bidirectional", () => {
    const hostPaths = Object.fromEntries(loaderPod.volumes!.filter((v) => v.hostPath).map((v) => [v.name, v.hostPath!.path]));
    assert.deepEqual(hostPaths, { bpffs: DEFAULT_BPFFS, cgroup: "/sys/fs/cgroup" });
    for (const c of containersOf(loaderPod)) {
      const mounts = Object.fromEntries((c.volumeMounts ?? []).map((m) => [m.name, m]));
      // The loader finds bpffs and the cgroup2 mount by these paths, as on the node itself.
      assert.equal(mounts.bpffs?.mountPath, DEFAULT_BPFFS, c.name);
      assert.equal(mounts.cgroup?.mountPath, "/sys/fs/cgroup", c.name);
      assert.equal(mounts.cgroup?.readOnly, true, c.name);
      for (const m of Object.values(mounts)) assert.notEqual(m.mountPropagation, "Bidirectional", `${c.name} ${m.name}`);
    }
  });

  it("runs on every node: tolerates every taint, system-node-critical", () => {
    assert.deepEqual(loaderPod.tolerations, [{ operator: "Exists" }]);
    assert.equal(loaderPod.priorityClassName, "system-node-critical");
    assert.equal(loaderPod.nodeSelector, undefined);
    assert.equal(loaderPod.affinity, undefined);
  });

  it("rolling updates with never two loaders on one node", () => {
    assert.equal(loader.spec!.updateStrategy!.type, "RollingUpdate");
    assert.equal(loader.spec!.updateStrategy!.rollingUpdate!.maxSurge, 0);
  });

  it("/metrics port 9465 with readiness on /healthz, and no liveness probe (its kill would run preStop detach)", () => {
    assert.deepEqual(run.ports, [{ name: "metrics", containerPort: 9465, protocol: "TCP" }]);
    assert.deepEqual(run.readinessProbe!.httpGet, { path: "/healthz", port: "metrics" });
    assert.equal(run.livenessProbe, undefined);
    assert.equal(run.startupProbe, undefined);
    assert.equal(loader.spec!.template.metadata!.annotations!["prometheus.io/port"], "9465");
  });

  it("requests and limits for CPU and memory in both containers", () => {
    for (const c of containersOf(loaderPod)) for (const kind of ["requests", "limits"] as const) for (const r of ["cpu", "memory"]) assert.ok(c.resources![kind]![r], `${c.name} ${kind}.${r}`);
  });
});
