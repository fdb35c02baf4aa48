// The webhook's HTTPS server (Fastify 5). HTTPS only, TLS 1.2 or newer; the serving
// certificate can be replaced while running (setSecureContext), so rotation needs no
// restart and drops no request: connections already open keep their session, new ones
// get the new certificate.

import type { Server } from "node:https";
import type { AddressInfo } from "node:net";
import { performance } from "node:perf_hooks";
import Fastify, { type FastifyError, type FastifyInstance, type FastifyReply, type FastifyRequest } from "fastify";
import type { Logger } from "pino";
import { certificateFacts } from "../certs/certificate-set.js";
import { auditRefusal, auditReview, digestPatch } from "./audit.js";
import { decide } from "./decision.js";
import { createWebhookMetrics, type WebhookMetrics } from "./metrics.js";
import { admissionResponse, parseAdmissionReview } from "./review.js";

export const DEFAULT_BODY_LIMIT = 6 * 1024 * 1024;
export const MIN_TLS_VERSION = "TLSv1.2";
/** The API server gives up on a webhook after at most 30 s; a slower request is stuck. */
const REQUEST_TIMEOUT_MS = 30_000;

export interface ServingIdentity {
  /** Serving certificate, leaf first. */
  certPem: string;
  keyPem: string;
}

export interface WebhookServerOptions {
  /** May be given later with setIdentity; until then TLS handshakes fail and /readyz cannot answer. */
  identity?: ServingIdentity;
  bodyLimit?: number;
  audit: Logger;
  now?: () => Date;
}

export interface WebhookServer {
  app: FastifyInstance<Server>;
  metrics: WebhookMetrics;
  /** Loads a certificate into the running server's TLS context. */
  setIdentity(identity: ServingIdentity): void;
  listen(port: number, host?: string): Promise<AddressInfo>;
  close(): Promise<void>;
}

/** Fastify's refusals, mapped to what the answer and the metrics call them. */
const REFUSALS: Record<string, { problem: string; message: (limit: number) => string }> = {
  FST_ERR_CTP_INVALID_MEDIA_TYPE: { problem: "unsupported-media-type", message: () => "content type must be application/json" },
  FST_ERR_CTP_BODY_TOO_LARGE: { problem: "body-too-large", message: (limit) => `body exceeds the limit of ${limit} bytes` },
  FST_ERR_CTP_INVALID_JSON_BODY: { problem: "invalid-json", message: () => "body is not valid JSON" },
  FST_ERR_CTP_EMPTY_JSON_BODY: { problem: "invalid-json", message: () => "body is empty; an AdmissionReview was expected" },
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: { problem: "bad-content-length", message: () => "content-length does not match the body" },
};

function tlsOptions(identity: ServingIdentity | undefined): { minVersion: "TLSv1.2"; cert?: string; key?: string } {
  return { minVersion: MIN_TLS_VERSION, ...(identity ? { cert: identity.certPem, key: identity.keyPem } : {}) };
}

export function createWebhookServer(opts: WebhookServerOptions): WebhookServer {
  const bodyLimit = opts.bodyLimit ?? DEFAULT_BODY_LIMIT;
  const now = opts.now ?? (() => new Date());
  const metrics = createWebhookMetrics();
  const app = Fastify({
    https: tlsOptions(opts.identity),
    bodyLimit,
    logger: false,
    requestTimeout: REQUEST_TIMEOUT_MS,
    onProtoPoisoning: "error",
    onConstructorPoisoning: "error",
  });
  // Only JSON is an AdmissionReview; without this, text/plain bodies would be accepted.
  app.removeContentTypeParser("text/plain");

  let notAfter: Date | undefined;
  const recordIdentity = (identity: ServingIdentity): void => {
    notAfter = certificateFacts(identity.certPem).notAfter;
    metrics.certificateNotAfter.set(notAfter.getTime() / 1000);
    metrics.certificateReloads.inc();
  };
  if (opts.identity) recordIdentity(opts.identity);
  const setIdentity = (identity: ServingIdentity): void => {
    try {
      app.server.setSecureContext(tlsOptions(identity));
    } catch (e) {
      throw new Error(`loading a serving certificate into the TLS context: ${(e as Error).message}`);
    }
    recordIdentity(identity);
  };

  // Fastify times replies only with its own logger on; this clock starts at arrival.
  const arrivals = new WeakMap<FastifyRequest, number>();
  app.addHook("onRequest", async (req) => {
    arrivals.set(req, performance.now());
  });
  const elapsedMs = (req: FastifyRequest): number => performance.now() - (arrivals.get(req) ?? performance.now());

  const refuse = (req: FastifyRequest, reply: FastifyReply, status: number, problem: string, message: string): FastifyReply => {
    metrics.errors.inc({ problem });
    auditRefusal(opts.audit, status, problem, message, elapsedMs(req));
    return reply.code(status).send({ error: problem, message });
  };

  app.setErrorHandler((err: FastifyError, req, reply) => {
    const known = err.code ? REFUSALS[err.code] : undefined;
    if (known) return refuse(req, reply, err.statusCode ?? 400, known.problem, known.message(bodyLimit));
    if (err.statusCode !== undefined && err.statusCode >= 400 && err.statusCode < 500) {
      return refuse(req, reply, err.statusCode, "bad-request", err.message);
    }
    // The message may carry internals; the audit log keeps it, the answer does not.
    metrics.errors.inc({ problem: "internal" });
    opts.audit.error({ decision: "error", status: 500, err: { message: err.message, stack: err.stack } }, "admission request failed");
    return reply.code(500).send({ error: "internal", message: "internal error while reviewing; see the webhook's audit log" });
  });

  app.post("/mutate", async (req, reply) => {
    const parsed = parseAdmissionReview(req.body);
    if (!parsed.ok) return refuse(req, reply, 400, parsed.code, parsed.problem);
    const { apiVersion, request } = parsed.review;
    const outcome = decide(request);
    const patchJson = outcome.patch.length > 0 ? JSON.stringify(outcome.patch) : undefined;
    const latencyMs = elapsedMs(req);
    metrics.reviews.inc({ decision: outcome.decision, reason: outcome.reason });
    metrics.latency.observe({ decision: outcome.decision }, latencyMs / 1000);
    auditReview(opts.audit, request, outcome, digestPatch(patchJson), latencyMs);
    return admissionResponse(apiVersion, request.uid, patchJson);
  });

  app.get("/healthz", async () => ({ status: "ok" }));

  app.get("/readyz", async (_req, reply) => {
    if (!notAfter) return reply.code(503).send({ status: "not ready", reason: "no serving certificate loaded" });
    if (notAfter <= now()) return reply.code(503).send({ status: "not ready", reason: `serving certificate expired at ${notAfter.toISOString()}` });
    return { status: "ready", certificateNotAfter: notAfter.toISOString() };
  });

  app.get("/metrics", async (_req, reply) => {
    return reply.type(metrics.registry.contentType).send(await metrics.registry.metrics());
  });

  return {
    app,
    metrics,
    setIdentity,
    async listen(port, host = "0.0.0.0") {
      await app.listen({ port, host });
      return app.server.address() as AddressInfo;
    },
    close: () => app.close(),
  };
}
