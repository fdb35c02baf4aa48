// What meshlane needs to know about a sidecar mesh, and nothing more: whether a pod was
// injected, what its capture really does (the interception settings the registry carries),
// who the proxy is, and which ports are the proxy's own. The webhook's decision, the
// registrar (through that decision) and the test lab go through this interface; the loader
// and the BPF programs see only the per-pod settings it produces. Istio is mesh/istio/.

import type { Interception } from "../registry/document.js";
import type { PodView } from "./pod.js";

/** Why a mesh cannot give a pod's settings (webhook reason codes; they label metrics). */
export type SettingsProblem =
  | "no-capture"
  | "interception-mode"
  | "bad-annotation"
  | "unsupported-annotation"
  | "bad-argument"
  | "unsupported-argument";

/** `redirect` is meshlane's own choice (meshlane.io/redirect); a mesh leaves it at the default. */
export type SettingsResult =
  | { ok: true; interception: Interception }
  | { ok: false; code: SettingsProblem; detail: string };

export interface Detection<E> {
  injected: boolean;
  /** Enumerated facts for the audit log (never env values or the pod spec). */
  evidence: E;
  /** Why the pod does not count as injected; "" when it does. */
  notInjected: string;
}

export interface Mesh<D extends Detection<unknown> = Detection<unknown>> {
  name: string;
  detect(pod: PodView): D;
  /** The settings the pod's capture applies, as the mesh itself derives them. */
  interception(pod: PodView, detection: D): SettingsResult;
  /** Defaults for a pod that does not say otherwise. */
  proxy: { uid: number; gid: number };
  listeners: { outbound: number; inbound: number };
  controlPorts: readonly number[];
}
