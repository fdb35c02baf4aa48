// HTTP routing: the real server's URL layout onto the verbs in api.ts, errors as Status
// bodies, and watches as a stream of one JSON event per line. A watch that asks for a
// compacted resourceVersion gets 200 with a single ERROR event (410 Expired) and the
// end of the stream, which is what informers wait for before they relist.

import type { IncomingMessage, ServerResponse } from "node:http";
import type { Api } from "./api.js";
import { discoveryDocument } from "./discovery.js";
import { ApiError, badRequest, internalError, methodNotAllowed, unknownPath } from "./errors.js";
import { apiVersionOf, findResourceType, type ResourceType } from "./resources.js";
import type { WatchEvent } from "./store.js";

interface ResourceRoute {
  type: ResourceType;
  namespace?: string;
  name?: string;
  subresource?: string;
}

/** Parses /api/v1/... and /apis/GROUP/VERSION/... paths; undefined for anything else. */
export function parseResourcePath(pathname: string): ResourceRoute | undefined {
  const segments = pathname.split("/").filter((s) => s !== "").map(decodeURIComponent);
  let group: string, version: string, rest: string[];
  if (segments[0] === "api" && segments.length >= 3) [group, version, rest] = ["", segments[1]!, segments.slice(2)];
  else if (segments[0] === "apis" && segments.length >= 4) [group, version, rest] = [segments[1]!, segments[2]!, segments.slice(3)];
  else return undefined;

  // /namespaces/NS/TYPE[/NAME[/SUB]] unless TYPE is not a namespaced type, in which case
  // the path is about the Namespace object itself (/namespaces/NAME[/SUB]).
  if (rest[0] === "namespaces" && rest.length >= 3) {
    const type = findResourceType(group, version, rest[2]!);
    if (type?.namespaced) {
      if (rest.length > 5) return undefined;
      return { type, namespace: rest[1]!, ...(rest[3] ? { name: rest[3] } : {}), ...(rest[4] ? { subresource: rest[4] } : {}) };
    }
  }
  const type = findResourceType(group, version, rest[0]!);
  if (!type || rest.length > 3 || (type.namespaced && rest.length > 1)) return undefined;
  return { type, ...(rest[1] ? { name: rest[1] } : {}), ...(rest[2] ? { subresource: rest[2] } : {}) };
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on("data", (chunk: Buffer) => chunks.push(chunk));
    req.on("end", () => resolve(Buffer.concat(chunks).toString("utf8")));
    req.on("error", reject);
  });
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch (err) {
    throw badRequest(`the request body is not valid JSON: ${(err as Error).message}`);
  }
}

function send(res: ServerResponse, code: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(code, { "Content-Type": "application/json", "Content-Length": Buffer.byteLength(text) });
  res.end(text);
}

export interface WatchOptions {
  /** How often a watch that asked for bookmarks gets one. */
  bookmarkIntervalMs: number;
  currentRevision: () => string;
}

export class Router {
  private readonly openWatches = new Set<ServerResponse>();

  constructor(private readonly api: Api, private readonly watchOptions: WatchOptions) {}

  /** Ends every open watch stream, as an API server restart or a watch timeout would. */
  closeWatches(): void {
    for (const res of this.openWatches) res.end();
  }

  readonly handle = (req: IncomingMessage, res: ServerResponse): void => {
    this.route(req, res).catch((err: unknown) => {
      const apiError = err instanceof ApiError ? err : internalError(err instanceof Error ? err.message : String(err));
      if (res.headersSent) res.destroy();
      else send(res, apiError.code, apiError.status);
    });
  };

