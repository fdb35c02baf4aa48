// Writes registry objects (registry/configmap.ts): one ConfigMap per pod, created or
// merge-patched with the pod's document, deleted when the pod leaves. A write names
// one pod's object only, so its cost does not grow with the node's pod count, writers
// never overwrite each other's pods, and no resourceVersion is needed: two replicas
// writing the same document at once both succeed.
//
// One pending change per pod, a newer change replacing an older one; at most
// `concurrency` requests in flight, and never two for the same pod, so a pod's
// changes land in the order they were decided. A failed write is retried with
// backoff, unless a newer change for the pod was decided meanwhile (queued or
// already written): a retried create must never bring back a pod deleted since.

import { CoreV1Api, PatchStrategy, setHeaderOptions } from "@kubernetes/client-node";
import { performance } from "node:perf_hooks";
import type { Logger } from "pino";
import { apiStatusCode, describeApiError } from "../../registry/kube-errors.js";
import { registrationObject, registrationObjectName, registrationPatch, REGISTRY_NAMESPACE } from "../../registry/configmap.js";
import type { RegistrarMetrics } from "./metrics.js";
import type { Change, Changes } from "./repair.js";

const MERGE_PATCH = setHeaderOptions("Content-Type", PatchStrategy.MergePatch);

export interface WriterOptions {
  core: CoreV1Api;
  log: Logger;
  metrics: RegistrarMetrics;
  /** Requests in flight at once (default 16). */
  concurrency?: number;
  retryMinMs?: number;
  retryMaxMs?: number;
}

/** How a change reached the API server, for the log line. */
type WriteOutcome = "created" | "patched" | "created-after-404" | "patched-after-409" | "deleted" | "already-gone";

/** A change with the order it was decided in. */
type Queued = Change & { seq: number };

export class RegistryWriter {
  private readonly pending = new Map<string, Queued>();
  /** pod UID → seq of its newest change not yet written. */
  private readonly newest = new Map<string, number>();
  private seq = 0;
  private readonly inFlight = new Set<string>();
  private readonly retries = new Set<NodeJS.Timeout>();
  /** Pods whose object this writer has seen exist: patched first, not created first. */
  private readonly exists = new Set<string>();
  private failuresInARow = 0;
  private stopped = false;
  private waiters: (() => void)[] = [];

  constructor(private readonly opts: WriterOptions) {}

  /** Queues one pod's change: its document on `node`, or null to delete its object. */
  set(uid: string, change: Change): void {
    this.setAll(new Map([[uid, change]]));
  }

  setAll(changes: Changes): void {
    if (this.stopped) return;
    for (const [uid, change] of changes) {
      const seq = ++this.seq;
      this.pending.set(uid, { ...change, seq });
      this.newest.set(uid, seq);
    }
    this.pump();
  }

