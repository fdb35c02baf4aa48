// The mutating admission chain the real API server runs before storing an object:
// webhooks ordered by configuration name, then by position; rules, namespaceSelector
// and objectSelector decide who is called; failurePolicy decides what a failed call
// means; and an IfNeeded webhook is called once more when a webhook after it changed
// the object. In-process mutators (a stand-in for Istio's injector) take part in the
// same ordering and matching as if they were webhooks.

import { randomUUID } from "node:crypto";
import { ApiError, failure, internalError } from "./errors.js";
import { applyJsonPatch, deepEqual, type JsonPatchOperation } from "./patch.js";
import { apiVersionOf, type KubeObject, type ResourceType } from "./resources.js";
import { labelSelectorRequirements, matchesLabels, type LabelSelector } from "./selectors.js";
import { postAdmissionReview, WebhookCallError, type ClientConfig, type ServiceDirectory } from "./webhook-call.js";

export interface RuleWithOperations {
  operations?: string[];
  apiGroups?: string[];
  apiVersions?: string[];
  resources?: string[];
  scope?: string;
}

/** The matching part of a v1 MutatingWebhook, shared by real webhooks and in-process mutators. */
export interface WebhookMatch {
  name: string;
  rules?: RuleWithOperations[];
  namespaceSelector?: LabelSelector;
  objectSelector?: LabelSelector;
  failurePolicy?: "Fail" | "Ignore";
  reinvocationPolicy?: "Never" | "IfNeeded";
}

export interface MutatingWebhook extends WebhookMatch {
  clientConfig: ClientConfig;
  timeoutSeconds?: number;
}

export interface UserInfo {
  username: string;
  uid?: string;
  groups?: string[];
}

export type Operation = "CREATE" | "UPDATE";

export interface AdmissionRequest {
  uid: string;
  kind: { group: string; version: string; kind: string };
  resource: { group: string; version: string; resource: string };
  requestKind: { group: string; version: string; kind: string };
  requestResource: { group: string; version: string; resource: string };
  name?: string;
  namespace?: string;
  operation: Operation;
  userInfo: UserInfo;
  object: KubeObject;
  oldObject: KubeObject | null;
  dryRun: boolean;
  options: { kind: string; apiVersion: string };
}

/**
 * A function standing in for a webhook. It returns the object it wants stored (or
 * nothing for "no change"); a throw counts as a failed call, so failurePolicy applies.
 */
export interface InProcessMutator extends WebhookMatch {
  /** Orders it among MutatingWebhookConfigurations, as the real chain orders by configuration name. */
  configurationName: string;
  mutate(object: KubeObject, request: AdmissionRequest): KubeObject | undefined | Promise<KubeObject | undefined>;
}

export interface AdmissionAttributes {
  operation: Operation;
  resource: ResourceType;
  namespace?: string;
  object: KubeObject;
  oldObject?: KubeObject;
  dryRun: boolean;
  userInfo: UserInfo;
  /** Labels of the object's namespace, for namespaceSelector. */
  namespaceLabels?: Record<string, string>;
}

interface Hook {
  configurationName: string;
  match: WebhookMatch;
  /** Returns the mutated object (or undefined); throws WebhookCallError or ApiError. */
  call(request: AdmissionRequest, object: KubeObject): Promise<KubeObject | undefined>;
}

export const DEFAULT_POD_CREATE_RULES: RuleWithOperations[] = [
  { operations: ["CREATE"], apiGroups: [""], apiVersions: ["v1"], resources: ["pods"] },
];

function listed(values: string[] | undefined, value: string): boolean {
  return (values ?? []).some((v) => v === "*" || v === value);
}

function ruleMatches(rule: RuleWithOperations, attrs: AdmissionAttributes): boolean {
  const { resource } = attrs;
  const scope = rule.scope ?? "*";
  const scopeOk = scope === "*" || (scope === "Namespaced") === resource.namespaced;
  // "*" and "*/*" both cover every main resource; subresources are not admitted here.
  const resourceOk = (rule.resources ?? []).some((r) => r === "*" || r === "*/*" || r === resource.plural);
  return scopeOk && resourceOk && listed(rule.operations, attrs.operation) &&
    listed(rule.apiGroups, resource.group) && listed(rule.apiVersions, resource.version);
}

