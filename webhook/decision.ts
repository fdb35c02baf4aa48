// The webhook's whole judgement: admission request in, decision + reason + evidence +
// patch out. Pure and total: any input gives an answer, the same input the same one,
// and a pod already marked correctly gets no patch. The pod is re-judged on every
// invocation, so one first seen before Istio injected it is corrected on reinvocation.

import {
  ANNOTATION_INTERCEPTION,
  ANNOTATION_REASON,
  ANNOTATION_REDIRECT,
  ANNOTATION_STATUS,
  POD_MARK_LABEL,
  POD_OPT_OUT_KEY,
  STATUS_ACCELERATED,
  STATUS_SKIPPED,
} from "../registry/names.js";
import { DEFAULT_REDIRECT_MODE, isRecord, REDIRECT_MODES, type Interception, type RedirectMode } from "../registry/document.js";
import { istio, type IstioDetection, type IstioEvidence } from "../mesh/istio/index.js";
import type { Mesh } from "../mesh/mesh.js";
import { readPod, type PodView } from "../mesh/pod.js";
import { metadataMapPatch, type JsonPatchOp } from "./json-patch.js";
import type { AdmissionRequest } from "./review.js";

export type Decision = typeof STATUS_ACCELERATED | typeof STATUS_SKIPPED | "ignored";

/** Short, bounded set: these label metrics. The detail text says the rest. (mesh/mesh.ts's SettingsProblem is a subset.) */
export type ReasonCode =
  | "istio-redirect"
  | "opt-out"
  | "not-injected"
  | "host-network"
  | "no-capture"
  | "interception-mode"
  | "bad-annotation"
  | "unsupported-annotation"
  | "bad-argument"
  | "unsupported-argument"
  | "bad-redirect"
  | "annotations-too-large"
  | "not-a-pod"
  | "subresource"
  | "operation"
  | "no-object";

export interface Evidence extends IstioEvidence {
  hostNetwork: boolean;
  optOut: "label" | "annotation" | undefined;
}

/** The mesh meshlane accelerates. A second mesh is a second implementation of mesh/mesh.ts. */
const MESH: Mesh<IstioDetection> = istio;

export interface Outcome {
  decision: Decision;
  reason: ReasonCode;
  detail: string;
  /** Undefined for requests that are not pod creations. */
  evidence: Evidence | undefined;
  /** Empty when the pod is already marked as it should be, or is not ours to mark. */
  patch: JsonPatchOp[];
  interception: Interception | undefined;
}

function ignored(reason: ReasonCode, detail: string): Outcome {
  return { decision: "ignored", reason, detail, evidence: undefined, patch: [], interception: undefined };
}

function optOut(pod: PodView): Evidence["optOut"] {
  const isFalse = (v: string | undefined): boolean => v?.trim().toLowerCase() === "false";
  if (isFalse(pod.labels.get(POD_OPT_OUT_KEY))) return "label";
  if (isFalse(pod.annotations.get(POD_OPT_OUT_KEY))) return "annotation";
  return undefined;
}

type Judgement = Pick<Outcome, "decision" | "reason" | "detail" | "interception">;

/** meshlane.io/redirect: absent → the default; anything but one of REDIRECT_MODES is refused, not guessed. */
function redirectMode(pod: PodView): RedirectMode | { bad: string } {
  const v = pod.annotations.get(ANNOTATION_REDIRECT);
  if (v === undefined) return DEFAULT_REDIRECT_MODE;
  return (REDIRECT_MODES as readonly string[]).includes(v) ? (v as RedirectMode) : { bad: v };
}

