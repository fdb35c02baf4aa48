// The registrar: keeps one registry object (registry/configmap.ts) per marked,
// running pod, and none for any other (docs/registry.md).
//
// It watches only the pods the webhook labelled as accelerated (MARKED_POD_SELECTOR),
// so its cache holds meshlane's pods, not the cluster's. Two paths write, both through
// the same queue (writer.ts):
//  - Pod events from that watch: a pod that gains an IP on a node is registered; one
//    that is deleted, finishes, loses its label or fails the re-check is not.
//    What this replica has registered is remembered, so pod updates that change
//    nothing the registry holds (conditions, other labels) cost no write.
//  - A periodic resync from fresh lists (not the informer's cache): every registry
//    object against every marked pod, repairing deleted objects, strays and stale
//    documents. It is what corrects a replica whose informer lags: such a replica may
//    re-register a pod another replica just removed, and removes it itself once its
//    informer sees the deletion, or the next resync of either replica does.
//
// Replicas need no leader: every write touches one pod's object, and every replica
// computes the same document for the same pod.

import { CoreV1Api, type KubeConfig, type V1Pod } from "@kubernetes/client-node";
import type { Logger } from "pino";
import type { Registry } from "prom-client";
import { listRegistrations } from "../../registry/configmap.js";
import { resilientInformer, type InformerEvent, type ResilientInformer } from "../../registry/informer.js";
import { describeApiError } from "../../registry/kube-errors.js";
import { MARKED_POD_SELECTOR } from "../../registry/names.js";
import { desiredFor, type Registered, type RefusalReason } from "./desired.js";
import { createRegistrarMetrics, REFUSAL_REASONS, type RegistrarMetrics } from "./metrics.js";
import { planRepairs, type Repairs } from "./repair.js";
import { RegistryWriter } from "./writer.js";

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
  repairs: Omit<Repairs, "changes">;
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
  const writer = new RegistryWriter({ core, log, metrics, ...(opts.retryMinMs ? { retryMinMs: opts.retryMinMs } : {}) });
  const resyncMs = opts.resyncMs ?? DEFAULT_REGISTRAR_RESYNC_MS;
  /** pod UID → what this replica has registered (or queued) for it. */
  let placed = new Map<string, Registered>();
  /** pod UID → why a marked pod is kept out. */
  let refused = new Map<string, RefusalReason>();
  let stopped = false;
  let resyncTimer: NodeJS.Timeout | undefined;
  const listMarkedPods = () => core.listPodForAllNamespaces({ labelSelector: MARKED_POD_SELECTOR });

  const updateGauges = (): void => {
    metrics.registeredPods.set(placed.size);
    for (const reason of REFUSAL_REASONS) metrics.refusedPods.set({ reason }, [...refused.values()].filter((r) => r === reason).length);
  };

  const onPod = (event: InformerEvent, pod: V1Pod): void => {
    const uid = pod.metadata?.uid;
    if (!uid) return;
    const had = placed.get(uid);
    const desired = event === "delete" ? undefined : desiredFor(pod);
    if (desired && !desired.registered && desired.refused) {
      if (refused.get(uid) !== desired.refused) log.warn({ uid, reason: desired.refused, why: desired.why }, "marked pod not registered");
      refused.set(uid, desired.refused);
    } else refused.delete(uid);
    if (desired?.registered) {
      // spec.nodeName cannot change once set: a UID stays on one node. A pod that
      // "moves" is a new pod (new UID) on the other node.
      const want = desired.registration;
      if (!had || had.document !== want.document) {
        writer.set(uid, { node: want.node, document: want.document });
        placed.set(uid, want);
      }
    } else if (had) {
      writer.set(uid, { node: had.node, document: null });
      placed.delete(uid);
      log.debug({ uid, why: desired?.why ?? "pod deleted or no longer labelled" }, "registration removed");
    }
    updateGauges();
  };

  const resync = async (): Promise<ResyncReport> => {
    try {
      // Objects first, pods second, both read fresh from the API server: an object
      // written after the objects were read is not in `actual`, so it cannot be taken
      // for a stray of a pod the (later) pod list does not show.
      const actual = await listRegistrations(core);
      const pods = await listMarkedPods();
      const desired = new Map<string, Registered>();
      const nowRefused = new Map<string, RefusalReason>();
      for (const pod of pods.items) {
        const d = desiredFor(pod);
        if (d.registered) desired.set(d.registration.uid, d.registration);
        else if (d.refused && pod.metadata?.uid) nowRefused.set(pod.metadata.uid, d.refused);
      }
      const { changes, ...counts } = planRepairs(actual, desired);
      writer.setAll(changes);
      for (const kind of ["missing", "stale", "stray"] as const) metrics.repairs.inc({ kind }, counts[kind]);
      if (changes.size > 0) log.info(counts, "resync repairs the registry");
      placed = desired;
      refused = nowRefused;
      updateGauges();
      metrics.resyncs.inc({ result: "ok" });
      return { pods: pods.items.length, repairs: counts };
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

  // The first resync learns what the registry holds, so the informer's initial list
  // (an "add" per existing pod) writes only what is actually missing. If it fails,
  // the informer's adds write every registration (harmless, only more writes).
  await resync().catch((e: Error) => log.error({ err: e.message }, "first resync failed; continuing from the pod watch"));
  const informer: ResilientInformer<V1Pod> = resilientInformer<V1Pod>({
    kubeConfig: opts.kubeConfig,
    path: "/api/v1/pods",
    list: listMarkedPods,
    labelSelector: MARKED_POD_SELECTOR,
    onEvent: onPod,
    onError: (e, retryInMs) => {
      metrics.watchRestarts.inc();
      log.warn({ err: describeApiError(e), retryInMs }, "pod watch failed; restarting");
    },
    ...(opts.retryMinMs ? { retryMinMs: opts.retryMinMs } : {}),
  });
  await informer.start();
  scheduleResync();
  log.info({ resyncMs, registered: placed.size, podSelector: MARKED_POD_SELECTOR }, "registrar running");

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
