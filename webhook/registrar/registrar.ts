// The registrar: keeps ConfigMap meshlane-node-<node> holding one key per marked,
// running pod on that node (design.md, "Registry contract").
//
// Two paths write, both through the same per-node queues (writer.ts):
//  - Pod events from an informer: a pod that gains an IP on a node gets its key; one
//    that is deleted, finishes or loses its mark loses it.
//    What this replica has placed is remembered, so pod updates that change nothing
//    the registry holds (conditions, labels) cost no write.
//  - A periodic resync from fresh lists (not the informer's cache): every node
//    ConfigMap against every pod, repairing deleted ConfigMaps, stray keys and stale
//    values. It is what corrects a replica whose informer lags: such a replica may
//    re-add the key of a pod another replica just removed, and it removes that key
//    itself once its informer sees the deletion, or the next resync of either replica
//    does.
//
// Replicas need no leader: every write is a merge patch of single keys, and every
// replica computes the same value for the same pod.

import { CoreV1Api, type KubeConfig, type V1Pod } from "@kubernetes/client-node";
import type { Logger } from "pino";
import type { Registry } from "prom-client";
import { resilientInformer, type InformerEvent, type ResilientInformer } from "../../registry/informer.js";
import { describeApiError } from "../../registry/kube-errors.js";
import { nodeConfigMapName, SYSTEM_NAMESPACE } from "../../registry/names.js";
import { desiredByNode, desiredFor, type Placement } from "./desired.js";
import { createRegistrarMetrics, type RegistrarMetrics } from "./metrics.js";
import { planRepairs, type NodeRepair } from "./repair.js";
import { ConfigMapWriter } from "./writer.js";

const NODE_CONFIGMAP_PREFIX = nodeConfigMapName("");
export const DEFAULT_REGISTRAR_RESYNC_MS = 60_000;

export interface RegistrarOptions {
  kubeConfig: KubeConfig;
  log: Logger;
  /** The metrics are registered here (the webhook's registry, normally). */
  metricsRegistry: Registry;
  resyncMs?: number;
  /** First retry delay of failed writes and watches (doubling up to a cap). */
  retryMinMs?: number;
}

export interface ResyncReport {
  pods: number;
  nodes: number;
  repairs: NodeRepair[];
}

export interface Registrar {
  /** One full comparison now; its repairs are queued (idle() says when they are written). */
  resync(): Promise<ResyncReport>;
  /** Resolves when every change decided so far has been written. */
  idle(): Promise<void>;
  metrics: RegistrarMetrics;
  stop(): Promise<void>;
}

export async function startRegistrar(opts: RegistrarOptions): Promise<Registrar> {
  const log = opts.log.child({ component: "registrar" });
  const core = opts.kubeConfig.makeApiClient(CoreV1Api);
  const metrics = createRegistrarMetrics(opts.metricsRegistry);
  const writer = new ConfigMapWriter({ core, log, metrics, ...(opts.retryMinMs ? { retryMinMs: opts.retryMinMs } : {}) });
  const resyncMs = opts.resyncMs ?? DEFAULT_REGISTRAR_RESYNC_MS;
  /** pod UID → where this replica has put (or queued) its key. */
  let placed = new Map<string, Placement>();
  let stopped = false;
  let resyncTimer: NodeJS.Timeout | undefined;

  const onPod = (event: InformerEvent, pod: V1Pod): void => {
    const uid = pod.metadata?.uid;
    if (!uid) return;
    const had = placed.get(uid);
    const desired = event === "delete" ? undefined : desiredFor(pod);
    if (desired && !desired.registered && desired.invalid) log.warn({ uid, why: desired.why }, "marked pod left out of the registry");
    if (desired?.registered) {
      // spec.nodeName cannot change once set: a UID's key stays on one node. A pod that
      // "moves" is a new pod (new UID) on the other node, and the old one's deletion
      // removes the old key.
      const want = desired.placement;
      if (had && had.value === want.value) return;
      writer.set(want.node, uid, want.value);
      placed.set(uid, want);
    } else if (had) {
      writer.set(had.node, uid, null);
      placed.delete(uid);
      log.debug({ uid, why: desired?.why ?? "pod deleted" }, "key removed");
    }
    metrics.registeredPods.set(placed.size);
  };

  const resync = async (): Promise<ResyncReport> => {
    try {
      // ConfigMaps first, pods second, both read fresh from the API server: a key
      // written after the ConfigMaps were read is not in `actual`, so it cannot be
      // taken for a stray key of a pod the (later) pod list does not show.
      const configMaps = await core.listNamespacedConfigMap({ namespace: SYSTEM_NAMESPACE });
      const actual = new Map<string, Record<string, string>>();
      for (const cm of configMaps.items) {
        const name = cm.metadata?.name ?? "";
        if (name.startsWith(NODE_CONFIGMAP_PREFIX)) actual.set(name.slice(NODE_CONFIGMAP_PREFIX.length), cm.data ?? {});
      }
      const pods = await core.listPodForAllNamespaces();
      const desired = desiredByNode(pods.items);
      const repairs = planRepairs(actual, desired);
      for (const repair of repairs) {
        writer.setAll(repair.node, repair.changes);
        for (const kind of ["missing", "stale", "stray"] as const) metrics.repairs.inc({ kind }, repair[kind]);
        log.info({ node: repair.node, missing: repair.missing, stale: repair.stale, stray: repair.stray }, "resync repairs node ConfigMap");
      }
      placed = new Map([...desired].flatMap(([node, entries]) => [...entries].map(([key, value]) => [key, { node, key, value }] as const)));
      metrics.registeredPods.set(placed.size);
      metrics.resyncs.inc({ result: "ok" });
      return { pods: pods.items.length, nodes: desired.size, repairs };
    } catch (e) {
      metrics.resyncs.inc({ result: "error" });
      throw new Error(`registrar resync: ${describeApiError(e)}`);
    }
  };

  const scheduleResync = (): void => {
    if (stopped) return;
    resyncTimer = setTimeout(() => {
      resync()
        .catch((e: Error) => log.error({ err: e.message }, "resync failed; next one as scheduled"))
        .finally(scheduleResync);
    }, resyncMs);
  };

  // The first resync learns what the ConfigMaps hold, so the informer's initial list
  // (an "add" per existing pod) writes only what is actually missing. If it fails,
  // the informer's adds write every key (harmless, only more writes).
  await resync().catch((e: Error) => log.error({ err: e.message }, "first resync failed; continuing from the pod watch"));
  const informer: ResilientInformer<V1Pod> = resilientInformer<V1Pod>({
    kubeConfig: opts.kubeConfig,
    path: "/api/v1/pods",
    list: () => core.listPodForAllNamespaces(),
    onEvent: onPod,
    onError: (e, retryInMs) => {
      metrics.watchRestarts.inc();
      log.warn({ err: describeApiError(e), retryInMs }, "pod watch failed; restarting");
    },
    ...(opts.retryMinMs ? { retryMinMs: opts.retryMinMs } : {}),
  });
  await informer.start();
  scheduleResync();
  log.info({ resyncMs, registered: placed.size }, "registrar running");

  return {
    resync,
    idle: () => writer.idle(),
    metrics,
    async stop() {
      stopped = true;
      clearTimeout(resyncTimer);
      await informer.stop();
      await writer.stop();
      log.info("registrar stopped");
    },
  };
}
