// Follows the ConfigMaps of a namespace that a label selector picks: list them, then
// watch from the list's resourceVersion; a watch that ends is resumed from the last
// version seen, a 410 Gone or any failure leads to a new list after a backoff. Of
// each object only its name, labels, annotations and data are kept: the agent needs
// nothing else (managedFields alone are larger than a registration).

import { createInterface } from "node:readline";
import { get, getJson, type KubeEndpoint } from "./kube-api.js";

export interface ConfigMapWatch {
  /** True once a list has succeeded; stays true through later failures. */
  synced(): boolean;
  /** The objects as last seen. */
  objects(): Iterable<ConfigMapLike>;
  /** One of them by name, as last seen. */
  get(name: string): ConfigMapLike | undefined;
  /** Resolves after the first list was tried (whether or not it worked). */
  start(): Promise<void>;
  stop(): Promise<void>;
}

export interface ConfigMapWatchOptions {
  endpoint: KubeEndpoint;
  namespace: string;
  labelSelector: string;
  /** With the object an event was about (as it was then); without one after a new list, when any may have changed. */
  onChange: (changed?: ConfigMapLike) => void;
  onError: (error: Error, retryInMs: number) => void;
  retryMinMs?: number;
  retryMaxMs?: number;
  /** The server ends each watch after about this long; it is then resumed. */
  watchSeconds?: number;
}

export interface ConfigMapLike {
  metadata?: { name?: string; resourceVersion?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  data?: Record<string, string>;
}

function kept(cm: ConfigMapLike): ConfigMapLike {
  const { name, labels, annotations } = cm.metadata ?? {};
  return { metadata: { name, labels, annotations }, data: cm.data };
}

interface WatchEvent {
  type: "ADDED" | "MODIFIED" | "DELETED" | "BOOKMARK" | "ERROR";
  object: ConfigMapLike & { code?: number; message?: string };
}

export function watchConfigMaps(opts: ConfigMapWatchOptions): ConfigMapWatch {
  const retryMinMs = opts.retryMinMs ?? 500;
  const retryMaxMs = opts.retryMaxMs ?? 30_000;
  const collection = `/api/v1/namespaces/${encodeURIComponent(opts.namespace)}/configmaps`;
  const selector = `labelSelector=${encodeURIComponent(opts.labelSelector)}`;
  const what = `ConfigMaps ${opts.labelSelector} in ${opts.namespace}`;
  let objects = new Map<string, ConfigMapLike>();
  let synced = false;
  let stopped = false;
  let failures = 0;
  let retry: NodeJS.Timeout | undefined;
  let wake: () => void = () => undefined;
  const abort = new AbortController();

  const list = async (): Promise<string> => {
    const l = await getJson<{ metadata?: { resourceVersion?: string }; items?: ConfigMapLike[] }>(opts.endpoint, `${collection}?${selector}`, abort.signal);
    objects = new Map((l.items ?? []).map((i) => [i.metadata?.name ?? "", kept(i)]));
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
        throw new Error(`watch of ${what}: ${event.object.message ?? JSON.stringify(event.object)}`);
      }
      version = event.object.metadata?.resourceVersion ?? version;
      if (event.type === "BOOKMARK") continue;
      const name = event.object.metadata?.name ?? "";
      const object = kept(event.object);
      if (event.type === "DELETED") objects.delete(name);
      else objects.set(name, object);
      failures = 0;
      opts.onChange(object);
    }
    return version;
  };

  const run = async (first: () => void): Promise<void> => {
    let version: string | null = null;
    while (!stopped) {
      try {
        if (version === null) {
          try {
            version = await list();
          } finally {
            first();
          }
          opts.onChange();
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
    objects: () => objects.values(),
    get: (name) => objects.get(name),
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

