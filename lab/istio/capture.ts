// A lab pod's iptables, programmed by Istio itself: the pod's settings become the
// traffic annotations of an input pod, Istio's injector writes its istio-init container,
// and Istio's istio-iptables (`pilot-agent istio-iptables`) runs inside the pod's network
// namespace with exactly that container's arguments and environment.

import { spawn } from "node:child_process";
import { statSync } from "node:fs";
import type { Interception } from "../../registry/document.js";
import { IPTABLES_INIT_CONTAINER, TRAFFIC_ANNOTATIONS } from "../../mesh/istio/names.js";
import { inject, type Variant } from "./injector.js";
import { istioBinary } from "./release.js";

type Obj = Record<string, any>;

const list = (v: "*" | readonly (string | number)[]) => (v === "*" ? "*" : v.join(","));

/** An input pod whose annotations ask Istio's injector for these settings. */
export function inputPodFor(name: string, ic: Interception): Obj {
  const a = TRAFFIC_ANNOTATIONS;
  const annotations: Record<string, string> = {
    [a.includeOutboundIPRanges]: list(ic.includeOutboundIPRanges),
    [a.excludeOutboundIPRanges]: list(ic.excludeOutboundIPRanges),
    [a.includeInboundPorts]: list(ic.includeInboundPorts),
    [a.excludeInboundPorts]: list(ic.excludeInboundPorts),
  };
  // The template writes -q/-o only when the annotation is there; an empty list is no flag.
  if (ic.includeOutboundPorts.length > 0) annotations[a.includeOutboundPorts] = list(ic.includeOutboundPorts);
  if (ic.excludeOutboundPorts.length > 0) annotations[a.excludeOutboundPorts] = list(ic.excludeOutboundPorts);
  const containers: Obj[] = [{ name: "app", image: "registry.example/app:v1" }];
  // The injector takes the proxy uid from an istio-proxy container the pod already has.
  if (ic.proxyUid !== 1337) containers.push({ name: "istio-proxy", image: "auto", securityContext: { runAsUser: ic.proxyUid, runAsGroup: ic.proxyGid } });
  return { apiVersion: "v1", kind: "Pod", metadata: { name, annotations }, spec: { containers } };
}

export interface IstioInit {
  args: string[];
  env: Record<string, string>;
}

/** The istio-init container Istio's injector wrote into `pod`. */
export function istioInitOf(pod: Obj): IstioInit {
  const init = (pod.spec?.initContainers as Obj[] | undefined)?.find((c) => c.name === IPTABLES_INIT_CONTAINER);
  if (!init) throw new Error(`pod ${pod.metadata?.name}: Istio's injector wrote no ${IPTABLES_INIT_CONTAINER} container`);
  const env: Record<string, string> = {};
  for (const e of (init.env as Obj[] | undefined) ?? []) if (typeof e.value === "string") env[e.name] = e.value;
  return { args: init.args as string[], env };
}

/** Injected pods for many settings at once (one injector run), in order. */
export function injectFor(settings: readonly Interception[], variant: Variant = "dual"): Obj[] {
  return inject(settings.map((ic, i) => inputPodFor(`p${i}`, ic)), variant);
}

/** Flags that would make istio-iptables leave the namespace it runs in. */
const LEAVES_NAMESPACE = ["--network-namespace", "--cni-mode"];

/**
 * Runs Istio's istio-iptables in network namespace `netns` (created by the lab) with
 * `init`'s arguments and environment. Never in the root namespace: the namespace must be
 * one of `ip netns`'s and not the one this process runs in.
 */
export async function runIstioIptables(netns: string, init: IstioInit): Promise<void> {
  const bad = init.args.find((a) => LEAVES_NAMESPACE.some((f) => a === f || a.startsWith(`${f}=`)));
  if (bad) throw new Error(`istio-iptables for ${netns}: refusing ${bad}, which would program another namespace`);
  const target = statSync(`/run/netns/${netns}`).ino;
  if (target === statSync("/proc/self/ns/net").ino) throw new Error(`istio-iptables: ${netns} is this process's own network namespace`);
  const at = init.args.indexOf("istio-iptables");
  const argv = ["netns", "exec", netns, istioBinary("pilot-agent"), ...init.args.slice(at)];
  // Only the container's own environment (and a PATH to find iptables): nothing of ours leaks in.
  const env = { PATH: "/usr/sbin:/usr/bin:/sbin:/bin", ...init.env };
  await new Promise<void>((resolve, reject) => {
    const child = spawn("ip", argv, { env, stdio: ["ignore", "pipe", "pipe"], cwd: "/" });
    // istio-iptables logs to stdout, the Go runtime to stderr: keep the end of both.
    let output = "";
    const keep = (d: Buffer) => (output = (output + d.toString()).slice(-4000));
    child.stdout.on("data", keep);
    child.stderr.on("data", keep);
    child.on("error", reject);
    child.on("close", (code) => (code === 0 ? resolve() : reject(new Error(`istio-iptables in ${netns} exited with ${code}: ${output.trim()}`))));
  });
}

/** Programs a lab pod's namespace as Istio would for these settings. */
export async function programCapture(netns: string, ic: Interception): Promise<void> {
  await runIstioIptables(netns, istioInitOf(injectFor([ic])[0]!));
}
