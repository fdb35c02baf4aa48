// A defensive view of the pod inside an AdmissionReview. The object comes from the
// network, so every field is checked; anything of the wrong shape reads as absent
// rather than throwing, which keeps the decision total over arbitrary input.

import { isRecord } from "../registry/document.js";

export interface ContainerView {
  name: string;
  /** Set on native sidecars (init containers with restartPolicy: Always). */
  restartPolicy: string | undefined;
  runAsUser: number | undefined;
  runAsGroup: number | undefined;
  /** String arguments (istio-init's are the istio-iptables command line). */
  args: string[];
  /** Literal env values only (valueFrom entries are not values). Read for decisions, never logged. */
  env: ReadonlyMap<string, string>;
}

export interface PodView {
  /** The raw `metadata.annotations` value; undefined when absent or not an object. */
  rawAnnotations: Record<string, unknown> | undefined;
  /** The raw `metadata.labels` value; undefined when absent or not an object. */
  rawLabels: Record<string, unknown> | undefined;
  hasMetadata: boolean;
  /** Annotations whose values are strings. */
  annotations: ReadonlyMap<string, string>;
  labels: ReadonlyMap<string, string>;
  containers: ContainerView[];
  initContainers: ContainerView[];
  hostNetwork: boolean;
}

function stringEntries(v: unknown): Map<string, string> {
  const out = new Map<string, string>();
  if (!isRecord(v)) return out;
  for (const [k, val] of Object.entries(v)) if (typeof val === "string") out.set(k, val);
  return out;
}

function optionalInteger(v: unknown): number | undefined {
  return typeof v === "number" && Number.isSafeInteger(v) ? v : undefined;
}

function readContainer(v: unknown): ContainerView | undefined {
  if (!isRecord(v) || typeof v.name !== "string") return undefined;
  const security = isRecord(v.securityContext) ? v.securityContext : {};
  const env = new Map<string, string>();
  if (Array.isArray(v.env)) {
    for (const e of v.env) if (isRecord(e) && typeof e.name === "string" && typeof e.value === "string") env.set(e.name, e.value);
  }
  return {
    name: v.name,
    args: Array.isArray(v.args) ? v.args.filter((a): a is string => typeof a === "string") : [],
    restartPolicy: typeof v.restartPolicy === "string" ? v.restartPolicy : undefined,
    runAsUser: optionalInteger(security.runAsUser),
    runAsGroup: optionalInteger(security.runAsGroup),
    env,
  };
}

function readContainers(v: unknown): ContainerView[] {
  if (!Array.isArray(v)) return [];
  return v.map(readContainer).filter((c): c is ContainerView => c !== undefined);
}

export function readPod(object: unknown): PodView {
  const pod = isRecord(object) ? object : {};
  const metadata = isRecord(pod.metadata) ? pod.metadata : undefined;
  const spec = isRecord(pod.spec) ? pod.spec : {};
  return {
    rawAnnotations: metadata && isRecord(metadata.annotations) ? metadata.annotations : undefined,
    rawLabels: metadata && isRecord(metadata.labels) ? metadata.labels : undefined,
    hasMetadata: metadata !== undefined,
    annotations: stringEntries(metadata?.annotations),
    labels: stringEntries(metadata?.labels),
    containers: readContainers(spec.containers),
    initContainers: readContainers(spec.initContainers),
    hostNetwork: spec.hostNetwork === true,
  };
}
