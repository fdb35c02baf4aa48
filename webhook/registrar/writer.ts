// Writes pod keys into the node ConfigMaps. Every write is a JSON merge patch naming
// only the keys it changes (removal is `key: null`), so writers never overwrite each
// other's keys and need no resourceVersion: two replicas can write at once.
//
// One queue per node: while a write to a node is in flight, further changes for it
// are collected, a newer change to a key replacing an older one, and go out together
// in the next patch. So a node's keys are written in the order they were decided,
// and a burst of pods costs a few patches, not one per pod. A failed write is retried
// with backoff; changes decided meanwhile win over the failed batch's.

import { CoreV1Api, PatchStrategy, setHeaderOptions, type V1ConfigMap } from "@kubernetes/client-node";
import { setTimeout as sleep } from "node:timers/promises";
import { performance } from "node:perf_hooks";
import type { Logger } from "pino";
import { apiStatusCode, describeApiError } from "../../registry/kube-errors.js";
import { nodeConfigMapName, PART_OF_LABEL, PART_OF_VALUE, SYSTEM_NAMESPACE } from "../../registry/names.js";
import type { RegistrarMetrics } from "./metrics.js";
import type { KeyChanges } from "./repair.js";

const MERGE_PATCH = setHeaderOptions("Content-Type", PatchStrategy.MergePatch);
const LABELS = { [PART_OF_LABEL]: PART_OF_VALUE };

export interface WriterOptions {
  core: CoreV1Api;
  log: Logger;
  metrics: RegistrarMetrics;
  retryMinMs?: number;
  retryMaxMs?: number;
}

interface NodeQueue {
  pending: KeyChanges;
  draining: Promise<void> | null;
}

/** How a batch reached the ConfigMap, for the log line. */
type WriteOutcome = "patched" | "created" | "patched-after-create-race" | "nothing-to-remove";

export class ConfigMapWriter {
  private readonly queues = new Map<string, NodeQueue>();
  private readonly stopping = new AbortController();

  constructor(private readonly opts: WriterOptions) {}

  /** Queues a key change for a node's ConfigMap: a value to set, or null to remove the key. */
  set(node: string, key: string, value: string | null): void {
    this.setAll(node, new Map([[key, value]]));
  }

  setAll(node: string, changes: KeyChanges): void {
    if (this.stopping.signal.aborted || changes.size === 0) return;
    let queue = this.queues.get(node);
    if (!queue) this.queues.set(node, (queue = { pending: new Map(), draining: null }));
    for (const [key, value] of changes) queue.pending.set(key, value);
    this.updatePendingGauge();
    if (!queue.draining) {
      const q = queue;
      q.draining = this.drain(node, q).finally(() => {
        q.draining = null;
      });
    }
  }

  /** Resolves when every queued change has been written (or the writer stopped). */
  async idle(): Promise<void> {
    for (;;) {
      const draining = [...this.queues.values()].map((q) => q.draining).filter((d) => d !== null);
      if (draining.length === 0) return;
      await Promise.all(draining);
    }
  }

  /** Drops what is queued; a write in flight finishes. */
  async stop(): Promise<void> {
    this.stopping.abort();
    await this.idle();
  }

  private updatePendingGauge(): void {
    let n = 0;
    for (const q of this.queues.values()) n += q.pending.size;
    this.opts.metrics.pendingKeys.set(n);
  }

  private async drain(node: string, queue: NodeQueue): Promise<void> {
    const retryMinMs = this.opts.retryMinMs ?? 200;
    const retryMaxMs = this.opts.retryMaxMs ?? 10_000;
    let failuresInARow = 0;
    while (queue.pending.size > 0 && !this.stopping.signal.aborted) {
      const batch = queue.pending;
      queue.pending = new Map();
      try {
        await this.write(node, batch);
        failuresInARow = 0;
      } catch (e) {
        for (const [key, value] of batch) if (!queue.pending.has(key)) queue.pending.set(key, value);
        const retryInMs = Math.min(retryMaxMs, retryMinMs * 2 ** failuresInARow++);
        this.opts.log.warn({ node, configMap: nodeConfigMapName(node), keys: batch.size, err: (e as Error).message, retryInMs }, "registry write failed; will retry");
        try {
          await sleep(retryInMs, undefined, { signal: this.stopping.signal });
        } catch {
          return; // stopped
        }
      } finally {
        this.updatePendingGauge();
      }
    }
    if (this.stopping.signal.aborted) queue.pending.clear();
  }

  private async write(node: string, batch: KeyChanges): Promise<void> {
    const name = nodeConfigMapName(node);
    const started = performance.now();
    const outcome = await this.patchOrCreate(name, Object.fromEntries(batch));
    const seconds = (performance.now() - started) / 1000;
    this.opts.metrics.writeDuration.observe(seconds);
    const set = [...batch].filter(([, v]) => v !== null).map(([k]) => k);
    const removed = [...batch].filter(([, v]) => v === null).map(([k]) => k);
    this.opts.metrics.keys.inc({ change: "set" }, set.length);
    this.opts.metrics.keys.inc({ change: "remove" }, removed.length);
    this.opts.log.info({ node, configMap: `${SYSTEM_NAMESPACE}/${name}`, outcome, set, removed, ms: Math.round(seconds * 10_000) / 10 }, "registry write");
  }

  /** One API request, counted by op and result. */
  private async request<T>(op: "patch" | "create", call: () => Promise<T>): Promise<T> {
    try {
      const result = await call();
      this.opts.metrics.writes.inc({ op, result: "ok" });
      return result;
    } catch (e) {
      this.opts.metrics.writes.inc({ op, result: "error" });
      throw e;
    }
  }

  /** The merge patch; on 404 the ConfigMap is created with the keys being set. */
  private async patchOrCreate(name: string, data: Record<string, string | null>): Promise<WriteOutcome> {
    const { core } = this.opts;
    // The label rides along on every patch, so a ConfigMap made by hand gets it too.
    const patch = () =>
      this.request("patch", () => core.patchNamespacedConfigMap({ name, namespace: SYSTEM_NAMESPACE, body: { metadata: { labels: LABELS }, data } }, MERGE_PATCH));
    try {
      await patch();
      return "patched";
    } catch (e) {
      if (apiStatusCode(e) !== 404) throw new Error(`ConfigMap ${SYSTEM_NAMESPACE}/${name}: merge patch failed: ${describeApiError(e)}`);
    }
    const values = Object.fromEntries(Object.entries(data).filter((e): e is [string, string] => e[1] !== null));
    // No ConfigMap holds no keys: the removals are already done.
    if (Object.keys(values).length === 0) return "nothing-to-remove";
    const body: V1ConfigMap = { metadata: { name, namespace: SYSTEM_NAMESPACE, labels: LABELS }, data: values };
    try {
      await this.request("create", () => core.createNamespacedConfigMap({ namespace: SYSTEM_NAMESPACE, body }));
      return "created";
    } catch (e) {
      if (apiStatusCode(e) !== 409) throw new Error(`ConfigMap ${SYSTEM_NAMESPACE}/${name}: create failed: ${describeApiError(e)}`);
    }
    // Another writer created it between our 404 and our create: merge into theirs.
    try {
      await patch();
      return "patched-after-create-race";
    } catch (e) {
      throw new Error(`ConfigMap ${SYSTEM_NAMESPACE}/${name}: merge patch after a create race failed: ${describeApiError(e)}`);
    }
  }
}
