// A kubelet (and the scheduler's one write) for one node, reduced to what other
// components observe, all through the real API: the scheduler binds the pod
// (pods/binding, with the scheduler's rights: the admin identity here), then the
// node — with its own identity, system:node:<name>, so the Node authorizer and
// NodeRestriction decide — registers its Node and reports the pod Running with its IPs
// (pods/status).

import { CoreV1Api, PatchStrategy, setHeaderOptions, type V1Pod } from "@kubernetes/client-node";
import { setTimeout as sleep } from "node:timers/promises";
import { apiStatusCode, describeApiError } from "../../registry/kube-errors.js";
import type { Identity } from "./index.js";

export type FinalPhase = "Succeeded" | "Failed";

/** The Node authorizer learns a binding from its own watch; its graph lags the binding by a moment. */
const GRAPH_LAG_MS = 10_000;

export class Kubelet {
  private readonly scheduler: CoreV1Api;
  private readonly node: CoreV1Api;
  private registered = false;

  constructor(readonly nodeName: string, identities: { node: Identity; scheduler: Identity }, private readonly hostIP = "127.0.0.1") {
    if (identities.node.user !== `system:node:${nodeName}`) throw new Error(`kubelet ${nodeName}: identity ${identities.node.user} is not this node's`);
    this.node = identities.node.kubeConfig.makeApiClient(CoreV1Api);
    this.scheduler = identities.scheduler.kubeConfig.makeApiClient(CoreV1Api);
  }

  /** The kubelet creates its own Node object at start (NodeRestriction allows exactly that one). */
  async register(): Promise<void> {
    if (this.registered) return;
    try {
      await this.node.createNode({ body: { metadata: { name: this.nodeName, labels: { "kubernetes.io/hostname": this.nodeName } } } });
    } catch (e) {
      if (apiStatusCode(e) !== 409) throw e;
    }
    this.registered = true;
  }

  /** What the scheduler does: spec.nodeName through pods/binding (409 if bound elsewhere). */
  async bind(namespace: string, name: string): Promise<void> {
    await this.scheduler.createNamespacedPodBinding({
      namespace, name,
      body: { apiVersion: "v1", kind: "Binding", metadata: { name, namespace }, target: { apiVersion: "v1", kind: "Node", name: this.nodeName } },
    });
  }

  /** pods/status as the node; retried while the Node authorizer has not yet seen the binding (403). */
  private async patchStatus(namespace: string, name: string, status: Record<string, unknown>): Promise<V1Pod> {
    const deadline = Date.now() + GRAPH_LAG_MS;
    for (;;) {
      try {
        return await this.node.patchNamespacedPodStatus({ namespace, name, body: { status } }, setHeaderOptions("Content-Type", PatchStrategy.MergePatch));
      } catch (e) {
        if (apiStatusCode(e) !== 403 || Date.now() > deadline) throw new Error(`kubelet ${this.nodeName}: pods/status of ${namespace}/${name}: ${describeApiError(e)}`);
        await sleep(50);
      }
    }
  }

  /** Binds the pod here if it is not bound yet, then reports it Running with these IPs. */
  async run(namespace: string, name: string, podIPs: string[]): Promise<V1Pod> {
    if (podIPs.length === 0) throw new Error(`kubelet ${this.nodeName}: pod ${namespace}/${name} needs at least one IP`);
    await this.register();
    const pod = await this.scheduler.readNamespacedPod({ namespace, name });
    if (!pod.spec?.nodeName) await this.bind(namespace, name);
    else if (pod.spec.nodeName !== this.nodeName) throw new Error(`kubelet ${this.nodeName}: pod ${namespace}/${name} is bound to node ${pod.spec.nodeName}`);
    const at = new Date().toISOString().replace(/\.\d+Z$/, "Z");
    const conditions = ["PodScheduled", "Initialized", "ContainersReady", "Ready"].map((type) => ({ type, status: "True", lastTransitionTime: at }));
    return this.patchStatus(namespace, name, {
      phase: "Running", hostIP: this.hostIP, hostIPs: [{ ip: this.hostIP }],
      podIP: podIPs[0], podIPs: podIPs.map((ip) => ({ ip })), startTime: at, conditions,
    });
  }

  /** The pod's containers exited; it keeps its IPs in status, as a real kubelet leaves them. */
  finish(namespace: string, name: string, phase: FinalPhase): Promise<V1Pod> {
    const at = new Date().toISOString().replace(/\.\d+Z$/, "Z");
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
