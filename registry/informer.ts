// A client-node informer (ListWatch) that keeps going. client-node resumes a watch
// by itself after a timeout or a 410, but any other failure (API server restarting,
// connection refused, 5xx) ends the informer with an "error" event; this restarts it
// with exponential backoff, resuming from the last resourceVersion it saw. Its cache
// keeps the last known objects meanwhile, and `synced()` tells whether that cache has
// ever been filled by a successful list.

import { ListWatch, Watch, type KubeConfig, type KubernetesListObject, type KubernetesObject, type ObjectCache } from "@kubernetes/client-node";

export type InformerEvent = "add" | "update" | "delete";

export interface InformerOptions<T extends KubernetesObject> {
  kubeConfig: KubeConfig;
  /** Collection path, e.g. /api/v1/pods or /api/v1/namespaces/NS/configmaps. */
  path: string;
  /** Lists the same collection with the same selectors as the watch. */
  list: () => Promise<KubernetesListObject<T>>;
  labelSelector?: string;
  fieldSelector?: string;
  onEvent: (event: InformerEvent, object: T) => void;
  /** A failed list or watch; the informer is restarted after `retryInMs`. */
  onError: (error: unknown, retryInMs: number) => void;
  retryMinMs?: number;
  retryMaxMs?: number;
}

export interface ResilientInformer<T extends KubernetesObject> {
  cache: ObjectCache<T>;
  /** True once a list has filled the cache; stays true through later failures. */
  synced(): boolean;
  /** Resolves after the first list and watch were tried (whether or not they worked). */
  start(): Promise<void>;
  stop(): Promise<void>;
}

export function resilientInformer<T extends KubernetesObject>(opts: InformerOptions<T>): ResilientInformer<T> {
  const retryMinMs = opts.retryMinMs ?? 500;
  const retryMaxMs = opts.retryMaxMs ?? 30_000;
  const informer = new ListWatch<T>(opts.path, new Watch(opts.kubeConfig), opts.list, false, opts.labelSelector, opts.fieldSelector);
  let synced = false;
  let stopped = false;
  let failuresInARow = 0;
  let failedThisAttempt = false;
  let retryTimer: NodeJS.Timeout | undefined;

  for (const event of ["add", "update", "delete"] as const) informer.on(event, (object) => opts.onEvent(event, object));

  const attempt = async (): Promise<void> => {
    failedThisAttempt = false;
    await informer.start();
    if (!failedThisAttempt && !stopped) {
      synced = true;
      failuresInARow = 0;
    }
  };

  informer.on("error", (error) => {
    failedThisAttempt = true;
    if (stopped) return;
    const retryInMs = Math.min(retryMaxMs, retryMinMs * 2 ** failuresInARow++);
    opts.onError(error, retryInMs);
    clearTimeout(retryTimer);
    retryTimer = setTimeout(() => void attempt(), retryInMs);
  });

  return {
    cache: informer,
    synced: () => synced,
    start: attempt,
    async stop() {
      stopped = true;
      clearTimeout(retryTimer);
      await informer.stop();
    },
  };
}
