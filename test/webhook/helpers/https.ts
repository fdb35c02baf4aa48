// A webhook server on loopback with a fresh CA, and a client that verifies the server
// with that CA the way the API server does with caBundle.

import { Agent, request } from "node:https";
import { Writable } from "node:stream";
import { createSecureContext } from "node:tls";
import { createCertificateAuthority, issueServingCertificate, type KeyPairPem } from "../../../certs/authority.js";
import { createAuditLog } from "../../../webhook/audit.js";
import { createWebhookServer, type WebhookServer, type WebhookServerOptions } from "../../../webhook/server.js";

export const HOUR = 3600_000;

export function testIdentity(validityMs = HOUR): { ca: KeyPairPem; serving: KeyPairPem } {
  const ca = createCertificateAuthority({ validityMs: 24 * HOUR });
  return { ca, serving: issueServingCertificate(ca, { names: ["127.0.0.1", "localhost"], validityMs }) };
}

/** Audit lines captured in memory, parsed. */
export class AuditCapture extends Writable {
  readonly lines: Record<string, unknown>[] = [];
  readonly raw: string[] = [];
  override _write(chunk: Buffer, _enc: string, done: () => void): void {
    for (const line of chunk.toString("utf8").split("\n").filter(Boolean)) {
      this.raw.push(line);
      this.lines.push(JSON.parse(line) as Record<string, unknown>);
    }
    done();
  }
}

export interface TestServer {
  server: WebhookServer;
  ca: KeyPairPem;
  audit: AuditCapture;
  port: number;
  client: HttpsClient;
  close(): Promise<void>;
}

export async function startTestServer(opts: Partial<WebhookServerOptions> = {}): Promise<TestServer> {
  const { ca, serving } = testIdentity();
  const audit = new AuditCapture();
  const server = createWebhookServer({ identity: serving, audit: createAuditLog(audit), ...opts });
  const { port } = await server.listen(0, "127.0.0.1");
  const client = new HttpsClient(port, ca.certPem);
  return {
    server, ca, audit, port, client,
    async close() {
      client.close();
      await server.close();
    },
  };
}

export interface Reply {
  status: number;
  body: string;
  json(): any;
}

export class HttpsClient {
  readonly agent: Agent;
  constructor(readonly port: number, caPem: string, maxSockets = 8) {
    // One secure context for every connection: with `ca` alone Node builds one per socket.
    this.agent = new Agent({ keepAlive: true, maxSockets, secureContext: createSecureContext({ ca: caPem }) });
  }

  send(method: string, path: string, body?: string | Buffer, headers: Record<string, string> = {}): Promise<Reply> {
    return new Promise((resolve, reject) => {
      const req = request(
        { host: "127.0.0.1", port: this.port, method, path, agent: this.agent, servername: "localhost", headers },
        (res) => {
          const chunks: Buffer[] = [];
          res.on("data", (c: Buffer) => chunks.push(c));
          res.on("end", () => {
            const text = Buffer.concat(chunks).toString("utf8");
            resolve({ status: res.statusCode!, body: text, json: () => JSON.parse(text) });
          });
        },
      );
      req.on("error", reject);
      req.end(body);
    });
  }

  post(body: unknown, contentType = "application/json"): Promise<Reply> {
    return this.send("POST", "/mutate", typeof body === "string" || Buffer.isBuffer(body) ? body : JSON.stringify(body), { "content-type": contentType });
  }

  close(): void {
    this.agent.destroy();
  }
}

/** The JSON patch inside an AdmissionReview response, or undefined when there is none. */
export function patchOf(review: any): any[] | undefined {
  const r = review.response;
  if (r.patch === undefined) return undefined;
  if (r.patchType !== "JSONPatch") throw new Error(`patchType ${r.patchType}`);
  return JSON.parse(Buffer.from(r.patch, "base64").toString("utf8"));
}
