// Follows one ConfigMap: list it (by a field selector on its name), then watch from
// the list's resourceVersion; a watch that ends is resumed from the last version
// seen, a 410 Gone or any failure leads to a new list after a backoff. Only the
// object's `data` is kept: the agent needs nothing else, and a node's ConfigMap
// of 1,000 pods is half a megabyte of JSON per event.

import { createInterface } from "node:readline";
import { get, getJson, type KubeEndpoint } from "./kube-api.js";

export interface ConfigMapWatch {
  /** True once a list has succeeded; stays true through later failures. */
  synced(): boolean;
  /** The ConfigMap's data as last seen; undefined when it does not exist. */
  data(): Record<string, string> | undefined;
  /** Resolves after the first list was tried (whether or not it worked). */
  start(): Promise<void>;
  stop(): Promise<void>;
}

export interface ConfigMapWatchOptions {
  endpoint: KubeEndpoint;
  namespace: string;
  name: string;
  onChange: () => void;
  onError: (error: Error, retryInMs: number) => void;
  retryMinMs?: number;
  retryMaxMs?: number;
  /** The server ends each watch after about this long; it is then resumed. */
  watchSeconds?: number;
}

interface ConfigMapLike {
  metadata?: { name?: string; resourceVersion?: string };
  data?: Record<string, string>;
}

interface WatchEvent {
  type: "ADDED" | "MODIFIED" | "DELETED" | "BOOKMARK" | "ERROR";
  object: ConfigMapLike & { code?: number; message?: string };
}

export function watchConfigMap(opts: ConfigMapWatchOptions): ConfigMapWatch {
  const retryMinMs = opts.retryMinMs ?? 500;
  const retryMaxMs = opts.retryMaxMs ?? 30_000;
  const collection = `/api/v1/namespaces/${encodeURIComponent(opts.namespace)}/configmaps`;
  const selector = `fieldSelector=${encodeURIComponent(`metadata.name=${opts.name}`)}`;
  let data: Record<string, string> | undefined;
  let synced = false;
  let stopped = false;
  let failures = 0;
  let retry: NodeJS.Timeout | undefined;
  let wake: () => void = () => undefined;
  const abort = new AbortController();

  const list = async (): Promise<string> => {
    const l = await getJson<{ metadata?: { resourceVersion?: string }; items?: ConfigMapLike[] }>(opts.endpoint, `${collection}?${selector}`, abort.signal);
    data = l.items?.find((i) => i.metadata?.name === opts.name)?.data ?? undefined;
    synced = true;
    return l.metadata?.resourceVersion ?? "";
  };

  /** Watches until the server ends the stream; returns the last version seen, or null when a new list is needed. */
  const watch = async (from: string): Promise<string | null> => {
    const watchSeconds = opts.watchSeconds ?? 300;
    const res = await get(opts.endpoint, `${collection}?${selector}&watch=1&allowWatchBookmarks=true&timeoutSeconds=${watchSeconds}&resourceVersion=${encodeURIComponent(from)}`, abort.signal);
    let version: string | null = from;
    for await (const line of createInterface({ input: res, crlfDelay: Infinity })) {
      if (!line) continue;
      const event = JSON.parse(line) as WatchEvent;
      if (event.type === "ERROR") {
        if (event.object.code === 410) return null; // too old: list again
        throw new Error(`watch of ConfigMap ${opts.namespace}/${opts.name}: ${event.object.message ?? JSON.stringify(event.object)}`);
      }
      version = event.object.metadata?.resourceVersion ?? version;
      if (event.type === "BOOKMARK") continue;
      data = event.type === "DELETED" ? undefined : (event.object.data ?? {});
      failures = 0;
      opts.onChange();
    }
    return version;
  };

  const run = async (first: () => void): Promise<void> => {
    let version: string | null = null;
    while (!stopped) {
      try {
        if (version === null) {
          const before = data;
          try {
            version = await list();
          } finally {
            first();
          }
          if (before !== data) opts.onChange();
        }
        version = await watch(version);
        failures = 0;
      } catch (e) {
        if (stopped) return;
        version = null;
        const retryInMs = Math.min(retryMaxMs, retryMinMs * 2 ** failures++);
        opts.onError(e instanceof Error ? e : new Error(String(e)), retryInMs);
        await new Promise<void>((r) => {
          wake = r;
          retry = setTimeout(r, retryInMs);
        });
      }
    }
  };

  let running: Promise<void> | undefined;
  return {
    synced: () => synced,
    data: () => data,
    start: () =>
      new Promise<void>((resolve) => {
        running = run(resolve);
      }),
    async stop() {
      stopped = true;
      clearTimeout(retry);
      wake();
      abort.abort();
      await running?.catch(() => undefined);
    },
  };
}

