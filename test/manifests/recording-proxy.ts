// An HTTP proxy in front of the stand-in API server that writes down each request as
// the RBAC authorizer sees it (verb, API group, resource, namespace, name), so that a
// test can hold what a component really asked for against what the manifest grants
// its service account. One proxy per identity.

import { createServer, request, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { KubeConfig } from "@kubernetes/client-node";
import { parseResourcePath } from "../kube/apiserver/http.js";
import type { ApiRequest } from "./rbac.js";

export interface RecordingProxy {
  url: string;
  /** A KubeConfig for in-process clients, and the same as file text for a subprocess's KUBECONFIG. */
  kubeConfig: KubeConfig;
  kubeConfigText: string;
  /** Resource requests, in arrival order. */
  requests: ApiRequest[];
  /** Paths outside the resource API (discovery, /version): every authenticated user may read them. */
  nonResource: string[];
  close(): Promise<void>;
}

/** The authorizer's view of a request (k8s.io/apiserver RequestInfo), or undefined for non-resource paths. */
export function requestInfo(method: string, url: URL): ApiRequest | undefined {
  const route = parseResourcePath(url.pathname);
  if (!route) return undefined;
  const watch = url.searchParams.get("watch");
  const isWatch = watch === "true" || watch === "1";
  const verbs: Record<string, string> = {
    GET: isWatch ? "watch" : route.name ? "get" : "list",
    POST: "create",
    PUT: "update",
    PATCH: "patch",
    DELETE: route.name ? "delete" : "deletecollection",
  };
  const verb = verbs[method];
  if (!verb) throw new Error(`no RBAC verb for ${method} ${url.pathname}`);
  return {
    verb,
    group: route.type.group,
    resource: route.subresource ? `${route.type.plural}/${route.subresource}` : route.type.plural,
    namespace: route.namespace,
    name: route.name,
  };
}

export async function startRecordingProxy(upstream: string): Promise<RecordingProxy> {
  const target = new URL(upstream);
  const requests: ApiRequest[] = [];
  const nonResource: string[] = [];
  const server: Server = createServer((req: IncomingMessage, res) => {
    const url = new URL(req.url ?? "/", "http://proxy");
    const info = requestInfo(req.method ?? "GET", url);
    if (info) requests.push(info);
    else nonResource.push(url.pathname);
    const forward = request(
      { host: target.hostname, port: target.port, method: req.method, path: req.url, headers: { ...req.headers, host: target.host } },
      (upstreamRes) => {
        res.writeHead(upstreamRes.statusCode ?? 502, upstreamRes.headers);
        // A watch's headers must reach the client before its first event does.
        res.flushHeaders();
        upstreamRes.pipe(res);
      },
    );
    forward.on("error", (e) => {
      if (!res.headersSent) res.writeHead(502);
      res.end(e.message);
    });
    res.on("close", () => forward.destroy());
    req.pipe(forward);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const kubeConfig = new KubeConfig();
  kubeConfig.loadFromOptions({
    clusters: [{ name: "proxy", server: url, skipTLSVerify: true }],
    users: [{ name: "recorded", token: "recorded" }],
    contexts: [{ name: "proxy", cluster: "proxy", user: "recorded" }],
    currentContext: "proxy",
  });
  return {
    url,
    kubeConfig,
    kubeConfigText: kubeConfig.exportConfig(),
    requests,
    nonResource,
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
