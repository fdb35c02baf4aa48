// Is this pod Istio-injected, and how is its traffic captured? Pure; the answer comes
// with the evidence that the audit log records.

import { isRecord } from "../../registry/document.js";
import type { Detection } from "../mesh.js";
import type { ContainerView, PodView } from "../pod.js";
import {
  CNI_VALIDATION_CONTAINER,
  IPTABLES_INIT_CONTAINER,
  ISTIO_INTERCEPTION_MODE_ANNOTATION,
  ISTIO_STATUS_ANNOTATION,
  PROXY_CONTAINER,
  PROXY_INTERCEPTION_MODE_ENV,
} from "./names.js";

export type CaptureKind = "istio-init" | "istio-validation";

export const KNOWN_MODES = ["REDIRECT", "TPROXY", "NONE"] as const;
export interface InterceptionMode {
  /** One of KNOWN_MODES, or "invalid" (the raw text is not repeated: it may come from an env value). */
  mode: (typeof KNOWN_MODES)[number] | "invalid";
  source: "annotation" | "proxy-env" | "default";
}

/** The mode the injector applied: the pod annotation, else what it wrote into istio-proxy's env, else REDIRECT. */
function interceptionMode(pod: PodView, proxy: ContainerView | undefined): InterceptionMode {
  const fromAnnotation = pod.annotations.get(ISTIO_INTERCEPTION_MODE_ANNOTATION);
  const fromEnv = proxy?.env.get(PROXY_INTERCEPTION_MODE_ENV);
  const [text, source]: [string, InterceptionMode["source"]] =
    fromAnnotation !== undefined ? [fromAnnotation, "annotation"] : fromEnv !== undefined ? [fromEnv, "proxy-env"] : ["REDIRECT", "default"];
  const mode = KNOWN_MODES.find((m) => m === text.trim());
  return { mode: mode ?? "invalid", source };
}

export interface IstioEvidence {
  statusAnnotation: "valid" | "absent" | "not-json" | "not-an-object";
  /** Istio revision named in the status annotation, when it is a short string. */
  revision: string | undefined;
  /** Where istio-proxy is: a regular container, a native sidecar, or an init container that is not a sidecar. */
  proxy: "containers" | "native-sidecar" | "init-not-sidecar" | "absent";
  /** Which init container shows that iptables capture is installed. */
  capture: CaptureKind | "none";
  /** What the injector was asked for; a classic pod's capture follows istio-init's -m instead. */
  interceptionMode: InterceptionMode;
}

export interface IstioDetection extends Detection<IstioEvidence> {
  proxy: ContainerView | undefined;
  /** istio-init or istio-validation, whose arguments say what capture was set up. */
  captureContainer: ContainerView | undefined;
}

function statusAnnotation(pod: PodView): Pick<IstioEvidence, "statusAnnotation" | "revision"> {
  const text = pod.annotations.get(ISTIO_STATUS_ANNOTATION);
  if (text === undefined) return { statusAnnotation: "absent", revision: undefined };
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return { statusAnnotation: "not-json", revision: undefined };
  }
  // Istio always writes an object; a bare JSON scalar is not its status.
  if (!isRecord(parsed)) return { statusAnnotation: "not-an-object", revision: undefined };
  const revision = typeof parsed.revision === "string" && parsed.revision.length <= 63 ? parsed.revision : undefined;
  return { statusAnnotation: "valid", revision };
}

function notInjected(e: IstioEvidence): string {
  const parts: string[] = [];
  if (e.statusAnnotation !== "valid") parts.push(`${ISTIO_STATUS_ANNOTATION} is ${e.statusAnnotation}`);
  if (e.proxy === "absent") parts.push("no istio-proxy container");
  if (e.proxy === "init-not-sidecar") parts.push("istio-proxy is an init container without restartPolicy: Always");
  return parts.join("; ");
}

export function detectInjection(pod: PodView): IstioDetection {
  const status = statusAnnotation(pod);
  const inContainers = pod.containers.find((c) => c.name === PROXY_CONTAINER);
  const inInit = pod.initContainers.find((c) => c.name === PROXY_CONTAINER);
  const nativeSidecar = inInit?.restartPolicy === "Always" ? inInit : undefined;
  const proxy = inContainers ?? nativeSidecar;
  const captureContainer =
    pod.initContainers.find((c) => c.name === IPTABLES_INIT_CONTAINER) ?? pod.initContainers.find((c) => c.name === CNI_VALIDATION_CONTAINER);
  const evidence: IstioEvidence = {
    ...status,
    proxy: inContainers ? "containers" : nativeSidecar ? "native-sidecar" : inInit ? "init-not-sidecar" : "absent",
    capture: !captureContainer ? "none" : captureContainer.name === IPTABLES_INIT_CONTAINER ? "istio-init" : "istio-validation",
    interceptionMode: interceptionMode(pod, proxy),
  };
  const injected = status.statusAnnotation === "valid" && proxy !== undefined;
  return { injected, evidence, notInjected: injected ? "" : notInjected(evidence), proxy, captureContainer };
}
