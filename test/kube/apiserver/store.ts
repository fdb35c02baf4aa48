// Objects of every type under one global, increasing revision (etcd's model): each
// write gets the next revision as its resourceVersion and becomes one event in a
// bounded history. A watch resumes from any revision still in that history; one from
// before it gets 410 Expired, as from a compacted etcd, so informers must relist.

import { randomUUID } from "node:crypto";
import { alreadyExists, conflict, expired, notFound, STALE_OBJECT } from "./errors.js";
import { deepEqual } from "./patch.js";
import { timestampNow, type KubeObject, type ResourceType } from "./resources.js";

export type EventType = "ADDED" | "MODIFIED" | "DELETED";

interface StoredEvent {
  type: EventType;
  resource: ResourceType;
  object: KubeObject;
  /** The state before a MODIFIED, to turn selector transitions into ADDED/DELETED. */
  previous?: KubeObject;
  revision: number;
}

export interface WatchEvent {
  type: EventType;
  object: KubeObject;
}

export interface WatchScope {
  resource: ResourceType;
  namespace?: string;
  matches: (obj: KubeObject) => boolean;
}

export interface Preconditions {
  uid?: string;
  resourceVersion?: string;
}

const GENERATED_NAME_ALPHABET = "bcdfghjklmnpqrstvwxz2456789";

function key(namespace: string | undefined, name: string): string {
  return `${namespace ?? ""}/${name}`;
}

function withoutResourceVersion(obj: KubeObject): KubeObject {
  const { resourceVersion: _ignored, ...metadata } = obj.metadata;
  return { ...obj, metadata };
}

export class ObjectStore {
  private revision = 0;
  private readonly objects = new Map<ResourceType, Map<string, KubeObject>>();
  private readonly history: StoredEvent[] = [];
  /** Every event after this revision is still in `history`. */
  private compactedRevision = 0;
  private readonly subscribers = new Set<(event: StoredEvent) => void>();

  constructor(private readonly historyLimit: number) {
    if (historyLimit < 1) throw new Error(`watch history limit must be at least 1, got ${historyLimit}`);
  }

  currentRevision(): string {
    return String(this.revision);
  }

  private table(resource: ResourceType): Map<string, KubeObject> {
    let table = this.objects.get(resource);
    if (!table) this.objects.set(resource, (table = new Map()));
    return table;
  }

  get(resource: ResourceType, namespace: string | undefined, name: string): KubeObject | undefined {
    const obj = this.table(resource).get(key(namespace, name));
    return obj && structuredClone(obj);
  }

