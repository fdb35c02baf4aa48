// What the real server does to an object of each type between decoding and storing
// it: defaulting, system-owned fields (status, the namespace name label), validation
// (422 with field causes), and which parts an update may not change.

import { invalid, type StatusCause } from "./errors.js";
import type { KubeObject, ResourceType } from "./resources.js";

type Obj = Record<string, unknown>;

function field(obj: Obj, name: string): Obj {
  const value = obj[name];
  if (value !== null && typeof value === "object" && !Array.isArray(value)) return value as Obj;
  return (obj[name] = {});
}

function list(obj: Obj, name: string): Obj[] {
  const value = obj[name];
  return Array.isArray(value) ? (value as Obj[]) : [];
}

interface Strategy {
  prepareForCreate?(obj: KubeObject): void;
  /** Main-resource update: fields owned by subresources or the system come from `old`. */
  prepareForUpdate?(obj: KubeObject, old: KubeObject): void;
  validate?(obj: KubeObject): StatusCause[];
  validateUpdate?(obj: KubeObject, old: KubeObject): StatusCause[];
}

const required = (fieldPath: string): StatusCause => ({ reason: "FieldValueRequired", message: "Required value", field: fieldPath });
const invalidValue = (fieldPath: string, value: unknown, why: string): StatusCause =>
  ({ reason: "FieldValueInvalid", message: `Invalid value: ${JSON.stringify(value)}: ${why}`, field: fieldPath });

const NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name";

const namespaceStrategy: Strategy = {
  prepareForCreate(obj) {
    obj.metadata.labels = { ...obj.metadata.labels, [NAMESPACE_NAME_LABEL]: obj.metadata.name! };
    field(obj, "spec").finalizers = ["kubernetes"];
    obj.status = { phase: "Active" };
  },
  prepareForUpdate(obj, old) {
    obj.metadata.labels = { ...obj.metadata.labels, [NAMESPACE_NAME_LABEL]: obj.metadata.name! };
    obj.spec = old.spec;
    obj.status = old.status;
  },
};

/** The pod spec with the fields an update may change blanked out. */
function immutablePodSpec(pod: KubeObject): Obj {
  const spec = structuredClone(field(pod, "spec"));
  for (const containers of ["containers", "initContainers"]) for (const c of list(spec, containers)) delete c.image;
  delete spec.activeDeadlineSeconds;
  delete spec.tolerations;
  return spec;
}

const podStrategy: Strategy = {
  prepareForCreate(obj) {
    obj.status = { phase: "Pending" };
  },
  prepareForUpdate(obj, old) {
    obj.status = old.status;
  },
  validate(obj) {
    const spec = field(obj, "spec");
    const containers = list(spec, "containers");
    if (containers.length === 0) return [required("spec.containers")];
    const causes: StatusCause[] = [];
    const seen = new Set<string>();
    for (const group of ["initContainers", "containers"]) {
      list(spec, group).forEach((c, i) => {
        if (typeof c.name !== "string" || c.name === "") causes.push(required(`spec.${group}[${i}].name`));
        else if (seen.has(c.name)) causes.push({ reason: "FieldValueDuplicate", message: `Duplicate value: "${c.name}"`, field: `spec.${group}[${i}].name` });
        else seen.add(c.name);
        if (typeof c.image !== "string" || c.image === "") causes.push(required(`spec.${group}[${i}].image`));
      });
    }
    return causes;
  },
  validateUpdate(obj, old) {
    if (JSON.stringify(immutablePodSpec(obj)) === JSON.stringify(immutablePodSpec(old))) return [];
    return [{
      reason: "FieldValueForbidden", field: "spec",
      message: "Forbidden: pod updates may not change fields other than `spec.containers[*].image`, `spec.initContainers[*].image`, `spec.activeDeadlineSeconds`, `spec.tolerations`",
    }];
  },
};

/** stringData is write-only: it lands base64-encoded in data, as the real server stores it. */
function foldStringData(secret: KubeObject): void {
  secret.type ??= "Opaque";
  const stringData = secret.stringData as Record<string, string> | undefined;
  if (!stringData) return;
  const data = field(secret, "data");
  for (const [key, value] of Object.entries(stringData)) data[key] = Buffer.from(value, "utf8").toString("base64");
  delete secret.stringData;
}

const secretStrategy: Strategy = {
  prepareForCreate: foldStringData,
  prepareForUpdate: foldStringData,
  validateUpdate(obj, old) {
    if (obj.type === old.type) return [];
    return [{ reason: "FieldValueInvalid", message: `Invalid value: ${JSON.stringify(obj.type)}: field is immutable`, field: "type" }];
  },
};

const WEBHOOK_NAME = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?){2,}$/;

/** The v1 defaults every stored webhook carries; admission reads them without fallbacks. */
function defaultWebhook(hook: Obj): void {
  hook.failurePolicy ??= "Fail";
  hook.matchPolicy ??= "Equivalent";
  hook.namespaceSelector ??= {};
  hook.objectSelector ??= {};
  hook.reinvocationPolicy ??= "Never";
  hook.timeoutSeconds ??= 10;
  for (const rule of list(hook, "rules")) rule.scope ??= "*";
  const service = field(hook, "clientConfig").service as Obj | undefined;
  if (service) service.port ??= 443;
}