function shouldCall(match: WebhookMatch, attrs: AdmissionAttributes): boolean {
  if (!(match.rules ?? []).some((rule) => ruleMatches(rule, attrs))) return false;
  // The namespaceSelector of a Namespace object is matched against the object itself;
  // cluster-scoped objects always pass it.
  const namespaceLabels = attrs.resource.kind === "Namespace" ? attrs.object.metadata.labels
    : attrs.resource.namespaced ? attrs.namespaceLabels : undefined;
  if ((attrs.resource.kind === "Namespace" || attrs.resource.namespaced) &&
      !matchesLabels(labelSelectorRequirements(match.namespaceSelector), namespaceLabels ?? {})) return false;
  const objectRequirements = labelSelectorRequirements(match.objectSelector);
  return matchesLabels(objectRequirements, attrs.object.metadata.labels) ||
    (attrs.oldObject !== undefined && matchesLabels(objectRequirements, attrs.oldObject.metadata.labels));
}

function buildRequest(attrs: AdmissionAttributes, object: KubeObject): AdmissionRequest {
  const { resource } = attrs;
  const kind = { group: resource.group, version: resource.version, kind: resource.kind };
  const gvr = { group: resource.group, version: resource.version, resource: resource.plural };
  return {
    uid: randomUUID(),
    kind, resource: gvr, requestKind: kind, requestResource: gvr,
    // A pod created with generateName has no name yet: the name is chosen after admission.
    ...(object.metadata.name ? { name: object.metadata.name } : {}),
    ...(attrs.namespace ? { namespace: attrs.namespace } : {}),
    operation: attrs.operation,
    userInfo: attrs.userInfo,
    object: structuredClone(object),
    oldObject: attrs.oldObject ? structuredClone(attrs.oldObject) : null,
    dryRun: attrs.dryRun,
    options: { kind: attrs.operation === "CREATE" ? "CreateOptions" : "UpdateOptions", apiVersion: "meta.k8s.io/v1" },
  };
}

function denial(webhookName: string, result: Record<string, unknown> | undefined): ApiError {
  const deniedBy = `admission webhook "${webhookName}" denied the request`;
  const message = typeof result?.message === "string" && result.message ? `${deniedBy}: ${result.message}`
    : typeof result?.reason === "string" && result.reason ? `${deniedBy}: ${result.reason}` : `${deniedBy} without explanation`;
  const code = typeof result?.code === "number" && result.code >= 400 ? result.code : 400;
  const reason = typeof result?.reason === "string" ? result.reason : "";
  return failure(code, reason, message, result?.details as ApiError["status"]["details"]);
}

function remoteHook(configurationName: string, webhook: MutatingWebhook, services: ServiceDirectory): Hook {
  return {
    configurationName,
    match: webhook,
    async call(request, object) {
      const timeoutSeconds = webhook.timeoutSeconds ?? 10;
      const reply = await postAdmissionReview(webhook.name, webhook.clientConfig, services, timeoutSeconds,
        { apiVersion: "admission.k8s.io/v1", kind: "AdmissionReview", request });
      const invalid = (why: string) => new WebhookCallError(webhook.name, `received invalid webhook response: ${why}`);
      const review = reply as { apiVersion?: string; kind?: string; response?: Record<string, unknown> };
      if (review.apiVersion !== "admission.k8s.io/v1" || review.kind !== "AdmissionReview") {
        throw invalid(`expected apiVersion admission.k8s.io/v1 and kind AdmissionReview, got ${review.apiVersion} ${review.kind}`);
      }
      const response = review.response;
      if (!response) throw invalid("response is missing");
      if (response.uid !== request.uid) throw invalid(`expected response.uid="${request.uid}", got "${response.uid}"`);
      if (response.allowed !== true) throw denial(webhook.name, response.status as Record<string, unknown> | undefined);
      if (response.patch === undefined) {
        if (response.patchType !== undefined) throw invalid("webhook returned response.patchType but not response.patch");
        return undefined;
      }
      if (response.patchType !== "JSONPatch") throw invalid(`webhook returned invalid response.patchType "${response.patchType}"`);
      // Past the call, a patch that cannot be decoded or applied is an internal error
      // that fails the request whatever the failurePolicy, as in the real dispatcher.
      let operations: JsonPatchOperation[];
      try {
        operations = JSON.parse(Buffer.from(String(response.patch), "base64").toString("utf8")) as JsonPatchOperation[];
        if (!Array.isArray(operations)) throw new Error("the patch is not a JSON array");
      } catch (err) {
        throw internalError(`admission webhook "${webhook.name}" returned an undecodable patch: ${(err as Error).message}`);
      }
      try {
        return applyJsonPatch(object, operations) as KubeObject;
      } catch (err) {
        throw internalError(`admission webhook "${webhook.name}" returned a patch that does not apply: ${(err as Error).message}`);
      }
    },
  };
}