  /** In key order, like etcd's range reads. */
  list(resource: ResourceType, namespace?: string): KubeObject[] {
    return [...this.table(resource).entries()]
      .filter(([, obj]) => namespace === undefined || obj.metadata.namespace === namespace)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([, obj]) => structuredClone(obj));
  }

  create(resource: ResourceType, input: KubeObject): KubeObject {
    const table = this.table(resource);
    const obj = structuredClone(input);
    const { namespace } = obj.metadata;
    if (!obj.metadata.name && obj.metadata.generateName) {
      do obj.metadata.name = obj.metadata.generateName + randomSuffix();
      while (table.has(key(namespace, obj.metadata.name)));
    }
    const name = obj.metadata.name!;
    if (table.has(key(namespace, name))) throw alreadyExists(resource, name);
    obj.metadata.uid = randomUUID();
    obj.metadata.creationTimestamp = timestampNow();
    return this.commit("ADDED", resource, obj);
  }

  /**
   * Replaces an object. A resourceVersion in `input` is a precondition (409 when stale);
   * none means an unconditional update. A write that changes nothing keeps the old
   * revision and sends no event, as the real server does.
   */
  update(resource: ResourceType, input: KubeObject): KubeObject {
    const { namespace, name } = input.metadata;
    const current = this.table(resource).get(key(namespace, name!));
    if (!current) throw notFound(resource, name!);
    const wanted = input.metadata.resourceVersion;
    if (wanted !== undefined && wanted !== "" && wanted !== current.metadata.resourceVersion) {
      throw conflict(resource, name!, STALE_OBJECT);
    }
    const obj = structuredClone(input);
    obj.metadata.uid = current.metadata.uid;
    obj.metadata.creationTimestamp = current.metadata.creationTimestamp;
    if (deepEqual(withoutResourceVersion(obj), withoutResourceVersion(current))) return structuredClone(current);
    return this.commit("MODIFIED", resource, obj, current);
  }

  /** Throws 404 when the object is gone and 409 when it is not the one the caller means. */
  checkPreconditions(resource: ResourceType, namespace: string | undefined, name: string, preconditions: Preconditions): KubeObject {
    const current = this.table(resource).get(key(namespace, name));
    if (!current) throw notFound(resource, name);
    if (preconditions.uid && preconditions.uid !== current.metadata.uid) {
      throw conflict(resource, name, `Precondition failed: UID in precondition: ${preconditions.uid}, UID in object meta: ${current.metadata.uid}`);
    }
    if (preconditions.resourceVersion && preconditions.resourceVersion !== current.metadata.resourceVersion) {
      throw conflict(resource, name, `Precondition failed: ResourceVersion in precondition: ${preconditions.resourceVersion}, ResourceVersion in object meta: ${current.metadata.resourceVersion}`);
    }
    return structuredClone(current);
  }

  delete(resource: ResourceType, namespace: string | undefined, name: string, preconditions: Preconditions = {}): KubeObject {
    const current = this.checkPreconditions(resource, namespace, name, preconditions);
    // The DELETED event carries the deletion's own revision, so watchers move past it.
    return this.commit("DELETED", resource, current);
  }

  private commit(type: EventType, resource: ResourceType, obj: KubeObject, previous?: KubeObject): KubeObject {
    const revision = ++this.revision;
    obj.metadata.resourceVersion = String(revision);
    const table = this.table(resource);
    const id = key(obj.metadata.namespace, obj.metadata.name!);
    if (type === "DELETED") table.delete(id);
    else table.set(id, obj);
    const event: StoredEvent = { type, resource, object: obj, revision, ...(previous ? { previous } : {}) };
    this.history.push(event);
    while (this.history.length > this.historyLimit) this.compactedRevision = this.history.shift()!.revision;
    for (const deliver of this.subscribers) deliver(event);
    return structuredClone(obj);
  }

  /**
   * Starts a watch. Without `fromRevision` it first sends every current object as
   * ADDED; with one it replays the history after it (410 if compacted). Returns the
   * function that ends the watch.
   */
  watch(scope: WatchScope, fromRevision: number | undefined, send: (event: WatchEvent) => void): () => void {
    const forward = (event: StoredEvent): void => {
      if (event.resource !== scope.resource) return;
      if (scope.namespace !== undefined && event.object.metadata.namespace !== scope.namespace) return;
      const type = visibleType(event, scope.matches);
      if (type) send({ type, object: structuredClone(event.object) });
    };
    if (fromRevision === undefined) {
      for (const object of this.list(scope.resource, scope.namespace)) {
        if (scope.matches(object)) send({ type: "ADDED", object });
      }
    } else {
      if (fromRevision < this.compactedRevision) {
        throw expired(`too old resource version: ${fromRevision} (${this.compactedRevision})`);
      }
      for (const event of this.history) if (event.revision > fromRevision) forward(event);
    }
    this.subscribers.add(forward);
    return () => this.subscribers.delete(forward);
  }
}

/**
 * What a selector-filtered watcher sees: an object that starts matching arrives as
 * ADDED, one that stops matching leaves as DELETED (carrying its new state).
 */
function visibleType(event: StoredEvent, matches: (obj: KubeObject) => boolean): EventType | undefined {
  const now = matches(event.object);
  if (event.type !== "MODIFIED") return now ? event.type : undefined;
  const before = matches(event.previous!);
  if (now && before) return "MODIFIED";
  if (now) return "ADDED";
  if (before) return "DELETED";
  return undefined;
}

function randomSuffix(): string {
  let suffix = "";
  for (let i = 0; i < 5; i++) suffix += GENERATED_NAME_ALPHABET[Math.floor(Math.random() * GENERATED_NAME_ALPHABET.length)];
  return suffix;
}
