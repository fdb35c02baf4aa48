// An in-process stand-in for Istio's sidecar injector, fed by Istio's own injection
// test data: it copies the containers, init containers and volumes that a fixture's
// `sidecar.istio.io/status` annotation lists as injected, plus the annotations and
// labels the injector adds. The copied containers are verbatim, so their arguments
// (istio-init's capture flags) are the fixture's: pick the fixture whose traffic
// annotations match the pods under test.

import { readFileSync } from "node:fs";
import { parseAllDocuments } from "yaml";
import { DEFAULT_POD_CREATE_RULES, type InProcessMutator } from "./admission.js";
import type { KubeObject } from "./resources.js";

const STATUS_ANNOTATION = "sidecar.istio.io/status";
const INJECT_KEY = "sidecar.istio.io/inject";
/** Annotations Istio's injector adds; a pod's own value wins. */
const INJECTED_ANNOTATION = /^(prometheus\.io\/|istio\.io\/rev$|sidecar\.istio\.io\/status$)/;

type Obj = Record<string, unknown>;

interface InjectedParts {
  statusAnnotation: string;
  annotations: Record<string, string>;
  initContainers: Obj[];
  containers: Obj[];
  volumes: Obj[];
}

/** Reads the pod template of an injected Pod or Deployment fixture. */
function readFixture(path: string): InjectedParts {
  const doc = parseAllDocuments(readFileSync(path, "utf8")).map((d) => d.toJS() as Obj | null).find((d) => d);
  if (!doc) throw new Error(`${path}: no YAML document`);
  const template = (doc.kind === "Pod" ? doc : (doc.spec as Obj | undefined)?.template) as
    { metadata?: { annotations?: Record<string, string> }; spec?: Obj } | undefined;
  const annotations = template?.metadata?.annotations ?? {};
  const statusAnnotation = annotations[STATUS_ANNOTATION];
  if (!statusAnnotation || !template?.spec) throw new Error(`${path}: not an Istio-injected pod template (no ${STATUS_ANNOTATION})`);
  const status = JSON.parse(statusAnnotation) as { initContainers: string[] | null; containers: string[] | null; volumes: string[] | null };
  const pick = (list: unknown, names: string[] | null) =>
    ((list ?? []) as Obj[]).filter((item) => (names ?? []).includes(item.name as string));
  return {
    statusAnnotation,
    annotations: Object.fromEntries(Object.entries(annotations).filter(([key]) => INJECTED_ANNOTATION.test(key))),
    initContainers: pick(template.spec.initContainers, status.initContainers),
    containers: pick(template.spec.containers, status.containers),
    volumes: pick(template.spec.volumes, status.volumes),
  };
}

export interface IstioInjectorOptions {
  /** Namespaces whose pods get a sidecar; Istio's default is istio-injection=enabled. */
  namespaceSelector?: InProcessMutator["namespaceSelector"];
  reinvocationPolicy?: InProcessMutator["reinvocationPolicy"];
}

export function istioInjectorFromFixture(fixturePath: string, options: IstioInjectorOptions = {}): InProcessMutator {
  const parts = readFixture(fixturePath);
  return {
    configurationName: "istio-sidecar-injector",
    name: "namespace.sidecar-injector.istio.io",
    rules: DEFAULT_POD_CREATE_RULES,
    namespaceSelector: options.namespaceSelector ?? { matchLabels: { "istio-injection": "enabled" } },
    objectSelector: { matchExpressions: [{ key: INJECT_KEY, operator: "NotIn", values: ["false"] }] },
    reinvocationPolicy: options.reinvocationPolicy ?? "Never",
    failurePolicy: "Fail",
    mutate(pod: KubeObject): KubeObject | undefined {
      const annotations = pod.metadata.annotations ?? {};
      if (annotations[STATUS_ANNOTATION] || annotations[INJECT_KEY] === "false") return undefined;
      const spec = pod.spec as Obj;
      const appContainers = (spec.containers ?? []) as Obj[];
      const labels = pod.metadata.labels ?? {};
      const workload = labels["app.kubernetes.io/name"] ?? labels.app ?? pod.metadata.name ?? pod.metadata.generateName?.replace(/-$/, "") ?? "";
      const defaultContainer = String(appContainers[0]?.name ?? "");
      pod.metadata.annotations = {
        ...parts.annotations,
        "kubectl.kubernetes.io/default-container": defaultContainer,
        "kubectl.kubernetes.io/default-logs-container": defaultContainer,
        ...annotations,
      };
      pod.metadata.labels = {
        "security.istio.io/tlsMode": "istio",
        "service.istio.io/canonical-name": workload,
        "service.istio.io/canonical-revision": labels["app.kubernetes.io/version"] ?? labels.version ?? "latest",
        ...labels,
      };
      spec.initContainers = [...structuredClone(parts.initContainers), ...((spec.initContainers ?? []) as Obj[])];
      spec.containers = [...appContainers, ...structuredClone(parts.containers)];
      spec.volumes = [...((spec.volumes ?? []) as Obj[]), ...structuredClone(parts.volumes)];
      return pod;
    },
  };
}
