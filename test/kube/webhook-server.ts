// A local HTTPS admission webhook for tests: one server, a handler per path, and a
// record of every AdmissionReview it received with the TLS server name it was asked for.

import { createServer, type Server } from "node:https";
import type { AddressInfo } from "node:net";
import type { TLSSocket } from "node:tls";
import type { AdmissionRequest } from "./apiserver/admission.js";
import type { TestCa } from "./apiserver/tls.js";

export interface ReceivedReview {
  path: string;
  /** Query string as sent, e.g. "?timeout=10s". */
  search: string;
  servername: string | undefined;
  review: { apiVersion: string; kind: string; request: AdmissionRequest };
}

/** What a handler answers: the AdmissionReview response, minus uid (filled in). */
export type Handler = (request: AdmissionRequest) => Record<string, unknown> | Promise<Record<string, unknown>>;

export interface JsonPatchOp {
  op: string;
  path: string;
  value?: unknown;
}

export function patchResponse(ops: JsonPatchOp[]): Record<string, unknown> {
  return { allowed: true, patchType: "JSONPatch", patch: Buffer.from(JSON.stringify(ops)).toString("base64") };
}

/** A JSON patch op setting one annotation whether or not the object has annotations yet. */
export function annotate(request: AdmissionRequest, key: string, value: string): JsonPatchOp {
  if (!request.object.metadata.annotations) return { op: "add", path: "/metadata/annotations", value: { [key]: value } };
  return { op: "add", path: `/metadata/annotations/${key.replace(/~/g, "~0").replace(/\//g, "~1")}`, value };
}

export class TestWebhookServer {
  readonly received: ReceivedReview[] = [];
  private readonly handlers = new Map<string, Handler>();

  private constructor(private readonly server: Server, readonly port: number) {}

  static async start(ca: TestCa, dnsNames: string[]): Promise<TestWebhookServer> {
    const serving = ca.issue({ dnsNames, ips: ["127.0.0.1"] });
    let self!: TestWebhookServer;
    const server = createServer({ key: serving.keyPem, cert: serving.certPem }, (req, res) => {
      const chunks: Buffer[] = [];
      req.on("data", (c: Buffer) => chunks.push(c));
      req.on("end", async () => {
        const url = new URL(req.url ?? "/", "https://webhook");
        const review = JSON.parse(Buffer.concat(chunks).toString("utf8")) as ReceivedReview["review"];
        self.received.push({ path: url.pathname, search: url.search, servername: (req.socket as TLSSocket).servername || undefined, review });
        const handler = self.handlers.get(url.pathname);
        if (!handler) {
          res.writeHead(404).end(`no handler for ${url.pathname}`);
          return;
        }
        const response = await handler(review.request);
        if (res.destroyed) return;
        res.writeHead(200, { "Content-Type": "application/json" });
        res.end(JSON.stringify({ apiVersion: "admission.k8s.io/v1", kind: "AdmissionReview", response: { uid: review.request.uid, ...response } }));
      });
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    self = new TestWebhookServer(server, (server.address() as AddressInfo).port);
    return self;
  }

  handle(path: string, handler: Handler): void {
    this.handlers.set(path, handler);
  }

  /** Reviews received on one path, in order. */
  requestsTo(path: string): AdmissionRequest[] {
    return this.received.filter((r) => r.path === path).map((r) => r.review.request);
  }

  async stop(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.server.closeAllConnections();
    await closed;
  }
}
