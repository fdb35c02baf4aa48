// A stand-in for Istio's sidecar injector, run as a real admission webhook that the
// real API server calls (HTTPS on loopback, its own MutatingWebhookConfiguration named
// and selected as Istio's is), fed by Istio's own injection output: it adds the
// containers, init containers and volumes that a fixture's `sidecar.istio.io/status`
// annotation lists as injected, plus the annotations and labels the injector adds.
// The copied containers are verbatim, so istio-init's capture flags are the fixture's.
//
// lab/local-cluster.ts takes any SidecarInjector; Istio's real injector replaces this
// one there (issue 11) without touching anything else.

import { createServer, type Server } from "node:https";
import type { AddressInfo } from "node:net";
import { readFileSync } from "node:fs";
import type { V1MutatingWebhookConfiguration } from "@kubernetes/client-node";
import { parseAllDocuments } from "yaml";
import { createCertificateAuthority, issueServingCertificate } from "../certs/authority.js";

/** A sidecar injector the lab's API server calls: start it, then create its configuration. */
export interface SidecarInjector {
  /** Serves, and returns the MutatingWebhookConfiguration that makes the API server call it. */
  start(): Promise<V1MutatingWebhookConfiguration>;
  stop(): Promise<void>;
}

const STATUS_ANNOTATION = "sidecar.istio.io/status";
const INJECT_KEY = "sidecar.istio.io/inject";
/** Annotations Istio's injector adds; a pod's own value wins. */
const INJECTED_ANNOTATION = /^(prometheus\.io\/|istio\.io\/rev$|sidecar\.istio\.io\/status$)/;

type Obj = Record<string, unknown>;

interface InjectedParts {
  annotations: Record<string, string>;
  initContainers: Obj[];
  containers: Obj[];
  volumes: Obj[];
}

/** Reads the pod template of an injected Pod or Deployment fixture. */
function readFixture(path: string): InjectedParts {
  const doc = parseAllDocuments(readFileSync(path, "utf8")).map((d) => d.toJS() as Obj | null).find((d) => d);
  if (!doc) throw new Error(`${path}: no YAML document`);
  const template = (doc.kind === "Pod" ? doc : (doc.spec as Obj | undefined)?.template) as
    { metadata?: { annotations?: Record<string, string> }; spec?: Obj } | undefined;
  const annotations = template?.metadata?.annotations ?? {};
  const statusAnnotation = annotations[STATUS_ANNOTATION];
  if (!statusAnnotation || !template?.spec) throw new Error(`${path}: not an Istio-injected pod template (no ${STATUS_ANNOTATION})`);
  const status = JSON.parse(statusAnnotation) as { initContainers: string[] | null; containers: string[] | null; volumes: string[] | null };
  const pick = (list: unknown, names: string[] | null) => ((list ?? []) as Obj[]).filter((item) => (names ?? []).includes(item.name as string));
  return {
    annotations: Object.fromEntries(Object.entries(annotations).filter(([key]) => INJECTED_ANNOTATION.test(key))),
    initContainers: pick(template.spec.initContainers, status.initContainers),
    containers: pick(template.spec.containers, status.containers),
    volumes: pick(template.spec.volumes, status.volumes),
  };
}

interface PodLike {
  metadata?: { name?: string; generateName?: string; annotations?: Record<string, string>; labels?: Record<string, string> };
  spec?: { containers?: Obj[]; initContainers?: Obj[]; volumes?: Obj[] };
}

/** The JSON patch Istio's injector would answer for this pod, or undefined when it leaves the pod alone. */
export function injectionPatch(parts: InjectedParts, pod: PodLike): Obj[] | undefined {
  const annotations = pod.metadata?.annotations ?? {};
  if (annotations[STATUS_ANNOTATION] || annotations[INJECT_KEY] === "false") return undefined;
  const labels = pod.metadata?.labels ?? {};
  const appContainers = pod.spec?.containers ?? [];
  const workload = labels["app.kubernetes.io/name"] ?? labels.app ?? pod.metadata?.name ?? pod.metadata?.generateName?.replace(/-$/, "") ?? "";
  const defaultContainer = String(appContainers[0]?.name ?? "");
  // "add" on an object member sets it whether or not it exists.
  return [
    { op: "add", path: "/metadata/annotations", value: { ...parts.annotations, "kubectl.kubernetes.io/default-container": defaultContainer, "kubectl.kubernetes.io/default-logs-container": defaultContainer, ...annotations } },
    { op: "add", path: "/metadata/labels", value: { "security.istio.io/tlsMode": "istio", "service.istio.io/canonical-name": workload, "service.istio.io/canonical-revision": labels["app.kubernetes.io/version"] ?? labels.version ?? "latest", ...labels } },
    { op: "add", path: "/spec/initContainers", value: [...structuredClone(parts.initContainers), ...(pod.spec?.initContainers ?? [])] },
    { op: "add", path: "/spec/containers", value: [...appContainers, ...structuredClone(parts.containers)] },
    { op: "add", path: "/spec/volumes", value: [...(pod.spec?.volumes ?? []), ...structuredClone(parts.volumes)] },
  ];
}

export function fixtureInjector(fixturePath: string): SidecarInjector {
  const parts = readFixture(fixturePath);
  let server: Server | undefined;
  return {
    async start() {
      const ca = createCertificateAuthority({ commonName: "istio stand-in CA", validityMs: 7 * 86_400_000 });
      const serving = issueServingCertificate(ca, { names: ["127.0.0.1"], validityMs: 7 * 86_400_000 });
      server = createServer({ cert: serving.certPem, key: serving.keyPem }, (req, res) => {
        const chunks: Buffer[] = [];
        req.on("data", (c: Buffer) => chunks.push(c));
        req.on("end", () => {
          const review = JSON.parse(Buffer.concat(chunks).toString("utf8")) as { apiVersion: string; request: { uid: string; object: PodLike } };
          const patch = injectionPatch(parts, review.request.object);
          const response = { uid: review.request.uid, allowed: true, ...(patch ? { patchType: "JSONPatch", patch: Buffer.from(JSON.stringify(patch)).toString("base64") } : {}) };
          res.writeHead(200, { "content-type": "application/json" });
          res.end(JSON.stringify({ apiVersion: review.apiVersion, kind: "AdmissionReview", response }));
        });
      });
      await new Promise<void>((resolve) => server!.listen(0, "127.0.0.1", resolve));
      const { port } = server.address() as AddressInfo;
      // Istio's own configuration, reduced to the default revision's namespace webhook.
      return {
        apiVersion: "admissionregistration.k8s.io/v1",
        kind: "MutatingWebhookConfiguration",
        metadata: { name: "istio-sidecar-injector" },
        webhooks: [{
          name: "namespace.sidecar-injector.istio.io",
          clientConfig: { url: `https://127.0.0.1:${port}/inject`, caBundle: Buffer.from(ca.certPem).toString("base64") },
          rules: [{ operations: ["CREATE"], apiGroups: [""], apiVersions: ["v1"], resources: ["pods"] }],
          namespaceSelector: { matchLabels: { "istio-injection": "enabled" } },
          objectSelector: { matchExpressions: [{ key: INJECT_KEY, operator: "NotIn", values: ["false"] }] },
          failurePolicy: "Fail",
          sideEffects: "None",
          reinvocationPolicy: "Never",
          admissionReviewVersions: ["v1"],
        }],
      };
    },
    stop: () => new Promise<void>((resolve) => {
      if (!server) return resolve();
      server.close(() => resolve());
      server.closeAllConnections(); // the API server keeps its connections alive
    }),
  };
}
