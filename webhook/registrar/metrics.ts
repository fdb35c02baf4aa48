// The registrar's Prometheus metrics, registered on the registry it is given (the
// webhook's, so one /metrics endpoint shows both halves of the process).

import { Counter, Gauge, Histogram, type Registry } from "prom-client";
import type { RefusalReason } from "./desired.js";

export interface RegistrarMetrics {
  writes: Counter<"op" | "result">;
  keys: Counter<"change">;
  writeDuration: Histogram;
  resyncs: Counter<"result">;
  repairs: Counter<"kind">;
  registeredPods: Gauge;
  refusedPods: Gauge<"reason">;
  pendingKeys: Gauge;
  watchRestarts: Counter;
}

export const REFUSAL_REASONS: readonly RefusalReason[] = ["decision-disagrees", "bad-pod-ip"];

export function createRegistrarMetrics(registry: Registry): RegistrarMetrics {
  const registers = [registry];
  return {
    writes: new Counter({
      name: "meshlane_registrar_writes_total",
      help: "Requests for registry objects (one ConfigMap per pod): op is create, patch or delete; result is ok or error",
      labelNames: ["op", "result"],
      registers,
    }),
    keys: new Counter({ name: "meshlane_registrar_keys_total", help: "Pod registrations written, by change (set, remove)", labelNames: ["change"], registers }),
    writeDuration: new Histogram({
      name: "meshlane_registrar_write_duration_seconds",
      help: "Time of one pod's registry write, including a patch after 409 or a create after 404",
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
      registers,
    }),
    resyncs: new Counter({ name: "meshlane_registrar_resyncs_total", help: "Full comparisons of the registry objects with the pods, by result", labelNames: ["result"], registers }),
    repairs: new Counter({ name: "meshlane_registrar_repairs_total", help: "Registrations a resync found wrong, by kind (missing, stale, stray)", labelNames: ["kind"], registers }),
    registeredPods: new Gauge({ name: "meshlane_registrar_registered_pods", help: "Pods this replica has registered", registers }),
    refusedPods: new Gauge({
      name: "meshlane_registrar_refused_pods",
      help: "Marked pods kept out of the registry, by reason (decision-disagrees: the webhook's decision, run again, does not agree with the pod's markings; bad-pod-ip)",
      labelNames: ["reason"],
      registers,
    }),
    pendingKeys: new Gauge({ name: "meshlane_registrar_pending_keys", help: "Pod registrations queued or in flight, not yet written", registers }),
    watchRestarts: new Counter({ name: "meshlane_registrar_watch_restarts_total", help: "Times the pod watch failed and was restarted", registers }),
  };
}
