// The little of the Kubernetes API the node agent needs: its credentials and
// HTTP GETs (one-shot and streaming), over node:https. The agent runs on every node,
// so it does not load @kubernetes/client-node: importing that library alone costs
// about 80 MiB of resident memory (its generated models), most of the agent's
// budget (docs/loader.md, Memory).
//
// Credentials are found as registry/kube-config.ts finds them for the other
// processes: an explicit kubeconfig file, else $KUBECONFIG, else the pod's service
// account. A kubeconfig user may hold a token, a token file or a client
// certificate; exec and auth-provider plugins (interactive, cloud logins) are not
// for a node agent and are refused with a message saying so.

import { readFileSync } from "node:fs";
import { request as httpRequest, type IncomingMessage } from "node:http";
import { request as httpsRequest } from "node:https";
import { dirname, resolve } from "node:path";
import { load as loadYaml } from "js-yaml";

export interface KubeEndpoint {
  server: string;
  ca?: Buffer;
  cert?: Buffer;
  key?: Buffer;
  /** Read for each request: projected service-account tokens are rotated in place. */
  token?: () => string;
  insecureSkipTlsVerify?: boolean;
  tlsServerName?: string;
}

const SERVICE_ACCOUNT = "/var/run/secrets/kubernetes.io/serviceaccount";

export function loadKubeEndpoint(file?: string, env: NodeJS.ProcessEnv = process.env): KubeEndpoint {
  try {
    if (file) return fromKubeconfig([file]);
    if (env.KUBECONFIG) return fromKubeconfig(env.KUBECONFIG.split(":").filter(Boolean));
    if (env.KUBERNETES_SERVICE_HOST) return inCluster(env.KUBERNETES_SERVICE_HOST, env.KUBERNETES_SERVICE_PORT ?? "443");
  } catch (e) {
    throw new Error(`loading the Kubernetes configuration${file ? ` from ${file}` : ""}: ${(e as Error).message}`);
  }
  throw new Error("no credentials: pass --kubeconfig FILE, set KUBECONFIG, or run in a pod with a service account");
}

function inCluster(host: string, port: string): KubeEndpoint {
  const tokenFile = `${SERVICE_ACCOUNT}/token`;
  return {
    server: `https://${host.includes(":") ? `[${host}]` : host}:${port}`,
    ca: readFileSync(`${SERVICE_ACCOUNT}/ca.crt`),
    token: () => readFileSync(tokenFile, "utf8").trim(),
  };
}

type Named<T> = { name: string } & T;
interface Kubeconfig {
  "current-context"?: string;
  clusters?: Named<{ cluster: Record<string, unknown> }>[];
  users?: Named<{ user: Record<string, unknown> }>[];
  contexts?: Named<{ context: { cluster?: string; user?: string } }>[];
}

/** Several files merge as kubectl merges them: the first to set a name or the current context wins. */
function fromKubeconfig(files: string[]): KubeEndpoint {
  return endpointOfKubeconfigs(files.map((file) => ({ text: readFileSync(file, "utf8"), dir: dirname(resolve(file)) })));
}

