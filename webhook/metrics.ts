// Prometheus metrics of one webhook server. Each server has its own registry, so several
// can live in one process (tests, the registrar beside the webhook).

import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";

export interface WebhookMetrics {
  registry: Registry;
  reviews: Counter<"decision" | "reason">;
  latency: Histogram<"decision">;
  errors: Counter<"problem">;
  certificateNotAfter: Gauge;
  certificateReloads: Counter;
}

export function createWebhookMetrics(): WebhookMetrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: "meshlane_webhook_" });
  return {
    registry,
    reviews: new Counter({
      name: "meshlane_webhook_reviews_total",
      help: "Admission reviews answered, by decision and reason",
      labelNames: ["decision", "reason"],
      registers: [registry],
    }),
    latency: new Histogram({
      name: "meshlane_webhook_review_duration_seconds",
      help: "Time from request arrival to decision, by decision",
      labelNames: ["decision"],
      buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25],
      registers: [registry],
    }),
    errors: new Counter({
      name: "meshlane_webhook_errors_total",
      help: "Requests refused or failed, by problem",
      labelNames: ["problem"],
      registers: [registry],
    }),
    certificateNotAfter: new Gauge({
      name: "meshlane_webhook_certificate_not_after_seconds",
      help: "Expiry of the serving certificate in use (unix seconds)",
      registers: [registry],
    }),
    certificateReloads: new Counter({
      name: "meshlane_webhook_certificate_reloads_total",
      help: "Serving certificates loaded into the TLS context",
      registers: [registry],
    }),
  };
}
