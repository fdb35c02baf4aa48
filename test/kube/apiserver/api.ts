// The API verbs, independent of HTTP: what a request does between decoding its body and
// encoding the answer. The order follows the real server's create and update handlers:
// wipe system fields, check the namespace exists, run mutating admission, apply the
// type's strategy (defaults, status ownership, validation), then write.

import { admit, orderHooks, type InProcessMutator, type Operation, type UserInfo } from "./admission.js";
import { ApiError, badRequest, conflict, notFound } from "./errors.js";
import { applyPatch } from "./patch.js";
import { apiVersionOf, RESOURCE_TYPES, timestampNow, type KubeObject, type ResourceType } from "./resources.js";
import { matchesFields, matchesLabels, parseFieldSelector, parseLabelSelector } from "./selectors.js";
import type { ObjectStore, Preconditions, WatchEvent } from "./store.js";
import { prepareCreate, prepareUpdate } from "./strategies.js";
import type { ServiceDirectory } from "./webhook-call.js";

export interface Selectors {
  labelSelector?: string;
  fieldSelector?: string;
}

const PATCH_ATTEMPTS = 5;
const NAMESPACES = RESOURCE_TYPES.find((t) => t.kind === "Namespace")!;
const WEBHOOK_CONFIGURATIONS = RESOURCE_TYPES.find((t) => t.kind === "MutatingWebhookConfiguration")!;

/** Fields only the server sets; a client's values are dropped, as WipeObjectMetaSystemFields does. */
function wipeSystemFields(obj: KubeObject): void {
  for (const f of ["uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "selfLink", "managedFields"]) {
    delete obj.metadata[f];
  }
}

function isObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === "object" && !Array.isArray(value);
}

export class Api {
  constructor(
    private readonly store: ObjectStore,
    private readonly services: ServiceDirectory,
    private readonly mutators: InProcessMutator[],
    private readonly userInfo: UserInfo,
  ) {}

  get(type: ResourceType, namespace: string | undefined, name: string): KubeObject {
    const obj = this.store.get(type, namespace, name);
    if (!obj) throw notFound(type, name);
    return obj;
  }

  private matcher(type: ResourceType, selectors: Selectors): (obj: KubeObject) => boolean {
    const labels = parseLabelSelector(selectors.labelSelector ?? "");
    const fields = parseFieldSelector(selectors.fieldSelector ?? "", type);
    return (obj) => matchesLabels(labels, obj.metadata.labels) && matchesFields(fields, obj);
  }

  list(type: ResourceType, namespace: string | undefined, selectors: Selectors): Record<string, unknown> {
    const matches = this.matcher(type, selectors);
    // Items of a list carry no apiVersion/kind on the wire; the list does.
    const items = this.store.list(type, namespace).filter(matches).map(({ apiVersion: _v, kind: _k, ...rest }) => rest);
    return { kind: `${type.kind}List`, apiVersion: apiVersionOf(type), metadata: { resourceVersion: this.store.currentRevision() }, items };
  }

  /** See ObjectStore.watch; resourceVersion "" or "0" means "current state, then changes". */
  watch(type: ResourceType, namespace: string | undefined, selectors: Selectors & { resourceVersion?: string },
    send: (event: WatchEvent) => void): () => void {
    const matches = this.matcher(type, selectors);
    const rv = selectors.resourceVersion ?? "";
    let from: number | undefined;
    if (rv !== "" && rv !== "0") {
      if (!/^[0-9]+$/.test(rv)) throw badRequest(`invalid resource version "${rv}"`);
      from = Number(rv);
    }
    return this.store.watch({ resource: type, ...(namespace !== undefined ? { namespace } : {}), matches }, from, send);
  }

  /** Checks the body is an object of this type and fills in what the URL implies. */
  private decode(type: ResourceType, namespace: string | undefined, body: unknown): KubeObject {
    if (!isObject(body)) throw badRequest(`the body of the request is not a JSON object`);
    const apiVersion = apiVersionOf(type);
    if ((body.kind !== undefined && body.kind !== type.kind) || (body.apiVersion !== undefined && body.apiVersion !== apiVersion)) {
      throw badRequest(`${String(body.kind)} in version "${String(body.apiVersion)}" cannot be handled as a ${type.kind}: expected ${apiVersion} ${type.kind}`);
    }
    const metadata = isObject(body.metadata) ? { ...body.metadata } : {};
    const obj = { ...structuredClone(body), apiVersion, kind: type.kind, metadata } as KubeObject;
    if (type.namespaced) {
      if (obj.metadata.namespace !== undefined && obj.metadata.namespace !== "" && obj.metadata.namespace !== namespace) {
        throw badRequest("the namespace of the provided object does not match the namespace sent on the request");
      }
      obj.metadata.namespace = namespace!;
    } else {
      delete obj.metadata.namespace;
    }
    return obj;
  }

  private namespaceLabels(type: ResourceType, namespace: string | undefined): Record<string, string> | undefined {
    if (!type.namespaced) return undefined;
    const ns = this.store.get(NAMESPACES, undefined, namespace!);
    // The NamespaceLifecycle plugin runs before any webhook.
    if (!ns) throw notFound(NAMESPACES, namespace!);
    return ns.metadata.labels ?? {};
  }