/** The current context's endpoint of kubeconfig texts; relative paths in each are taken from its `dir`. */
export function endpointOfKubeconfigs(docs: { text: string; dir: string }[]): KubeEndpoint {
  const merged = { clusters: new Map<string, { at: string; v: Record<string, unknown> }>(), users: new Map<string, { at: string; v: Record<string, unknown> }>(), contexts: new Map<string, { cluster?: string; user?: string }>() };
  let current: string | undefined;
  for (const { text, dir: at } of docs) {
    const doc = (loadYaml(text) ?? {}) as Kubeconfig;
    current ??= doc["current-context"] || undefined;
    for (const c of doc.clusters ?? []) if (!merged.clusters.has(c.name)) merged.clusters.set(c.name, { at, v: c.cluster ?? {} });
    for (const u of doc.users ?? []) if (!merged.users.has(u.name)) merged.users.set(u.name, { at, v: u.user ?? {} });
    for (const x of doc.contexts ?? []) if (!merged.contexts.has(x.name)) merged.contexts.set(x.name, x.context ?? {});
  }
  if (!current) throw new Error("it has no current-context");
  const context = merged.contexts.get(current);
  const cluster = context?.cluster ? merged.clusters.get(context.cluster) : undefined;
  if (!cluster || typeof cluster.v.server !== "string") throw new Error(`the Kubernetes configuration has no current cluster (current context: ${current})`);
  const user = context?.user ? merged.users.get(context.user) : undefined;
  const bytes = (entry: { at: string; v: Record<string, unknown> } | undefined, field: string): Buffer | undefined => {
    const data = entry?.v[`${field}-data`];
    if (typeof data === "string") return Buffer.from(data, "base64");
    const path = entry?.v[field];
    return typeof path === "string" ? readFileSync(resolve(entry!.at, path)) : undefined;
  };
  for (const plugin of ["exec", "auth-provider"]) {
    if (user?.v[plugin]) throw new Error(`user ${context!.user} logs in through an ${plugin} plugin, which meshlane-loader does not run: give it a token or a client certificate`);
  }
  const token = user?.v.token;
  const tokenFile = user?.v.tokenFile;
  return {
    server: cluster.v.server.replace(/\/+$/, ""),
    ca: bytes(cluster, "certificate-authority"),
    cert: bytes(user, "client-certificate"),
    key: bytes(user, "client-key"),
    token: typeof token === "string" ? () => token : typeof tokenFile === "string" ? () => readFileSync(resolve(user!.at, tokenFile), "utf8").trim() : undefined,
    insecureSkipTlsVerify: cluster.v["insecure-skip-tls-verify"] === true,
    tlsServerName: typeof cluster.v["tls-server-name"] === "string" ? cluster.v["tls-server-name"] : undefined,
  };
}

export class KubeApiError extends Error {
  constructor(readonly statusCode: number, path: string, body: string) {
    super(`GET ${path}: HTTP ${statusCode}${statusMessage(body)}`);
    this.name = "KubeApiError";
  }
}

function statusMessage(body: string): string {
  try {
    const status = JSON.parse(body) as { message?: unknown };
    return typeof status.message === "string" ? `: ${status.message}` : "";
  } catch {
    return body ? `: ${body.slice(0, 200)}` : "";
  }
}

/** Starts a GET; resolves with the response once its status is 200, rejects with a KubeApiError otherwise. */
export function get(ep: KubeEndpoint, path: string, signal?: AbortSignal): Promise<IncomingMessage> {
  const url = new URL(path, ep.server);
  const headers: Record<string, string> = { accept: "application/json" };
  const token = ep.token?.();
  if (token) headers.authorization = `Bearer ${token}`;
  const tls = url.protocol === "https:";
  const options = {
    method: "GET",
    headers,
    signal,
    ...(tls ? { ca: ep.ca, cert: ep.cert, key: ep.key, rejectUnauthorized: !ep.insecureSkipTlsVerify, servername: ep.tlsServerName } : {}),
  };
  return new Promise((resolvePromise, reject) => {
    const req = (tls ? httpsRequest : httpRequest)(url, options, (res) => {
      if (res.statusCode === 200) return resolvePromise(res);
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (d: string) => (body += d));
      res.on("end", () => reject(new KubeApiError(res.statusCode ?? 0, path, body)));
      res.on("error", reject);
    });
    req.on("error", (e) => reject(new Error(`GET ${url.origin}${path}: ${e.message}`)));
    req.end();
  });
}

export async function getJson<T>(ep: KubeEndpoint, path: string, signal?: AbortSignal): Promise<T> {
  const res = await get(ep, path, signal);
  res.setEncoding("utf8");
  let text = "";
  for await (const chunk of res) text += chunk;
  return JSON.parse(text) as T;
}
