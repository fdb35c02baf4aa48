// Just enough of the Kubernetes API for the certs code: one MutatingWebhookConfiguration
// (GET, JSON PATCH) and Secrets in one namespace (GET, POST, PUT with resourceVersion).
// Plain HTTP on loopback; the real @kubernetes/client-node talks to it.

import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { KubeConfig } from "@kubernetes/client-node";
import { applyJsonPatch } from "../webhook/helpers/json-patch.js";

type Obj = Record<string, any>;

export class FakeKube {
  readonly webhookConfigs = new Map<string, Obj>();
  readonly secrets = new Map<string, Obj>();
  readonly requests: { method: string; path: string; contentType: string | undefined }[] = [];
  /** Runs between a MWC read and the next patch (to simulate a concurrent writer). */
  beforePatch: ((config: Obj) => void) | undefined;
  private version = 100;
  private server: Server | undefined;
  port = 0;

  async start(): Promise<void> {
    this.server = createServer((req, res) => void this.handle(req, res));
    await new Promise<void>((r) => this.server!.listen(0, "127.0.0.1", r));
    this.port = (this.server!.address() as AddressInfo).port;
  }

  stop(): Promise<void> {
    return new Promise((r) => this.server!.close(() => r()));
  }

  kubeConfig(): KubeConfig {
    const kc = new KubeConfig();
    kc.loadFromOptions({
      clusters: [{ name: "fake", server: `http://127.0.0.1:${this.port}`, skipTLSVerify: true }],
      users: [{ name: "fake", token: "t" }],
      contexts: [{ name: "fake", cluster: "fake", user: "fake" }],
      currentContext: "fake",
    });
    return kc;
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const text = Buffer.concat(chunks).toString("utf8");
    const path = new URL(req.url!, "http://x").pathname;
    this.requests.push({ method: req.method!, path, contentType: req.headers["content-type"] });
    const send = (code: number, body: Obj) => {
      res.writeHead(code, { "content-type": "application/json" });
      res.end(JSON.stringify(body));
    };
    const status = (code: number, reason: string) => send(code, { kind: "Status", apiVersion: "v1", status: "Failure", reason, code });

    const mwc = /^\/apis\/admissionregistration\.k8s\.io\/v1\/mutatingwebhookconfigurations\/([^/]+)$/.exec(path);
    if (mwc) {
      const config = this.webhookConfigs.get(mwc[1]!);
      if (!config) return status(404, "NotFound");
      if (req.method === "GET") return send(200, config);
      if (req.method === "PATCH") {
        if (req.headers["content-type"] !== "application/json-patch+json") return status(415, "UnsupportedMediaType");
        this.beforePatch?.(config);
        try {
          const patched = applyJsonPatch(config, JSON.parse(text));
          this.webhookConfigs.set(mwc[1]!, patched);
          return send(200, patched);
        } catch (e) {
          return status(422, (e as Error).message);
        }
      }
    }
    const secretPath = /^\/api\/v1\/namespaces\/([^/]+)\/secrets(?:\/([^/]+))?$/.exec(path);
    if (secretPath) {
      const [, ns, name] = secretPath;
      const key = `${ns}/${name ?? ""}`;
      if (req.method === "GET" && name) return this.secrets.has(key) ? send(200, this.secrets.get(key)!) : status(404, "NotFound");
      const body = text ? (JSON.parse(text) as Obj) : {};
      const bodyKey = `${ns}/${body.metadata?.name}`;
      if (req.method === "POST") {
        if (this.secrets.has(bodyKey)) return status(409, "AlreadyExists");
        return send(201, this.store(bodyKey, body));
      }
      if (req.method === "PUT" && name) {
        const current = this.secrets.get(key);
        if (!current) return status(404, "NotFound");
        if (body.metadata?.resourceVersion !== current.metadata.resourceVersion) return status(409, "Conflict");
        return send(200, this.store(key, body));
      }
    }
    status(404, "NotFound");
  }

  /** Stores a Secret with a fresh resourceVersion, as the API server does on every write. */
  store(key: string, body: Obj): Obj {
    const saved = { ...body, metadata: { ...body.metadata, resourceVersion: String(++this.version) } };
    this.secrets.set(key, saved);
    return saved;
  }
}
