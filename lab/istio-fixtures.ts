// Pods injected by Istio's own injector (lab/istio/), turned into the Pod AdmissionReviews
// the API server would send after Istio's webhook ran.

import { FIXTURES, injectedPod } from "./istio/fixtures.js";

export { injectedPod } from "./istio/fixtures.js";

export interface Fixture {
  file: string;
  pod: Record<string, unknown>;
}

type Obj = Record<string, unknown>;

export function loadFixtures(): Fixture[] {
  return Object.keys(FIXTURES).sort().map((file) => ({ file, pod: injectedPod(file) }));
}

let uidCounter = 0;

export interface ReviewOptions {
  apiVersion?: string;
  operation?: string;
  dryRun?: boolean;
  namespace?: string;
  kind?: { group: string; version: string; kind: string };
  subResource?: string;
}

export function podReview(pod: unknown, o: ReviewOptions = {}): Obj {
  uidCounter += 1;
  return {
    apiVersion: o.apiVersion ?? "admission.k8s.io/v1",
    kind: "AdmissionReview",
    request: {
      uid: `00000000-0000-4000-8000-${String(uidCounter).padStart(12, "0")}`,
      kind: o.kind ?? { group: "", version: "v1", kind: "Pod" },
      resource: { group: "", version: "v1", resource: "pods" },
      ...(o.subResource ? { subResource: o.subResource } : {}),
      namespace: o.namespace ?? "shop",
      operation: o.operation ?? "CREATE",
      userInfo: { username: "system:serviceaccount:kube-system:replicaset-controller", groups: ["system:serviceaccounts"] },
      object: pod,
      oldObject: null,
      dryRun: o.dryRun ?? false,
      options: { kind: "CreateOptions", apiVersion: "meta.k8s.io/v1" },
    },
  };
}
