// Istio as a Mesh: injected pods are found by the injector's status annotation and the
// istio-proxy container; their settings come from what actually programs the pod's
// iptables — istio-init's istio-iptables arguments for classic pods (classic.ts), the
// annotations as istio-cni reads them for CNI pods (annotations.ts).

import type { Mesh, SettingsResult } from "../mesh.js";
import type { PodView } from "../pod.js";
import { cniSettings, statusPort } from "./annotations.js";
import { classicSettings } from "./classic.js";
import { detectInjection, type IstioDetection } from "./detect.js";
import { readIptablesConfig } from "./iptables-args.js";
import { Problems, Steps } from "./lists.js";
import { ISTIO_CONTROL_PORTS, ISTIO_INTERCEPTION_MODE_ANNOTATION, ISTIO_LISTENERS, ISTIO_PROXY } from "./names.js";

export type { IstioDetection, IstioEvidence } from "./detect.js";

export function istioSettings(pod: PodView, detection: IstioDetection, steps = new Steps()): SettingsResult {
  const mode = detection.evidence.interceptionMode;
  const container = detection.captureContainer;
  if (detection.evidence.capture === "none" || !container) {
    // With interceptionMode NONE the template injects no capture container at all.
    if (mode.mode !== "REDIRECT") return { ok: false, code: "interception-mode", detail: `interception mode ${mode.mode} (from ${mode.source}); only REDIRECT is accelerated` };
    return { ok: false, code: "no-capture", detail: "neither istio-init nor istio-validation: no sign of iptables capture to fall back on" };
  }
  // The status port is the proxy's own whatever the capture path; a bad value is the injector's problem.
  const status = statusPort(pod.annotations, new Problems());
  if (detection.evidence.capture === "istio-init") {
    // The arguments are what iptables was told; the annotations only explain them.
    const config = readIptablesConfig(container);
    if (!config.ok) return { ok: false, code: "bad-argument", detail: config.problems.join("; ") };
    return classicSettings(config.config, status, steps);
  }
  // istio-cni programs the pod from its annotations; istio-cni reads the mode from the annotation only.
  const cniMode = pod.annotations.get(ISTIO_INTERCEPTION_MODE_ANNOTATION)?.trim() ?? "REDIRECT";
  if (cniMode !== "REDIRECT") return { ok: false, code: "interception-mode", detail: `istio-cni interception mode ${JSON.stringify(cniMode)} (from the annotation); only REDIRECT is accelerated` };
  return cniSettings(pod.annotations, detection.proxy, steps);
}

export const istio: Mesh<IstioDetection> = {
  name: "istio",
  detect: detectInjection,
  interception: (pod, detection) => istioSettings(pod, detection),
  proxy: ISTIO_PROXY,
  listeners: ISTIO_LISTENERS,
  controlPorts: ISTIO_CONTROL_PORTS,
};
