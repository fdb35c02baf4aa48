// Istio's real injector behind an admission webhook that the real API server calls
// (HTTPS on loopback, its own MutatingWebhookConfiguration named and selected as
// Istio's is): each pod the API server sends goes through `istioctl kube-inject` of
// the pinned Istio release (lab/istio/injector.ts), and the answer is the patch that
// turns the pod into what the injector made of it. istioctl's injection is the same
// code and template istiod's webhook runs; only the transport is ours.
//
// lab/local-cluster.ts takes any SidecarInjector; istiod itself could replace this one
// there without touching anything else.

import { createServer, type Server } from "node:https";
import type { AddressInfo } from "node:net";
import type { V1MutatingWebhookConfiguration } from "@kubernetes/client-node";
import { createCertificateAuthority, issueServingCertificate } from "../certs/authority.js";
import { inject, podOf } from "./istio/injector.js";

/** A sidecar injector the lab's API server calls: start it, then create its configuration. */
export interface SidecarInjector {
  /** Serves, and returns the MutatingWebhookConfiguration that makes the API server call it. */
  start(): Promise<V1MutatingWebhookConfiguration>;
  stop(): Promise<void>;
}

const STATUS_ANNOTATION = "sidecar.istio.io/status";
const INJECT_KEY = "sidecar.istio.io/inject";

type Obj = Record<string, unknown>;

interface PodLike {
  metadata?: { annotations?: Record<string, string>; labels?: Record<string, string> };
  spec?: Obj;
}

/** The JSON patch that makes `pod` what Istio's injector returns for it, or undefined when it leaves the pod alone. */
export function injectionPatch(pod: PodLike): Obj[] | undefined {
  const annotations = pod.metadata?.annotations ?? {};
  if (annotations[STATUS_ANNOTATION] || annotations[INJECT_KEY] === "false") return undefined;
  const injected = podOf(inject([{ apiVersion: "v1", kind: "Pod", ...pod }])[0]!) as PodLike;
  if (!injected.metadata?.annotations?.[STATUS_ANNOTATION]) return undefined;
  // "add" on an object member sets it whether or not it exists.
  return [
    { op: "add", path: "/metadata/annotations", value: injected.metadata.annotations },
    { op: "add", path: "/metadata/labels", value: injected.metadata.labels ?? {} },
    { op: "add", path: "/spec", value: injected.spec },
  ];
}

/** Istio's injector (istioctl kube-inject of the pinned release) as the API server's sidecar-injection webhook. */
export function istioInjector(): SidecarInjector {
  let server: Server | undefined;
  return {
    async start() {
      const ca = createCertificateAuthority({ commonName: "istio injector webhook CA", validityMs: 7 * 86_400_000 });
      const serving = issueServingCertificate(ca, { names: ["127.0.0.1"], validityMs: 7 * 86_400_000 });
      server = createServer({ cert: serving.certPem, key: serving.keyPem }, (req, res) => {
        const chunks: Buffer[] = [];
        req.on("data", (c: Buffer) => chunks.push(c));
        req.on("end", () => {
          const review = JSON.parse(Buffer.concat(chunks).toString("utf8")) as { apiVersion: string; request: { uid: string; object: PodLike } };
          let response: Obj;
          try {
            const patch = injectionPatch(review.request.object);
            response = { uid: review.request.uid, allowed: true, ...(patch ? { patchType: "JSONPatch", patch: Buffer.from(JSON.stringify(patch)).toString("base64") } : {}) };
          } catch (e) {
            // Istio's webhook fails closed (failurePolicy Fail): the pod is refused, with the reason.
            response = { uid: review.request.uid, allowed: false, status: { code: 500, message: `istio injection failed: ${(e as Error).message}` } };
          }
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
