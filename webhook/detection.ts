// Is this pod Istio-injected, and how is its traffic captured? Pure; the answer comes
// with the evidence that the audit log records.

import { isRecord } from "../registry/document.js";
import { CNI_VALIDATION_CONTAINER, IPTABLES_INIT_CONTAINER, ISTIO_STATUS_ANNOTATION, PROXY_CONTAINER } from "./istio-names.js";
import type { CaptureKind } from "./interception.js";
import type { ContainerView, PodView } from "./pod.js";

export interface InjectionEvidence {
  statusAnnotation: "valid" | "absent" | "not-json" | "not-an-object";
  /** Istio revision named in the status annotation, when it is a short string. */
  revision: string | undefined;
  /** Where istio-proxy is: a regular container, a native sidecar, or an init container that is not a sidecar. */
  proxy: "containers" | "native-sidecar" | "init-not-sidecar" | "absent";
  /** Which init container shows that iptables capture is installed. */
  capture: CaptureKind | "none";
}

export interface Injection {
  injected: boolean;
  evidence: InjectionEvidence;
  proxy: ContainerView | undefined;
  /** istio-init or istio-validation, whose arguments say what capture was set up. */
  captureContainer: ContainerView | undefined;
}

function statusAnnotation(pod: PodView): Pick<InjectionEvidence, "statusAnnotation" | "revision"> {
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

export function detectInjection(pod: PodView): Injection {
  const status = statusAnnotation(pod);
  const inContainers = pod.containers.find((c) => c.name === PROXY_CONTAINER);
  const inInit = pod.initContainers.find((c) => c.name === PROXY_CONTAINER);
  const nativeSidecar = inInit?.restartPolicy === "Always" ? inInit : undefined;
  const proxy = inContainers ?? nativeSidecar;
  const captureContainer =
    pod.initContainers.find((c) => c.name === IPTABLES_INIT_CONTAINER) ?? pod.initContainers.find((c) => c.name === CNI_VALIDATION_CONTAINER);
  const evidence: InjectionEvidence = {
    ...status,
    proxy: inContainers ? "containers" : nativeSidecar ? "native-sidecar" : inInit ? "init-not-sidecar" : "absent",
    capture: !captureContainer ? "none" : captureContainer.name === IPTABLES_INIT_CONTAINER ? "istio-init" : "istio-validation",
  };
  return { injected: status.statusAnnotation === "valid" && proxy !== undefined, evidence, proxy, captureContainer };
}
