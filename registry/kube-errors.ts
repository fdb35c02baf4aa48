// What went wrong in a call to the Kubernetes API, told briefly. client-node's
// ApiException message carries the whole body and every response header; logs and
// error messages want the status code and the Status message only.

import { ApiException } from "@kubernetes/client-node";
import { isRecord } from "./document.js";

/** The HTTP status of a failed API call or watch, if it had one. */
export function apiStatusCode(e: unknown): number | undefined {
  if (e instanceof ApiException) return e.code;
  const code = isRecord(e) ? (e.statusCode ?? e.code) : undefined;
  return typeof code === "number" ? code : undefined;
}

/** The server's own words from a Status body (a JSON string or an object), when there are any. */
function statusMessage(body: unknown): string | undefined {
  let status: unknown = body;
  if (typeof body === "string") {
    try {
      status = JSON.parse(body);
    } catch {
      return body.slice(0, 200) || undefined;
    }
  }
  return isRecord(status) && typeof status.message === "string" ? status.message : undefined;
}

export function describeApiError(e: unknown): string {
  if (e instanceof ApiException) {
    const message = statusMessage(e.body);
    return message ? `HTTP ${e.code}: ${message}` : `HTTP ${e.code}`;
  }
  if (e instanceof Error) {
    const code = apiStatusCode(e);
    const cause = e.cause instanceof Error ? ` (${e.cause.message})` : "";
    return `${code ? `HTTP ${code}: ` : ""}${e.message}${cause}`;
  }
  return String(e);
}