function validateWebhook(hook: Obj, i: number, names: Set<string>): StatusCause[] {
  const at = (f: string) => `webhooks[${i}].${f}`;
  const causes: StatusCause[] = [];
  const name = hook.name;
  if (typeof name !== "string" || name === "") causes.push(required(at("name")));
  else if (!WEBHOOK_NAME.test(name)) causes.push(invalidValue(at("name"), name, "should be a domain with at least three segments separated by dots"));
  else if (names.has(name)) causes.push({ reason: "FieldValueDuplicate", message: `Duplicate value: "${name}"`, field: at("name") });
  else names.add(name);
  if (hook.sideEffects === undefined) causes.push(required(at("sideEffects")));
  else if (hook.sideEffects !== "None" && hook.sideEffects !== "NoneOnDryRun") {
    causes.push(invalidValue(at("sideEffects"), hook.sideEffects, `supported values: "None", "NoneOnDryRun"`));
  }
  const versions = hook.admissionReviewVersions;
  if (!Array.isArray(versions) || versions.length === 0) causes.push(required(at("admissionReviewVersions")));
  else if (!versions.includes("v1")) causes.push(invalidValue(at("admissionReviewVersions"), versions, "must include v1: the stand-in speaks admission.k8s.io/v1 only"));
  const clientConfig = field(hook, "clientConfig");
  const hasUrl = clientConfig.url !== undefined, hasService = clientConfig.service !== undefined;
  if (hasUrl === hasService) causes.push(required(`${at("clientConfig")}: exactly one of url or service`));
  if (hasUrl && !String(clientConfig.url).startsWith("https://")) causes.push(invalidValue(at("clientConfig.url"), clientConfig.url, "'https' is the only allowed URL scheme"));
  const timeout = hook.timeoutSeconds as number;
  if (!(timeout >= 1 && timeout <= 30)) causes.push(invalidValue(at("timeoutSeconds"), timeout, "the timeout value must be between 1 and 30 seconds"));
  if (hook.failurePolicy !== "Fail" && hook.failurePolicy !== "Ignore") causes.push(invalidValue(at("failurePolicy"), hook.failurePolicy, `supported values: "Fail", "Ignore"`));
  if (hook.reinvocationPolicy !== "Never" && hook.reinvocationPolicy !== "IfNeeded") causes.push(invalidValue(at("reinvocationPolicy"), hook.reinvocationPolicy, `supported values: "IfNeeded", "Never"`));
  if (hook.matchConditions !== undefined) causes.push({ reason: "FieldValueNotSupported", message: "Unsupported value: the stand-in does not evaluate CEL match conditions", field: at("matchConditions") });
  return causes;
}

const mutatingWebhookStrategy: Strategy = {
  prepareForCreate(obj) {
    list(obj, "webhooks").forEach(defaultWebhook);
  },
  prepareForUpdate(obj) {
    list(obj, "webhooks").forEach(defaultWebhook);
  },
  validate(obj) {
    const names = new Set<string>();
    return list(obj, "webhooks").flatMap((hook, i) => validateWebhook(hook, i, names));
  },
};

const STRATEGIES: Record<string, Strategy> = {
  Namespace: namespaceStrategy,
  Pod: podStrategy,
  Secret: secretStrategy,
  MutatingWebhookConfiguration: mutatingWebhookStrategy,
};

const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

function validateName(resource: ResourceType, obj: KubeObject): StatusCause[] {
  const { name, generateName } = obj.metadata;
  if (!name && !generateName) {
    return [{ reason: "FieldValueRequired", message: "Required value: name or generateName is required", field: "metadata.name" }];
  }
  // A generated name is the prefix plus five letters, so checking prefix + "x" covers it.
  const candidate = name || `${generateName}x`;
  const label = resource.kind === "Namespace";
  const ok = label ? DNS_LABEL.test(candidate) && candidate.length <= 63 : DNS_SUBDOMAIN.test(candidate) && candidate.length <= 253;
  if (ok) return [];
  return [invalidValue(name ? "metadata.name" : "metadata.generateName", name || generateName,
    `a lowercase RFC 1123 ${label ? "label" : "subdomain"} must consist of lower case alphanumeric characters, '-'${label ? "" : " or '.'"}, and must start and end with an alphanumeric character`)];
}

function reject(resource: ResourceType, obj: KubeObject, causes: StatusCause[]): void {
  if (causes.length > 0) throw invalid(resource, obj.metadata.name ?? obj.metadata.generateName ?? "", causes);
}

/** Applies create defaults and validates; throws a 422 ApiError. Mutates `obj`. */
export function prepareCreate(resource: ResourceType, obj: KubeObject): void {
  reject(resource, obj, validateName(resource, obj));
  const strategy = STRATEGIES[resource.kind];
  strategy?.prepareForCreate?.(obj);
  reject(resource, obj, strategy?.validate?.(obj) ?? []);
}

/** Applies update rules against the stored object and validates; throws a 422 ApiError. Mutates `obj`. */
export function prepareUpdate(resource: ResourceType, obj: KubeObject, old: KubeObject): void {
  const strategy = STRATEGIES[resource.kind];
  strategy?.prepareForUpdate?.(obj, old);
  reject(resource, obj, [...(strategy?.validate?.(obj) ?? []), ...(strategy?.validateUpdate?.(obj, old) ?? [])]);
}