  /** Resolves when every queued change has been written (or the writer stopped). */
  idle(): Promise<void> {
    if (this.isIdle()) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  /** Drops what is queued; writes in flight finish. */
  async stop(): Promise<void> {
    this.stopped = true;
    for (const t of this.retries) clearTimeout(t);
    this.retries.clear();
    this.pending.clear();
    this.newest.clear();
    this.pump();
    await this.idle();
  }

  private isIdle(): boolean {
    return this.inFlight.size === 0 && this.retries.size === 0 && (this.pending.size === 0 || this.stopped);
  }

  private pump(): void {
    const limit = this.opts.concurrency ?? 16;
    if (!this.stopped) {
      for (const [uid, change] of this.pending) {
        if (this.inFlight.size >= limit) break;
        if (this.inFlight.has(uid)) continue;
        this.pending.delete(uid);
        this.inFlight.add(uid);
        void this.write(uid, change).finally(() => {
          this.inFlight.delete(uid);
          this.pump();
        });
      }
    }
    this.opts.metrics.pendingKeys.set(this.pending.size + this.inFlight.size);
    if (this.isIdle()) {
      const waiters = this.waiters;
      this.waiters = [];
      for (const w of waiters) w();
    }
  }

  private async write(uid: string, change: Queued): Promise<void> {
    const started = performance.now();
    try {
      const outcome = change.document === null ? await this.remove(uid) : await this.put(uid, change.node, change.document);
      const seconds = (performance.now() - started) / 1000;
      this.failuresInARow = 0;
      if (this.newest.get(uid) === change.seq) this.newest.delete(uid);
      this.opts.metrics.writeDuration.observe(seconds);
      this.opts.metrics.keys.inc({ change: change.document === null ? "remove" : "set" });
      this.opts.log.info({ node: change.node, uid, object: `${REGISTRY_NAMESPACE}/${registrationObjectName(uid)}`, outcome, ms: Math.round(seconds * 10_000) / 10 }, "registry write");
    } catch (e) {
      if (this.stopped) return;
      const retryMinMs = this.opts.retryMinMs ?? 200;
      const retryInMs = Math.min(this.opts.retryMaxMs ?? 10_000, retryMinMs * 2 ** this.failuresInARow++);
      this.opts.log.warn({ node: change.node, uid, err: (e as Error).message, retryInMs }, "registry write failed; will retry");
      const timer = setTimeout(() => {
        this.retries.delete(timer);
        if (this.newest.get(uid) === change.seq && !this.pending.has(uid)) this.pending.set(uid, change);
        this.pump();
      }, retryInMs);
      this.retries.add(timer);
    }
  }

  /** One API request, counted by op and result. */
  private async request<T>(op: "create" | "patch" | "delete", call: () => Promise<T>): Promise<T> {
    try {
      const result = await call();
      this.opts.metrics.writes.inc({ op, result: "ok" });
      return result;
    } catch (e) {
      this.opts.metrics.writes.inc({ op, result: "error" });
      throw e;
    }
  }

  private async put(uid: string, node: string, document: string): Promise<WriteOutcome> {
    const { core } = this.opts;
    const name = registrationObjectName(uid);
    const where = `ConfigMap ${REGISTRY_NAMESPACE}/${name}`;
    const create = () => this.request("create", () => core.createNamespacedConfigMap({ namespace: REGISTRY_NAMESPACE, body: registrationObject(node, uid, document) }));
    const patch = () =>
      this.request("patch", () => core.patchNamespacedConfigMap({ name, namespace: REGISTRY_NAMESPACE, body: registrationPatch(node, uid, document) }, MERGE_PATCH));
    // Creating is the common case (a new pod); an update patches an object known to exist.
    // Either can meet the other's case (another replica, a resync, a deletion by hand).
    if (this.exists.has(uid)) {
      try {
        await patch();
        return "patched";
      } catch (e) {
        if (apiStatusCode(e) !== 404) throw new Error(`${where}: merge patch failed: ${describeApiError(e)}`);
      }
      try {
        await create();
        return "created-after-404";
      } catch (e) {
        throw new Error(`${where}: create after 404 failed: ${describeApiError(e)}`);
      }
    }
    try {
      await create();
      this.exists.add(uid);
      return "created";
    } catch (e) {
      if (apiStatusCode(e) !== 409) throw new Error(`${where}: create failed: ${describeApiError(e)}`);
    }
    try {
      await patch();
      this.exists.add(uid);
      return "patched-after-409";
    } catch (e) {
      throw new Error(`${where}: merge patch after 409 failed: ${describeApiError(e)}`);
    }
  }

  private async remove(uid: string): Promise<WriteOutcome> {
    const name = registrationObjectName(uid);
    this.exists.delete(uid);
    try {
      await this.request("delete", () => this.opts.core.deleteNamespacedConfigMap({ name, namespace: REGISTRY_NAMESPACE }));
      return "deleted";
    } catch (e) {
      if (apiStatusCode(e) === 404) return "already-gone";
      throw new Error(`ConfigMap ${REGISTRY_NAMESPACE}/${name}: delete failed: ${describeApiError(e)}`);
    }
  }
}
