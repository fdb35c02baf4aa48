// `meshlane-webhook serve` flags → a checked configuration. Pure, so the CLI's
// defaults and error messages are tested without starting anything.

import { parseArgs } from "node:util";
import { SERVICE_DNS_NAMES } from "../certs/authority.js";
import { DEFAULT_POLICY_TIMES } from "../certs/renewal.js";
import { DEFAULT_BODY_LIMIT } from "./server.js";

export const DEFAULT_PORT = 9443;
export const DEFAULT_CERT_DIR = "/etc/meshlane/webhook-certs";

export const USAGE = `Usage: meshlane-webhook serve [flags]

Serves the meshlane admission webhook over HTTPS (TLS 1.2+): POST /mutate,
GET /healthz, /readyz, /metrics.

Certificates:
  --cert-dir DIR          tls.crt, tls.key (and ca.crt, ca.key) live here
                          (default ${DEFAULT_CERT_DIR}); reloaded when they change
  --self-signed           issue a CA and serving certificate and renew them before
                          they expire; without it the files are issued elsewhere
  --cert-secret NAME      with --self-signed: keep them in this Secret of
                          meshlane-system instead of --cert-dir (shared by replicas)
  --san NAME              extra DNS name or IP for the serving certificate
                          (repeatable; the Service names are always included)
  --cert-validity DUR     serving certificate lifetime (default 90d)
  --renew-before DUR      renew when less than this is left (default 30d)
  --check-interval DUR    how often certificates are checked (default 1m)
  --webhook-config NAME   MutatingWebhookConfiguration whose caBundle is kept equal
                          to the CA (needs in-cluster or kubeconfig credentials)

Serving:
  --port N                HTTPS port (default ${DEFAULT_PORT}); 0 picks a free one
  --host ADDR             listen address (default 0.0.0.0)
  --body-limit BYTES      largest accepted review (default ${DEFAULT_BODY_LIMIT})
  --audit-log DEST        "stdout" (default) or a file path for the audit lines

Registrar (same process):
  --registrar             keep one registry ConfigMap in meshlane-system per
                          accelerated pod with an IP on a node (docs/registry.md)
  --registrar-resync DUR  how often every registry object is compared with the pods
                          and repaired (default 1m)

Kubernetes credentials (for --registrar, --cert-secret, --webhook-config):
  --kubeconfig FILE       default: $KUBECONFIG, else the pod's service account

  -h, --help              this text

Durations: a number with s, m, h or d (e.g. 90d, 12h, 30s).
SIGTERM or SIGINT: stop accepting, finish requests in flight, exit 0.
`;

export interface ServeOptions {
  port: number;
  host: string;
  certDir: string;
  selfSigned: boolean;
  certSecret: string | undefined;
  names: string[];
  certValidityMs: number;
  renewBeforeMs: number;
  checkIntervalMs: number;
  webhookConfig: string | undefined;
  bodyLimit: number;
  auditLog: "stdout" | { file: string };
  /** Run the registrar beside the webhook; undefined when not asked for. */
  registrar: { resyncMs: number } | undefined;
  kubeconfig: string | undefined;
}

export type ParsedCommand = { command: "help" } | { command: "serve"; options: ServeOptions };

export class UsageError extends Error {
  override name = "UsageError";
}

const UNIT_MS: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

export function parseDuration(text: string, flag: string): number {
  const m = /^(\d+(?:\.\d+)?)([smhd])$/.exec(text.trim());
  if (!m) throw new UsageError(`${flag}: ${JSON.stringify(text)} is not a duration like 30s, 10m, 12h or 90d`);
  return Number(m[1]) * UNIT_MS[m[2]!]!;
}

function integer(text: string, flag: string, min: number, max: number): number {
  if (!/^\d+$/.test(text) || Number(text) < min || Number(text) > max) {
    throw new UsageError(`${flag}: ${JSON.stringify(text)} is not an integer in ${min}-${max}`);
  }
  return Number(text);
}

export function parseServeArgs(argv: string[]): ParsedCommand {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        help: { type: "boolean", short: "h" },
        port: { type: "string" },
        host: { type: "string" },
        "cert-dir": { type: "string" },
        "self-signed": { type: "boolean" },
        "cert-secret": { type: "string" },
        san: { type: "string", multiple: true },
        "cert-validity": { type: "string" },
        "renew-before": { type: "string" },
        "check-interval": { type: "string" },
        "webhook-config": { type: "string" },
        "body-limit": { type: "string" },
        "audit-log": { type: "string" },
        registrar: { type: "boolean" },
        "registrar-resync": { type: "string" },
        kubeconfig: { type: "string" },
      },
    });
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  const { values: v, positionals } = parsed;
  if (v.help || positionals.length === 0 || positionals[0] === "help") return { command: "help" };
  if (positionals[0] !== "serve" || positionals.length > 1) throw new UsageError(`unknown command ${JSON.stringify(positionals.join(" "))}; try --help`);
  if (v["cert-secret"] && !v["self-signed"]) throw new UsageError("--cert-secret needs --self-signed (a Secret issued elsewhere is mounted with --cert-dir)");
  if (v["registrar-resync"] && !v.registrar) throw new UsageError("--registrar-resync needs --registrar");

  const certValidityMs = parseDuration(v["cert-validity"] ?? `${DEFAULT_POLICY_TIMES.servingValidityMs / UNIT_MS.d!}d`, "--cert-validity");
  const renewBeforeMs = parseDuration(v["renew-before"] ?? `${DEFAULT_POLICY_TIMES.renewBeforeMs / UNIT_MS.d!}d`, "--renew-before");
  if (renewBeforeMs >= certValidityMs) throw new UsageError("--renew-before must be shorter than --cert-validity");
  const auditLog = v["audit-log"] ?? "stdout";
  return {
    command: "serve",
    options: {
      port: integer(v.port ?? String(DEFAULT_PORT), "--port", 0, 65535),
      host: v.host ?? "0.0.0.0",
      certDir: v["cert-dir"] ?? DEFAULT_CERT_DIR,
      selfSigned: v["self-signed"] ?? false,
      certSecret: v["cert-secret"],
      names: [...new Set([...SERVICE_DNS_NAMES, ...(v.san ?? [])])],
      certValidityMs,
      renewBeforeMs,
      checkIntervalMs: parseDuration(v["check-interval"] ?? "1m", "--check-interval"),
      webhookConfig: v["webhook-config"],
      bodyLimit: integer(v["body-limit"] ?? String(DEFAULT_BODY_LIMIT), "--body-limit", 1024, 1024 * 1024 * 1024),
      auditLog: auditLog === "stdout" ? "stdout" : { file: auditLog },
      registrar: v.registrar ? { resyncMs: parseDuration(v["registrar-resync"] ?? "1m", "--registrar-resync") } : undefined,
      kubeconfig: v.kubeconfig,
    },
  };
}
