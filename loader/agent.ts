// `meshlane-loader run`: keeps the maps equal to a registry source, serves
// /metrics, /healthz and /status, and stops cleanly. Stopping (or crashing)
// changes nothing for traffic: programs and maps stay pinned; registrations
// simply stop being updated until a loader runs again.

import { createServer, type Server } from "node:http";
import { mkdirSync, renameSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";
import type { Logger } from "pino";
import { createMetrics, type LoaderMetrics } from "./metrics.js";
import { openPinnedMaps, type PinnedMaps } from "./pinned.js";
import { mapHandles } from "./map-handle.js";
import { changedKeys, GONE, NodeSync, type SyncReport } from "./sync.js";

export interface RegistrySource {
  describe(): string;
  /**
   * The registry now: pod UID → registration document (unvalidated). With `keys`, at
   * least those of them that exist (a key missing from the answer is deregistered).
   */
  read(keys?: readonly string[]): Record<string, unknown> | Promise<Record<string, unknown>>;
  /** `onChange` names the keys that changed, or none when any may have (e.g. after a new list). */
  start(onChange: (keys?: readonly string[]) => void): void | Promise<void>;
  stop(): void | Promise<void>;
}

/** How often the state file is rewritten at most. */
const STATE_FILE_MS = 1_000;

export interface AgentOptions {
  pinDir: string;
  kubepods: string;
  source: RegistrySource;
  log: Logger;
  /** Address for /metrics, /healthz, /status; port 0 picks a free one. */
  listen?: { host: string; port: number };
  /** Between full syncs, which read the maps as the truth. */
  resyncMs?: number;
  /** Retry interval while a registered pod's cgroup does not exist yet. */
  pendingRetryMs?: number;
  /** Where the last report is written for `meshlane-loader status`. */
  stateFile?: string;
}

export interface Agent {
  /** Resolves after the next full sync (the maps read, every registration planned) has finished. */
  syncNow(): Promise<SyncReport | null>;
  lastReport(): SyncReport | null;
  address(): { host: string; port: number } | null;
  stop(): Promise<void>;
}

export async function startAgent(opts: AgentOptions): Promise<Agent> {
  const resyncMs = opts.resyncMs ?? 10_000;
  const pendingRetryMs = opts.pendingRetryMs ?? 1_000;
  const maps: PinnedMaps = openPinnedMaps(opts.pinDir);
  const metrics: LoaderMetrics = createMetrics(maps.maps);
  const state = new NodeSync(mapHandles(maps.fds), opts.kubepods);
  let report: SyncReport | null = null;
  let lastError: string | null = null;
  let lastOkAt = 0;
  let stopped = false;
  // The work waiting for the next sync. Whatever arrives while one runs is applied together by the next.
  let fullDue = true;
  let anyChanged = false;
  let dirty = new Set<string>();
  let waiters: ((r: SyncReport | null) => void)[] = [];
  let running: Promise<void> | null = null;
  let resyncTimer: NodeJS.Timeout | undefined;
  let retryTimer: NodeJS.Timeout | undefined;

  const stateFile = throttledStateFile(opts.stateFile, STATE_FILE_MS);

  const failed = (reason: string, e: unknown): null => {
    // Nothing was written: the maps keep what they had, and traffic stays accelerated as it was.
    lastError = (e as Error).message;
    metrics.recordSyncError(reason);
    opts.log.error({ err: lastError, source: opts.source.describe(), reason }, "sync failed before writing anything; maps left as they were");
    return null;
  };

  /** One sync: full when due (or needed), else of the keys that changed. */
  const once = async (): Promise<SyncReport | null> => {
    const started = process.hrtime.bigint();
    const full = fullDue || state.needsFull();
    const everything = anyChanged;
    const keys = [...dirty];
    fullDue = false;
    anyChanged = false;
    dirty = new Set();
    const requeue = () => {
      // Not applied: it is still to be done.
      if (full) fullDue = true;
      if (everything) anyChanged = true;
      for (const k of keys) dirty.add(k);
    };
    let registry: Record<string, unknown>;
    try {
      registry = await opts.source.read(full || everything ? undefined : keys);
    } catch (e) {
      requeue();
      return failed("registry-unreadable", e);
    }
    let r: SyncReport;
    try {
      if (full) r = state.full(registry);
      else {
        // Named keys are applied even when their document is unchanged: a pod waiting for its cgroup is retried so.
        const changes = everything ? changedKeys(state.registry(), registry) : new Map();
        for (const k of keys) if (!changes.has(k)) changes.set(k, k in registry ? registry[k] : GONE);
        r = state.update(changes);
      }
    } catch (e) {
      requeue();
      return failed("maps-unreadable", e);
    }
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    metrics.recordSync(r, seconds);
    logReport(opts.log, r, seconds);
    report = r;
    lastError = null;
    lastOkAt = Date.now();
    stateFile.wrote(r);
    if (full) {
      clearTimeout(resyncTimer);
      resyncTimer = setTimeout(() => {
        fullDue = true;
        kick();
      }, resyncMs);
    }
    return r;
  };

  const retryPending = () => {
    if (stopped || retryTimer) return;
    const pending = state.pendingCgroup();
    if (pending.length === 0) return;
    retryTimer = setTimeout(() => {
      retryTimer = undefined;
      for (const k of state.pendingCgroup()) dirty.add(k);
      kick();
    }, pendingRetryMs);
  };

  // One sync at a time; started on the next turn of the event loop, so a burst of
  // watch events read from one chunk is applied as one sync.
  const kick = () => {
    if (running || stopped) return;
    running = new Promise<void>((resolve) => setImmediate(resolve)).then(async () => {
      let ok = true;
      while (!stopped && (fullDue || anyChanged || dirty.size > 0 || waiters.length > 0)) {
        const waiting = waiters;
        waiters = [];
        const r = await once();
        for (const w of waiting) w(r);
        retryPending();
        if (!r) {
          ok = false;
          break;
        }
      }
      running = null;
      if (!ok && !stopped) {
        // Failed before writing: the work stays queued, for the next change or a resync from now.
        clearTimeout(resyncTimer);
        resyncTimer = setTimeout(kick, resyncMs);
      }
    });
  };

  const syncNow = (): Promise<SyncReport | null> =>
    new Promise((resolve) => {
      fullDue = true;
      waiters.push(resolve);
      kick();
    });

  const changed = (keys?: readonly string[]) => {
    if (keys) for (const k of keys) dirty.add(k);
    else anyChanged = true;
    kick();
  };

  const server = opts.listen ? await serve(opts.listen, metrics, () => ({ report, lastError, lastOkAt, resyncMs })) : null;
  await opts.source.start(changed);
  await syncNow();
  opts.log.info({ source: opts.source.describe(), kubepods: opts.kubepods, pinDir: opts.pinDir, metrics: server?.address() }, "loader running");

  return {
    syncNow,
    lastReport: () => report,
    address() {
      const a = server?.address();
      return a && typeof a === "object" ? { host: a.address, port: a.port } : null;
    },
    async stop() {
      stopped = true;
      clearTimeout(resyncTimer);
      clearTimeout(retryTimer);
      await running;
      for (const w of waiters.splice(0)) w(null);
      stateFile.flush();
      await opts.source.stop();
      if (server) await new Promise<void>((r) => server.close(() => r()));
      maps.close();
      opts.log.info("loader stopped; programs stay attached");
    },
  };
}

/** One line per pod this sync planned that is not in the maps as registered, then what it wrote and did not write. */
function logReport(log: Logger, r: SyncReport, seconds: number): void {
  const touched = new Set(r.touched);
  for (const p of r.pods) {
    if (p.state === "registered" || p.state === "pending-cgroup" || !touched.has(p.uid)) continue;
    log.warn({ uid: p.uid, pod: p.name ? `${p.namespace}/${p.name}` : undefined, state: p.state, reason: p.reason, problem: p.problem }, "registration not applied");
  }
  const notApplied = r.pods.filter((p) => p.state === "not-applied").map((p) => p.uid);
  const skippedEntries = r.notWritten.reduce((n, w) => n + w.entries, 0);
  if (!r.writes && !r.deletes && !skippedEntries) return;
  const registered = r.pods.filter((p) => p.state === "registered").length;
  const summary = { written: r.writes, deleted: r.deletes, registered, pods: r.pods.length, notApplied, entriesNotWritten: skippedEntries, seconds };
  if (skippedEntries) log.warn({ ...summary, notWritten: r.notWritten }, "maps updated except for the pods in notApplied, which are as they were");
  else log.info(summary, "maps updated");
}

/**
 * The state file, written at most every `everyMs` (the last report always ends up in
 * it): at 1,000 pods it is about 250 KiB of JSON, which is more than a sync of one
 * change costs, and `meshlane-loader status` needs it only for names.
 */
function throttledStateFile(path: string | undefined, everyMs: number): { wrote(report: SyncReport): void; flush(): void } {
  let lastAt = 0;
  let due: SyncReport | null = null;
  let timer: NodeJS.Timeout | undefined;
  const flush = () => {
    clearTimeout(timer);
    timer = undefined;
    if (!path || !due) return;
    mkdirSync(dirname(path), { recursive: true });
    writeFileSync(`${path}.tmp`, JSON.stringify({ at: new Date().toISOString(), pods: due.pods }, null, 2));
    renameSync(`${path}.tmp`, path);
    due = null;
    lastAt = Date.now();
  };
  return {
    wrote(report) {
      due = report;
      const wait = lastAt + everyMs - Date.now();
      if (wait <= 0) flush();
      else timer ??= setTimeout(flush, wait);
    },
    flush,
  };
}

function serve(
  listen: { host: string; port: number },
  metrics: LoaderMetrics,
  health: () => { report: SyncReport | null; lastError: string | null; lastOkAt: number; resyncMs: number },
): Promise<Server> {
  const server = createServer(async (req, res) => {
    const url = (req.url ?? "/").split("?")[0];
    try {
      if (url === "/metrics") {
        res.writeHead(200, { "content-type": metrics.registry.contentType });
        res.end(await metrics.registry.metrics());
      } else if (url === "/healthz") {
        const h = health();
        // Healthy while the maps followed the registry recently; a failing registry shows here after three resyncs.
        const ok = h.lastOkAt > 0 && Date.now() - h.lastOkAt < 3 * h.resyncMs + 5_000;
        res.writeHead(ok ? 200 : 503, { "content-type": "text/plain" });
        res.end(ok ? "ok\n" : `not in sync: ${h.lastError ?? "no successful sync yet"}\n`);
      } else if (url === "/status") {
        res.writeHead(200, { "content-type": "application/json" });
        res.end(JSON.stringify(health().report));
      } else {
        res.writeHead(404, { "content-type": "text/plain" });
        res.end("not found: try /metrics, /healthz or /status\n");
      }
    } catch (e) {
      res.writeHead(500, { "content-type": "text/plain" });
      res.end(`error: ${(e as Error).message}\n`);
    }
  });
  // Scrapers keep connections alive; closing an idle one after Node's 5 s default races with
  // a scrape that reuses it just then (seen as ECONNRESET while a long sync blocked the loop).
  server.keepAliveTimeout = 65_000;
  return new Promise((resolve, reject) => {
    server.once("error", (e) => reject(new Error(`cannot listen on ${listen.host}:${listen.port}: ${e.message}`)));
    server.listen(listen.port, listen.host, () => resolve(server));
  });
}
