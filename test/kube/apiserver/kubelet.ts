// A kubelet (and scheduler) for one node, reduced to what other components observe:
// the pod gets bound to the node, then gets IPs and a phase, all written through the
// API (pods/binding, pods/status) so every watch sees the same transitions a real
// cluster would show.

import { CoreV1Api, PatchStrategy, setHeaderOptions, type KubeConfig, type V1Pod } from "@kubernetes/client-node";
import { formatIp, parseCidr } from "../../../registry/ip.js";
import { timestampNow } from "./resources.js";

export interface KubeletOptions {
  /** IPv4 range pod IPs are drawn from when the caller names none. */
  podCidr?: string;
  /** The node's address, reported as status.hostIP. */
  hostIP?: string;
}

export type FinalPhase = "Succeeded" | "Failed";

export class Kubelet {
  private readonly api: CoreV1Api;
  private readonly cidr: { base: Uint8Array; size: number };
  private nextOffset = 2; // .0 is the network, .1 the node's bridge
  private readonly hostIP: string;

  constructor(kubeConfig: KubeConfig, readonly nodeName: string, options: KubeletOptions = {}) {
    this.api = kubeConfig.makeApiClient(CoreV1Api);
    const cidr = parseCidr(options.podCidr ?? "10.244.0.0/24");
    if (cidr.family !== 4) throw new Error(`kubelet ${nodeName}: podCidr ${options.podCidr} must be IPv4`);
    this.cidr = { base: cidr.bytes, size: 2 ** (32 - cidr.prefix) };
    this.hostIP = options.hostIP ?? "127.0.0.1";
  }

  private allocateIp(): string {
    if (this.nextOffset >= this.cidr.size - 1) throw new Error(`kubelet ${this.nodeName}: pod CIDR exhausted`);
    const base = this.cidr.base;
    const value = (((base[0]! << 24) | (base[1]! << 16) | (base[2]! << 8) | base[3]!) >>> 0) + this.nextOffset++;
    return formatIp(Uint8Array.of(value >>> 24, (value >>> 16) & 0xff, (value >>> 8) & 0xff, value & 0xff));
  }

  /** What the scheduler does: spec.nodeName through pods/binding (409 if bound elsewhere). */
  async bind(namespace: string, name: string): Promise<V1Pod> {
    await this.api.createNamespacedPodBinding({
      namespace, name,
      body: { apiVersion: "v1", kind: "Binding", metadata: { name, namespace }, target: { apiVersion: "v1", kind: "Node", name: this.nodeName } },
    });
    return this.api.readNamespacedPod({ namespace, name });
  }

  private patchStatus(namespace: string, name: string, status: Record<string, unknown>): Promise<V1Pod> {
    return this.api.patchNamespacedPodStatus({ namespace, name, body: { status } },
      setHeaderOptions("Content-Type", PatchStrategy.MergePatch));
  }

  /**
   * Binds the pod here if it is not bound yet, then reports it Running with the given
   * IPs (or one from the pod CIDR).
   */
  async run(namespace: string, name: string, podIPs: string[] = []): Promise<V1Pod> {
    let pod = await this.api.readNamespacedPod({ namespace, name });
    if (!pod.spec?.nodeName) pod = await this.bind(namespace, name);
    if (pod.spec?.nodeName !== this.nodeName) {
      throw new Error(`kubelet ${this.nodeName}: pod ${namespace}/${name} is bound to node ${pod.spec?.nodeName}`);
    }
    const ips = podIPs.length > 0 ? podIPs : [this.allocateIp()];
    const at = timestampNow();
    const conditions = ["PodScheduled", "Initialized", "ContainersReady", "Ready"]
      .map((type) => ({ type, status: "True", lastTransitionTime: at }));
    return this.patchStatus(namespace, name, {
      phase: "Running", hostIP: this.hostIP, hostIPs: [{ ip: this.hostIP }],
      podIP: ips[0], podIPs: ips.map((ip) => ({ ip })), startTime: at, conditions,
    });
  }

  /** The pod's containers exited; it keeps its IPs in status, as a real kubelet leaves them. */
  finish(namespace: string, name: string, phase: FinalPhase): Promise<V1Pod> {
    const at = timestampNow();
    return this.patchStatus(namespace, name, {
      phase,
      conditions: [
        { type: "PodScheduled", status: "True", lastTransitionTime: at },
        { type: "Ready", status: "False", reason: "PodCompleted", lastTransitionTime: at },
        { type: "ContainersReady", status: "False", reason: "PodCompleted", lastTransitionTime: at },
      ],
    });
  }
}
