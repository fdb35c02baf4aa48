// Istio's own injection fixtures (shared/fixtures/istio, see PROVENANCE.md) turned into
// the Pod AdmissionReviews the API server would send after Istio's webhook ran.

import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { parseAllDocuments } from "yaml";

export const FIXTURE_DIR = new URL("../../shared/fixtures/istio/", import.meta.url).pathname;

export interface Fixture {
  file: string;
  pod: Record<string, unknown>;
}

type Obj = Record<string, unknown>;

/** A Deployment's template becomes a Pod; a bare Pod stays as it is. */
function podOf(doc: Obj, file: string): Obj {
  if (doc.kind === "Pod") return doc;
  const template = (doc.spec as Obj | undefined)?.template as Obj | undefined;
  if (!template) throw new Error(`${file}: ${String(doc.kind)} has no spec.template`);
  const metadata = { ...(template.metadata as Obj), generateName: `${String((doc.metadata as Obj).name)}-` };
  return { apiVersion: "v1", kind: "Pod", metadata, spec: template.spec };
}

export function loadFixtures(): Fixture[] {
  const files = readdirSync(FIXTURE_DIR).filter((f) => f.endsWith(".yaml") || f.endsWith(".injected")).sort();
  return files.map((file) => {
    const docs = parseAllDocuments(readFileSync(join(FIXTURE_DIR, file), "utf8"))
      .map((d) => d.toJS() as Obj | null)
      .filter((d): d is Obj => d !== null);
    if (docs.length !== 1) throw new Error(`${file}: expected one manifest, found ${docs.length}`);
    return { file, pod: podOf(docs[0]!, file) };
  });
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
