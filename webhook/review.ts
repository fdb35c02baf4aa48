// The AdmissionReview envelope: checking what arrives and shaping what goes back.
// The response mirrors the request's apiVersion, as the API server requires.

import { isRecord } from "../registry/document.js";
export const ADMISSION_API_VERSIONS = ["admission.k8s.io/v1", "admission.k8s.io/v1beta1"] as const;
export type AdmissionApiVersion = (typeof ADMISSION_API_VERSIONS)[number];

export interface GroupVersionKind {
  group: string;
  version: string;
  kind: string;
}

export interface AdmissionRequest {
  uid: string;
  kind: GroupVersionKind | undefined;
  subResource: string | undefined;
  operation: string | undefined;
  namespace: string | undefined;
  /** request.name, else the object's metadata.name (empty on CREATE with generateName). */
  name: string | undefined;
  generateName: string | undefined;
  object: unknown;
  dryRun: boolean;
  user: string | undefined;
}

export interface AdmissionReview {
  apiVersion: AdmissionApiVersion;
  request: AdmissionRequest;
}

/** "missing-uid" is told apart: it is the one malformed review the issue names. */
export type ParsedReview = { ok: true; review: AdmissionReview } | { ok: false; code: "not-a-review" | "missing-uid"; problem: string };

function optionalString(v: unknown): string | undefined {
  return typeof v === "string" ? v : undefined;
}

function describe(v: unknown): string {
  const text = JSON.stringify(v) ?? String(v);
  return text.length > 64 ? `${text.slice(0, 64)}…` : text;
}

export function parseAdmissionReview(body: unknown): ParsedReview {
  if (!isRecord(body)) return { ok: false, code: "not-a-review", problem: "body is not a JSON object" };
  const apiVersion = ADMISSION_API_VERSIONS.find((v) => v === body.apiVersion);
  if (!apiVersion) {
    return { ok: false, code: "not-a-review", problem: `apiVersion ${describe(body.apiVersion)} is not one of ${ADMISSION_API_VERSIONS.join(", ")}` };
  }
  if (body.kind !== "AdmissionReview") return { ok: false, code: "not-a-review", problem: `kind ${describe(body.kind)} is not AdmissionReview` };
  const request = body.request;
  if (!isRecord(request)) return { ok: false, code: "not-a-review", problem: "request is missing or not an object" };
  if (typeof request.uid !== "string" || request.uid === "") return { ok: false, code: "missing-uid", problem: "request.uid is missing" };
  const kind = isRecord(request.kind) ? request.kind : undefined;
  const gvk =
    kind && typeof kind.kind === "string"
      ? { group: optionalString(kind.group) ?? "", version: optionalString(kind.version) ?? "", kind: kind.kind }
      : undefined;
  const userInfo = isRecord(request.userInfo) ? request.userInfo : {};
  const metadata = isRecord(request.object) && isRecord(request.object.metadata) ? request.object.metadata : {};
  return {
    ok: true,
    review: {
      apiVersion,
      request: {
        uid: request.uid,
        kind: gvk,
        subResource: optionalString(request.subResource) || undefined,
        operation: optionalString(request.operation),
        namespace: optionalString(request.namespace),
        name: optionalString(request.name) || optionalString(metadata.name) || undefined,
        generateName: optionalString(metadata.generateName),
        object: request.object,
        dryRun: request.dryRun === true,
        user: optionalString(userInfo.username),
      },
    },
  };
}

/**
 * Always allowed: meshlane marks pods, it never blocks one. `patchJson` is the serialized
 * JSON patch (the caller also digests it for the audit log), undefined for none.
 */
export function admissionResponse(apiVersion: AdmissionApiVersion, uid: string, patchJson: string | undefined): object {
  const response: Record<string, unknown> = { uid, allowed: true };
  if (patchJson !== undefined) {
    response.patchType = "JSONPatch";
    response.patch = Buffer.from(patchJson).toString("base64");
  }
  return { apiVersion, kind: "AdmissionReview", response };
}