  private async route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? "/", "http://stand-in");
    const method = req.method ?? "GET";
    const query = url.searchParams;
    if (method === "GET" && ["/healthz", "/readyz", "/livez"].includes(url.pathname)) {
      res.writeHead(200, { "Content-Type": "text/plain" }).end("ok");
      return;
    }
    const discovery = method === "GET" ? discoveryDocument(url.pathname, req.headers.host ?? "") : undefined;
    if (discovery !== undefined) return send(res, 200, discovery);

    const route = parseResourcePath(url.pathname);
    if (!route) throw unknownPath();
    const { type, namespace, name, subresource } = route;
    const what = `${type.plural}${subresource ? `/${subresource}` : ""}`;
    if (subresource && !type.subresources.includes(subresource)) throw unknownPath();
    const selectors = {
      ...(query.has("labelSelector") ? { labelSelector: query.get("labelSelector")! } : {}),
      ...(query.has("fieldSelector") ? { fieldSelector: query.get("fieldSelector")! } : {}),
    };

    if (!name) {
      if (method === "GET" && ["true", "1"].includes(query.get("watch") ?? "")) return this.watch(req, res, route, query, selectors);
      if (method === "GET") return send(res, 200, this.api.list(type, namespace, selectors));
      if (method === "POST" && (namespace !== undefined || !type.namespaced)) {
        const dryRun = query.getAll("dryRun");
        if (dryRun.some((d) => d !== "All")) throw badRequest(`dryRun must be "All", got ${JSON.stringify(dryRun)}`);
        return send(res, 201, await this.api.create(type, namespace, parseJson(await readBody(req)), dryRun.length > 0));
      }
      throw methodNotAllowed(method, what);
    }

    if (query.has("dryRun") && method !== "GET") throw badRequest("the stand-in API server supports dryRun on create only");
    const contentType = (req.headers["content-type"] ?? "").split(";")[0]!.trim().toLowerCase();
    switch (`${method} ${subresource ?? ""}`) {
      case "GET ":
      case "GET status":
        return send(res, 200, this.api.get(type, namespace, name));
      case "PUT ":
        return send(res, 200, await this.api.update(type, namespace, name, parseJson(await readBody(req))));
      case "PUT status":
        return send(res, 200, this.api.updateStatus(type, namespace, name, parseJson(await readBody(req))));
      case "PATCH ":
        return send(res, 200, await this.api.patch(type, namespace, name, contentType, await readBody(req)));
      case "PATCH status":
        return send(res, 200, this.api.patchStatus(type, namespace, name, contentType, await readBody(req)));
      case "POST binding":
        return send(res, 201, this.api.bind(type, namespace!, name, parseJson(await readBody(req))));
      case "DELETE ": {
        const text = await readBody(req);
        const options = (text.trim() ? parseJson(text) : {}) as { preconditions?: { uid?: string; resourceVersion?: string } };
        return send(res, 200, this.api.delete(type, namespace, name, options.preconditions ?? {}));
      }
      default:
        throw methodNotAllowed(method, what);
    }
  }

  private watch(req: IncomingMessage, res: ServerResponse, route: ResourceRoute, query: URLSearchParams,
    selectors: { labelSelector?: string; fieldSelector?: string }): void {
    const { type, namespace } = route;
    const write = (event: WatchEvent | { type: string; object: unknown }) => res.write(`${JSON.stringify(event)}\n`);
    const start = () => {
      res.writeHead(200, { "Content-Type": "application/json", "Transfer-Encoding": "chunked" });
      res.flushHeaders();
    };
    // api.watch sends the initial events before it returns, but the status line can only
    // be chosen once it has returned without refusing the watch (a bad selector is a
    // plain 400), so those events wait here.
    const held: WatchEvent[] = [];
    let live = false;
    let stop: () => void;
    try {
      stop = this.api.watch(type, namespace, { ...selectors, resourceVersion: query.get("resourceVersion") ?? "" },
        (event) => (live ? write(event) : held.push(event)));
    } catch (err) {
      if (!(err instanceof ApiError) || err.code !== 410) throw err;
      start();
      write({ type: "ERROR", object: err.status });
      res.end();
      return;
    }
    start();
    held.forEach(write);
    live = true;
    this.openWatches.add(res);
    const timers: NodeJS.Timeout[] = [];
    const timeoutSeconds = Number(query.get("timeoutSeconds") ?? "0");
    if (timeoutSeconds > 0) timers.push(setTimeout(() => res.end(), timeoutSeconds * 1000));
    if (query.get("allowWatchBookmarks") === "true") {
      timers.push(setInterval(() => write({
        type: "BOOKMARK",
        object: { kind: type.kind, apiVersion: apiVersionOf(type), metadata: { resourceVersion: this.watchOptions.currentRevision() } },
      }), this.watchOptions.bookmarkIntervalMs));
    }
    res.on("close", () => {
      stop();
      timers.forEach(clearTimeout);
      this.openWatches.delete(res);
    });
    req.on("error", () => res.destroy());
  }
}
