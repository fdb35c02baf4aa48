// Errors shaped exactly like the real API server's Status responses, so clients that
// branch on `code` and `reason` (client-node's ApiException, informers on 410) see
// what they would see against a cluster.

import { qualifiedName, type ResourceType } from "./resources.js";

export interface StatusCause {
  reason?: string;
  message: string;
  field?: string;
}

export interface StatusDetails {
  name?: string;
  group?: string;
  kind?: string;
  uid?: string;
  causes?: StatusCause[];
}

export interface Status {
  kind: "Status";
  apiVersion: "v1";
  metadata: Record<string, never>;
  status: "Failure" | "Success";
  message?: string;
  reason?: string;
  details?: StatusDetails;
  code: number;
}

export class ApiError extends Error {
  constructor(readonly status: Status) {
    super(status.message);
    this.name = "ApiError";
  }

  get code(): number {
    return this.status.code;
  }
}

export function failure(code: number, reason: string, message: string, details?: StatusDetails): ApiError {
  return new ApiError({
    kind: "Status", apiVersion: "v1", metadata: {}, status: "Failure",
    message, reason, ...(details ? { details } : {}), code,
  });
}

function detailsOf(type: ResourceType, name: string): StatusDetails {
  return { name, ...(type.group ? { group: type.group } : {}), kind: type.plural };
}

export function notFound(type: ResourceType, name: string): ApiError {
  return failure(404, "NotFound", `${qualifiedName(type)} "${name}" not found`, detailsOf(type, name));
}

export function alreadyExists(type: ResourceType, name: string): ApiError {
  return failure(409, "AlreadyExists", `${qualifiedName(type)} "${name}" already exists`, detailsOf(type, name));
}

export function conflict(type: ResourceType, name: string, why: string): ApiError {
  return failure(409, "Conflict", `Operation cannot be fulfilled on ${qualifiedName(type)} "${name}": ${why}`,
    detailsOf(type, name));
}

export const STALE_OBJECT = "the object has been modified; please apply your changes to the latest version and try again";

/** 422, with one cause per field error, as `kubectl` prints them. */
export function invalid(type: ResourceType, name: string, causes: StatusCause[]): ApiError {
  const list = causes.map((c) => `${c.field}: ${c.message}`).join(", ");
  return failure(422, "Invalid", `${type.kind} "${name}" is invalid: ${causes.length > 1 ? `[${list}]` : list}`, {
    name, ...(type.group ? { group: type.group } : {}), kind: type.kind, causes,
  });
}

export function badRequest(message: string): ApiError {
  return failure(400, "BadRequest", message);
}

export function internalError(message: string): ApiError {
  return failure(500, "InternalError", `Internal error occurred: ${message}`, { causes: [{ message }] });
}

export function expired(message: string): ApiError {
  return failure(410, "Expired", message);
}

export function unsupportedMediaType(message: string): ApiError {
  return failure(415, "UnsupportedMediaType", message);
}

export function methodNotAllowed(verb: string, what: string): ApiError {
  return failure(405, "MethodNotAllowed", `the server does not allow this method on the requested resource (${verb} ${what})`);
}

export function unknownPath(): ApiError {
  return failure(404, "NotFound", "the server could not find the requested resource", {});
}
