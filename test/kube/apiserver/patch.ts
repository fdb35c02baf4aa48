// The PATCH content types. JSON merge patch (RFC 7386) and JSON patch (RFC 6902) are
// implemented in full. Strategic merge patch equals merge patch as long as the patch
// holds no lists and no `$` directives (maps merge the same way in both); a patch with
// a list would need the per-field merge keys of the Go types, so it is refused with a
// 415 that says so rather than applied wrongly.

import { badRequest, failure, unsupportedMediaType } from "./errors.js";

export const MERGE_PATCH = "application/merge-patch+json";
export const JSON_PATCH = "application/json-patch+json";
export const STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json";

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

function isObject(value: unknown): value is Record<string, Json> {
  return value !== null && typeof value === "object" && !Array.isArray(value);
}

export function mergePatch(target: unknown, patch: unknown): Json {
  if (!isObject(patch)) return structuredClone(patch) as Json;
  const result: Record<string, Json> = isObject(target) ? { ...target } : {};
  for (const [key, value] of Object.entries(patch)) {
    if (value === null) delete result[key];
    else result[key] = mergePatch(result[key], value);
  }
  return result;
}

export interface JsonPatchOperation {
  op: string;
  path: string;
  value?: unknown;
  from?: string;
}

function parsePointer(pointer: string): string[] {
  if (pointer === "") return [];
  if (!pointer.startsWith("/")) throw new Error(`JSON pointer "${pointer}" does not start with /`);
  return pointer.slice(1).split("/").map((s) => s.replace(/~1/g, "/").replace(/~0/g, "~"));
}

function arrayIndex(array: Json[], token: string, forInsert: boolean): number {
  if (forInsert && token === "-") return array.length;
  if (!/^(0|[1-9][0-9]*)$/.test(token)) throw new Error(`"${token}" is not an array index`);
  const index = Number(token);
  if (index > array.length || (!forInsert && index === array.length)) throw new Error(`array index ${index} is out of bounds`);
  return index;
}

/** The container holding the pointer's last token, and that token. */
function locate(doc: Json, pointer: string): { parent: Json[] | Record<string, Json>; key: string } {
  const tokens = parsePointer(pointer);
  const key = tokens.pop();
  if (key === undefined) throw new Error("the document root cannot be the target of this operation");
  let cur: Json = doc;
  for (const token of tokens) {
    if (Array.isArray(cur)) cur = cur[arrayIndex(cur, token, false)]!;
    else if (isObject(cur) && token in cur) cur = cur[token]!;
    else throw new Error(`path ${pointer}: "${token}" does not exist`);
  }
  if (!Array.isArray(cur) && !isObject(cur)) throw new Error(`path ${pointer}: parent is not an object or array`);
  return { parent: cur, key };
}

function read(doc: Json, pointer: string): Json {
  const { parent, key } = locate(doc, pointer);
  if (Array.isArray(parent)) return parent[arrayIndex(parent, key, false)]!;
  if (!(key in parent)) throw new Error(`path ${pointer} does not exist`);
  return parent[key]!;
}

function add(doc: Json, pointer: string, value: Json): void {
  const { parent, key } = locate(doc, pointer);
  if (Array.isArray(parent)) parent.splice(arrayIndex(parent, key, true), 0, value);
  else parent[key] = value;
}

function remove(doc: Json, pointer: string): Json {
  const { parent, key } = locate(doc, pointer);
  if (Array.isArray(parent)) return parent.splice(arrayIndex(parent, key, false), 1)[0]!;
  if (!(key in parent)) throw new Error(`path ${pointer} does not exist`);
  const old = parent[key]!;
  delete parent[key];
  return old;
}

export function deepEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (Array.isArray(a) && Array.isArray(b)) return a.length === b.length && a.every((x, i) => deepEqual(x, b[i]));
  if (isObject(a) && isObject(b)) {
    const keys = Object.keys(a);
    return keys.length === Object.keys(b).length && keys.every((k) => k in b && deepEqual(a[k], b[k]));
  }
  return false;
}

/** Applies an RFC 6902 patch to a copy of `target`; throws on the first failing operation. */
export function applyJsonPatch(target: unknown, operations: JsonPatchOperation[]): Json {
  // A wrapper lets "add"/"replace" at the root and nested paths share one code path.
  const box: Record<string, Json> = { doc: structuredClone(target) as Json };
  const at = (pointer: string) => `/doc${pointer}`;
  operations.forEach((operation, i) => {
    try {
      const { op, path } = operation;
      const value = structuredClone(operation.value) as Json;
      switch (op) {
        case "add": add(box, at(path), value); break;
        case "remove": remove(box, at(path)); break;
        case "replace": remove(box, at(path)); add(box, at(path), value); break;
        case "move": add(box, at(path), remove(box, at(requireFrom(operation)))); break;
        case "copy": add(box, at(path), structuredClone(read(box, at(requireFrom(operation))))); break;
        case "test":
          if (!deepEqual(read(box, at(path)), value)) throw new Error(`testing value ${path} failed`);
          break;
        default: throw new Error(`unknown operation "${op}"`);
      }
    } catch (err) {
      throw new Error(`operation ${i} (${JSON.stringify(operation)}): ${(err as Error).message}`);
    }
  });
  return box.doc!;
}

function requireFrom(operation: JsonPatchOperation): string {
  if (typeof operation.from !== "string") throw new Error(`"${operation.op}" needs "from"`);
  return operation.from;
}

function findListOrDirective(value: unknown, path: string): string | undefined {
  if (Array.isArray(value)) return path;
  if (!isObject(value)) return undefined;
  for (const [key, child] of Object.entries(value)) {
    if (key.startsWith("$")) return `${path}.${key}`;
    const found = findListOrDirective(child, `${path}.${key}`);
    if (found) return found;
  }
  return undefined;
}

/** Applies a PATCH body of the given content type, with the real server's status codes. */
export function applyPatch(contentType: string, target: unknown, body: string): unknown {
  let patch: unknown;
  try {
    patch = JSON.parse(body);
  } catch (err) {
    throw badRequest(`error decoding patch: ${(err as Error).message}`);
  }
  switch (contentType) {
    case MERGE_PATCH:
      if (!isObject(patch)) throw badRequest("a JSON merge patch for an object must be a JSON object");
      return mergePatch(target, patch);
    case STRATEGIC_MERGE_PATCH: {
      if (!isObject(patch)) throw badRequest("a strategic merge patch must be a JSON object");
      const list = findListOrDirective(patch, "");
      if (list) {
        throw unsupportedMediaType(`the stand-in API server applies strategic merge patches only without lists or $-directives (found one at ${list}); use ${MERGE_PATCH} or ${JSON_PATCH}`);
      }
      return mergePatch(target, patch);
    }
    case JSON_PATCH:
      if (!Array.isArray(patch)) throw badRequest("a JSON patch must be a JSON array of operations");
      try {
        return applyJsonPatch(target, patch as JsonPatchOperation[]);
      } catch (err) {
        // The real server answers a patch that decodes but does not apply with 422.
        throw failure(422, "Invalid", (err as Error).message);
      }
    default:
      throw unsupportedMediaType(`the body of the request was in an unknown format - accepted media types include: ${JSON_PATCH}, ${MERGE_PATCH}, ${STRATEGIC_MERGE_PATCH}`);
  }
}