  private async runAdmission(operation: Operation, type: ResourceType, obj: KubeObject, old: KubeObject | undefined, dryRun: boolean): Promise<KubeObject> {
    const namespaceLabels = this.namespaceLabels(type, obj.metadata.namespace);
    // The real server never sends webhook configurations through webhooks.
    if (type === WEBHOOK_CONFIGURATIONS) return obj;
    const hooks = orderHooks(this.store.list(WEBHOOK_CONFIGURATIONS), this.mutators, this.services);
    return admit(hooks, {
      operation, resource: type, object: obj, dryRun, userInfo: this.userInfo,
      ...(obj.metadata.namespace ? { namespace: obj.metadata.namespace } : {}),
      ...(old ? { oldObject: old } : {}),
      ...(namespaceLabels ? { namespaceLabels } : {}),
    });
  }

  /** With dryRun the whole chain runs, webhooks see dryRun: true, and nothing is stored. */
  async create(type: ResourceType, namespace: string | undefined, body: unknown, dryRun = false): Promise<KubeObject> {
    const obj = this.decode(type, namespace, body);
    wipeSystemFields(obj);
    delete obj.metadata.resourceVersion;
    const admitted = await this.runAdmission("CREATE", type, obj, undefined, dryRun);
    prepareCreate(type, admitted);
    return dryRun ? admitted : this.store.create(type, admitted);
  }

  async update(type: ResourceType, namespace: string | undefined, name: string, body: unknown): Promise<KubeObject> {
    const obj = this.decode(type, namespace, body);
    if (obj.metadata.name !== name) {
      throw badRequest(`the name of the object (${obj.metadata.name ?? ""}) does not match the name on the URL (${name})`);
    }
    const old = this.get(type, namespace, name);
    wipeSystemFields(obj);
    const admitted = await this.runAdmission("UPDATE", type, obj, old, false);
    prepareUpdate(type, admitted, old);
    return this.store.update(type, admitted);
  }

  /**
   * A patch applies to the current object. Unless the patch itself sets a
   * resourceVersion, a conflict with a concurrent write is retried, as the real server does.
   */
  async patch(type: ResourceType, namespace: string | undefined, name: string, contentType: string, body: string): Promise<KubeObject> {
    for (let attempt = 1; ; attempt++) {
      const current = this.get(type, namespace, name);
      const patched = applyPatch(contentType, current, body) as KubeObject;
      const pinned = patched.metadata?.resourceVersion !== current.metadata.resourceVersion;
      try {
        return await this.update(type, namespace, name, patched);
      } catch (err) {
        if (pinned || attempt === PATCH_ATTEMPTS || !(err instanceof ApiError && err.status.reason === "Conflict")) throw err;
      }
    }
  }

  /** pods/status and the like: only `status` changes, with the usual resourceVersion precondition. */
  updateStatus(type: ResourceType, namespace: string | undefined, name: string, body: unknown): KubeObject {
    const obj = this.decode(type, namespace, body);
    const old = this.get(type, namespace, name);
    return this.store.update(type, { ...old, status: obj.status, metadata: { ...old.metadata, resourceVersion: obj.metadata.resourceVersion } });
  }

  patchStatus(type: ResourceType, namespace: string | undefined, name: string, contentType: string, body: string): KubeObject {
    return this.updateStatus(type, namespace, name, applyPatch(contentType, this.get(type, namespace, name), body));
  }

  /** pods/binding, the scheduler's verb: sets spec.nodeName once and marks the pod scheduled. */
  bind(type: ResourceType, namespace: string, name: string, body: unknown): Record<string, unknown> {
    const target = isObject(body) && isObject(body.target) ? body.target : undefined;
    if (typeof target?.name !== "string" || target.name === "") throw badRequest("a Binding needs target.name, the node");
    const pod = this.get(type, namespace, name);
    const spec = pod.spec as Record<string, unknown>;
    if (spec.nodeName) {
      throw conflict(type, name, `pod ${name} is already assigned to node "${String(spec.nodeName)}"`);
    }
    spec.nodeName = target.name;
    const status = (pod.status ?? {}) as Record<string, unknown>;
    const conditions = (Array.isArray(status.conditions) ? status.conditions : []) as Array<Record<string, unknown>>;
    status.conditions = [...conditions.filter((c) => c.type !== "PodScheduled"),
      { type: "PodScheduled", status: "True", lastTransitionTime: timestampNow() }];
    pod.status = status;
    this.store.update(type, pod);
    return { kind: "Status", apiVersion: "v1", metadata: {}, status: "Success", code: 201 };
  }

  delete(type: ResourceType, namespace: string | undefined, name: string, preconditions: Preconditions): Record<string, unknown> {
    if (type === NAMESPACES) {
      this.store.checkPreconditions(type, namespace, name, preconditions);
      // Immediate, not the real two-phase Terminating: contents first, then the namespace.
      for (const t of RESOURCE_TYPES.filter((t) => t.namespaced)) {
        for (const obj of this.store.list(t, name)) this.store.delete(t, name, obj.metadata.name!);
      }
    }
    const deleted = this.store.delete(type, namespace, name, preconditions);
    if (type.returnsDeletedObject) return deleted;
    return {
      kind: "Status", apiVersion: "v1", metadata: {}, status: "Success",
      details: { name, ...(type.group ? { group: type.group } : {}), kind: type.plural, uid: deleted.metadata.uid },
    };
  }
}
