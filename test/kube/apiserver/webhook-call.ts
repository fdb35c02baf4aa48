// One AdmissionReview round trip, as the API server makes it: HTTPS only, verified
// against the webhook's caBundle, with the service DNS name as TLS server name, the
// timeout in the URL and on the clock. Every failure here is a "call" failure, the
// kind failurePolicy decides about.

import https from "node:https";

export interface ServiceTarget {
  host: string;
  port: number;
}

/** Where `service` client configs actually connect: the cluster DNS of a test run. */
export class ServiceDirectory {
  private readonly targets = new Map<string, ServiceTarget>();

  private static key(namespace: string, name: string, port: number): string {
    return `${name}.${namespace}.svc:${port}`;
  }

  register(namespace: string, name: string, target: ServiceTarget, servicePort = 443): void {
    this.targets.set(ServiceDirectory.key(namespace, name, servicePort), target);
  }

  resolve(namespace: string, name: string, port: number): ServiceTarget | undefined {
    return this.targets.get(ServiceDirectory.key(namespace, name, port));
  }
}

export interface ClientConfig {
  url?: string;
  service?: { namespace: string; name: string; path?: string; port?: number };
  caBundle?: string;
}

/** A failure to get a usable answer from a webhook; failurePolicy applies to it. */
export class WebhookCallError extends Error {
  constructor(readonly webhookName: string, reason: string) {
    super(`failed calling webhook "${webhookName}": ${reason}`);
    this.name = "WebhookCallError";
  }
}

interface Endpoint {
  /** The URL as the API server names it in errors. */
  url: URL;
  connect: ServiceTarget;
  servername?: string;
}

function endpointOf(webhookName: string, config: ClientConfig, services: ServiceDirectory, timeoutSeconds: number): Endpoint {
  let endpoint: Endpoint;
  if (config.service) {
    const { namespace, name, path = "/", port = 443 } = config.service;
    const servername = `${name}.${namespace}.svc`;
    const url = new URL(`https://${servername}:${port}${path}`);
    const target = services.resolve(namespace, name, port);
    if (!target) {
      throw new WebhookCallError(webhookName, `failed to call webhook: Post "${url}": service "${namespace}/${name}" port ${port} has no endpoint registered with the stand-in (use registerService)`);
    }
    endpoint = { url, connect: target, servername };
  } else {
    const url = new URL(config.url!);
    const host = url.hostname.replace(/^\[|\]$/g, "");
    endpoint = { url, connect: { host, port: Number(url.port || 443) } };
  }
  endpoint.url.searchParams.set("timeout", `${timeoutSeconds}s`);
  return endpoint;
}

function decodeCaBundle(webhookName: string, caBundle: string | undefined): string | undefined {
  if (!caBundle) return undefined;
  const pem = Buffer.from(caBundle, "base64").toString("utf8");
  if (!pem.includes("-----BEGIN CERTIFICATE-----")) {
    throw new WebhookCallError(webhookName, "caBundle is not base64 of a PEM certificate bundle");
  }
  return pem;
}

/** POSTs the review and returns the parsed reply, or throws WebhookCallError. */
export function postAdmissionReview(
  webhookName: string, config: ClientConfig, services: ServiceDirectory, timeoutSeconds: number, review: unknown,
): Promise<unknown> {
  const endpoint = endpointOf(webhookName, config, services, timeoutSeconds);
  const ca = decodeCaBundle(webhookName, config.caBundle);
  const body = JSON.stringify(review);
  const fail = (why: string) => new WebhookCallError(webhookName, `failed to call webhook: Post "${endpoint.url}": ${why}`);

  return new Promise((resolve, reject) => {
    const request = https.request({
      method: "POST",
      host: endpoint.connect.host,
      port: endpoint.connect.port,
      path: endpoint.url.pathname + endpoint.url.search,
      ...(endpoint.servername ? { servername: endpoint.servername } : {}),
      ...(ca ? { ca } : {}),
      headers: {
        "Content-Type": "application/json",
        Accept: "application/json",
        "Content-Length": Buffer.byteLength(body),
        Host: endpoint.url.host,
      },
      agent: false,
    });
    const deadline = setTimeout(() => request.destroy(fail("context deadline exceeded")), timeoutSeconds * 1000);
    request.on("error", (err) => {
      clearTimeout(deadline);
      reject(err instanceof WebhookCallError ? err : fail(err.message));
    });
    request.on("response", (response) => {
      const chunks: Buffer[] = [];
      response.on("data", (chunk: Buffer) => chunks.push(chunk));
      response.on("error", () => {}); // the request's error handler reports it
      response.on("end", () => {
        clearTimeout(deadline);
        const text = Buffer.concat(chunks).toString("utf8");
        if (response.statusCode !== 200) {
          reject(fail(`the server responded with status ${response.statusCode}: ${text.slice(0, 200)}`));
          return;
        }
        try {
          resolve(JSON.parse(text));
        } catch (err) {
          reject(new WebhookCallError(webhookName, `received invalid webhook response: ${(err as Error).message}`));
        }
      });
    });
    request.end(body);
  });
}