function judgePod(pod: PodView, evidence: Evidence, detection: IstioDetection): Judgement {
  const skip = (reason: ReasonCode, detail: string): Judgement => ({ decision: STATUS_SKIPPED, reason, detail: truncate(detail, DETAIL_MAX_CHARS), interception: undefined });
  if (evidence.optOut) return skip("opt-out", `${POD_OPT_OUT_KEY}=false ${evidence.optOut}`);
  if (!detection.injected) return skip("not-injected", detection.notInjected);
  if (evidence.hostNetwork) return skip("host-network", "pod uses the host network namespace");
  const redirect = redirectMode(pod);
  if (typeof redirect === "object") {
    const shown = JSON.stringify(redirect.bad.length > 64 ? `${redirect.bad.slice(0, 64)}…` : redirect.bad);
    return skip("bad-redirect", `${ANNOTATION_REDIRECT} ${shown} is not one of ${REDIRECT_MODES.join(", ")}`);
  }
  const settings = MESH.interception(pod, detection);
  if (!settings.ok) return skip(settings.code, settings.detail);
  return {
    decision: STATUS_ACCELERATED,
    reason: "istio-redirect",
    detail: `Istio sidecar with REDIRECT capture (from ${evidence.capture === "istio-init" ? "istio-init's arguments" : "the annotations, as istio-cni reads them"})`,
    interception: { ...settings.interception, redirect },
  };
}

export function decide(request: AdmissionRequest): Outcome {
  const kind = request.kind;
  if (!kind || kind.group !== "" || kind.kind !== "Pod") {
    return ignored("not-a-pod", `kind ${kind ? `${kind.group || "core"}/${kind.version}/${kind.kind}` : "missing"} is not a Pod`);
  }
  if (request.subResource) return ignored("subresource", `subresource ${request.subResource} is not marked`);
  if (request.operation !== "CREATE") return ignored("operation", `operation ${request.operation ?? "missing"}: only CREATE is marked`);
  if (!isRecord(request.object)) return ignored("no-object", "request.object is not a pod object");

  const pod = readPod(request.object);
  const detection = MESH.detect(pod);
  const evidence: Evidence = { ...detection.evidence, hostNetwork: pod.hostNetwork, optOut: optOut(pod) };
  const judgement = fitsAnnotations(pod, judgePod(pod, evidence, detection));
  const annotationOps = metadataMapPatch("annotations", pod.rawAnnotations, pod.hasMetadata, marking(judgement));
  // The label is what the registrar's watch selects on: only accelerated pods carry it.
  const labelOps = metadataMapPatch("labels", pod.rawLabels, pod.hasMetadata || annotationOps.some((op) => op.path === "/metadata"), {
    [POD_MARK_LABEL]: judgement.decision === STATUS_ACCELERATED ? STATUS_ACCELERATED : undefined,
  });
  return { ...judgement, evidence, patch: [...annotationOps, ...labelOps] };
}

/** The values of meshlane's annotations for a judgement (undefined: must be absent). */
function marking(j: Judgement): Record<string, string | undefined> {
  const accelerated = j.decision === STATUS_ACCELERATED;
  return {
    [ANNOTATION_STATUS]: j.decision,
    [ANNOTATION_REASON]: accelerated ? undefined : `${j.reason}: ${j.detail}`,
    [ANNOTATION_INTERCEPTION]: accelerated ? JSON.stringify(j.interception) : undefined,
  };
}

/** A long list of bad tokens must not make the reason annotation (or the audit line) unbounded. */
const DETAIL_MAX_CHARS = 1024;
/** Kubernetes rejects a pod whose annotations total more than this (keys + values, bytes). */
const ANNOTATIONS_MAX_BYTES = 256 * 1024;

function truncate(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max - 1)}…`;
}

/**
 * The marking must never make the pod invalid: if the interception document would push
 * the annotations past the API server's limit, the pod is skipped instead.
 */
function fitsAnnotations(pod: PodView, j: Judgement): Judgement {
  const ours = marking(j);
  let bytes = 0;
  for (const [k, v] of pod.annotations) if (!(k in ours)) bytes += Buffer.byteLength(k) + Buffer.byteLength(v);
  for (const [k, v] of Object.entries(ours)) if (v !== undefined) bytes += Buffer.byteLength(k) + Buffer.byteLength(v);
  if (bytes <= ANNOTATIONS_MAX_BYTES) return j;
  return { decision: STATUS_SKIPPED, reason: "annotations-too-large", detail: `marking would bring the annotations to ${bytes} bytes, over the ${ANNOTATIONS_MAX_BYTES}-byte limit`, interception: undefined };
}