function inProcessHook(mutator: InProcessMutator): Hook {
  return {
    configurationName: mutator.configurationName,
    match: mutator,
    async call(request, object) {
      try {
        return (await mutator.mutate(structuredClone(object), request)) ?? undefined;
      } catch (err) {
        throw new WebhookCallError(mutator.name, `in-process mutator failed: ${(err as Error).message}`);
      }
    },
  };
}

/** All hooks in the order the real chain calls them. */
export function orderHooks(
  configurations: KubeObject[], mutators: InProcessMutator[], services: ServiceDirectory,
): Hook[] {
  const hooks: Hook[] = configurations.flatMap((config) =>
    ((config.webhooks ?? []) as MutatingWebhook[]).map((webhook) => remoteHook(config.metadata.name!, webhook, services)));
  hooks.push(...mutators.map(inProcessHook));
  // Stable sort: webhooks of one configuration keep their order.
  return hooks.sort((a, b) => (a.configurationName < b.configurationName ? -1 : a.configurationName > b.configurationName ? 1 : 0));
}

/**
 * Runs the chain and returns the object to store. Throws ApiError: the webhook's
 * denial, or 500 InternalError for a failed call under failurePolicy Fail.
 */
export async function admit(hooks: Hook[], attrs: AdmissionAttributes): Promise<KubeObject> {
  let object = structuredClone(attrs.object);
  const invokedReinvocable = new Set<Hook>();
  let toReinvoke = new Set<Hook>();

  const runRound = async (isReinvocation: boolean): Promise<void> => {
    for (const hook of hooks) {
      if (!shouldCall(hook.match, { ...attrs, object })) continue;
      // A webhook skipped the first time is never called for the first time on reinvocation.
      if (isReinvocation && !toReinvoke.has(hook)) continue;
      let result: KubeObject | undefined;
      try {
        result = await hook.call(buildRequest(attrs, object), object);
      } catch (err) {
        if (!(err instanceof WebhookCallError)) throw err;
        if (hook.match.failurePolicy === "Ignore") continue;
        throw internalError(err.message);
      }
      if (result !== undefined && !deepEqual(result, object)) {
        object = result;
        // Every IfNeeded webhook that already saw the object must see this change.
        toReinvoke = new Set([...toReinvoke, ...invokedReinvocable]);
      }
      if (hook.match.reinvocationPolicy === "IfNeeded") invokedReinvocable.add(hook);
    }
  };

  await runRound(false);
  if (toReinvoke.size > 0) await runRound(true);
  return ensureSameIdentity(attrs, object);
}

/** Webhooks may change much, but not what the request addressed. */
function ensureSameIdentity(attrs: AdmissionAttributes, object: KubeObject): KubeObject {
  const expected = attrs.object;
  if (object.metadata.name !== expected.metadata.name || object.metadata.namespace !== expected.metadata.namespace ||
      object.apiVersion !== apiVersionOf(attrs.resource) || object.kind !== attrs.resource.kind) {
    throw internalError(`admission webhooks changed the ${attrs.resource.kind}'s name, namespace, apiVersion or kind`);
  }
  return object;
}
