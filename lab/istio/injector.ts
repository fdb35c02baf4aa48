// Istio's own sidecar injector, run offline: `istioctl kube-inject` with the injection
// template, values and mesh config that the pinned release's own charts render
// (`istioctl manifest generate --manifests <istio.io/istio module>/manifests`). Outputs are
// cached under meshlane's cache, keyed by Istio version, variant and input, so the tests'
// injected pods come from Istio itself and nothing is read from outside the checkout.

import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseAllDocuments, stringify } from "yaml";
import { ISTIO_MODULE_VERSION, istioBinary, istioCacheDir, istioModuleDir } from "./release.js";

type Obj = Record<string, unknown>;

/**
 * How the injector is configured (`istioctl manifest generate --set` values):
 * - classic: the default profile; istio-init runs istio-iptables
 * - cni:     values.pilot.cni.enabled, so istio-validation replaces istio-init
 * - dual:    classic with ISTIO_DUAL_STACK in the proxy metadata, as dual-stack clusters
 *            set it; istio-iptables then programs IPv4 and IPv6 (without it, only the
 *            family of the pod's first address: the lab's pods have both)
 */
export const VARIANTS = {
  classic: [],
  cni: ["values.pilot.cni.enabled=true"],
  dual: ["meshConfig.defaultConfig.proxyMetadata.ISTIO_DUAL_STACK=true"],
} as const satisfies Record<string, readonly string[]>;
export type Variant = keyof typeof VARIANTS;

function docs(text: string): Obj[] {
  return parseAllDocuments(text)
    .map((d) => d.toJS() as Obj | null)
    .filter((d): d is Obj => d !== null && typeof d === "object");
}

function atomicWrite(path: string, text: string): void {
  writeFileSync(`${path}.tmp`, text);
  renameSync(`${path}.tmp`, path);
}

/** The files kube-inject reads, rendered once per variant by Istio's own chart rendering. */
function injectorFiles(variant: Variant): { config: string; values: string; mesh: string } {
  const dir = join(istioCacheDir(), "injector", variant);
  const files = { config: join(dir, "config.yaml"), values: join(dir, "values.json"), mesh: join(dir, "mesh.yaml") };
  if (existsSync(files.mesh)) return files;
  mkdirSync(dir, { recursive: true });
  const sets = VARIANTS[variant].flatMap((s) => ["--set", s]);
  const rendered = execFileSync(istioBinary("istioctl"), ["manifest", "generate", "--manifests", join(istioModuleDir(), "manifests"), ...sets], {
    encoding: "utf8",
    maxBuffer: 64 << 20,
    stdio: ["ignore", "pipe", "pipe"],
  });
  const configMap = (name: string): Obj => {
    const cm = docs(rendered).find((d) => d.kind === "ConfigMap" && (d.metadata as Obj | undefined)?.name === name);
    if (!cm) throw new Error(`istioctl manifest generate (${variant}) rendered no ConfigMap ${name}`);
    return cm.data as Obj;
  };
  const injector = configMap("istio-sidecar-injector");
  atomicWrite(files.config, String(injector.config));
  atomicWrite(files.values, String(injector.values));
  atomicWrite(files.mesh, String(configMap("istio").mesh));
  return files;
}

/** A Deployment's template becomes a Pod; a bare Pod stays as it is. */
export function podOf(doc: Obj): Obj {
  if (doc.kind === "Pod") return doc;
  const template = (doc.spec as Obj | undefined)?.template as Obj | undefined;
  if (!template) throw new Error(`${String(doc.kind)} ${String((doc.metadata as Obj | undefined)?.name)} has no spec.template`);
  const metadata = { ...(template.metadata as Obj), generateName: `${String((doc.metadata as Obj).name)}-` };
  return { apiVersion: "v1", kind: "Pod", metadata, spec: template.spec };
}

/**
 * Runs Istio's injector over `inputs` (Pods or Deployments) in one kube-inject call and
 * returns its outputs in the same order. Cached: the same inputs are injected once.
 */
export function inject(inputs: readonly Obj[], variant: Variant = "classic"): Obj[] {
  const text = inputs.map((d) => stringify(d)).join("---\n");
  const key = createHash("sha256").update(`${ISTIO_MODULE_VERSION}\n${variant}\n${text}`).digest("hex").slice(0, 24);
  const cacheDir = join(istioCacheDir(), "injected");
  const cached = join(cacheDir, `${key}.json`);
  if (existsSync(cached)) return JSON.parse(readFileSync(cached, "utf8")) as Obj[];
  const files = injectorFiles(variant);
  const work = mkdtempSync(join(tmpdir(), "meshlane-inject-"));
  try {
    const input = join(work, "in.yaml");
    writeFileSync(input, text);
    const out = execFileSync(
      istioBinary("istioctl"),
      // --revision: without it istioctl asks a cluster for the default revision and, with
      // none reachable, waits for ever; the injector files already say everything.
      ["kube-inject", "--revision", "default", "-f", input, "--injectConfigFile", files.config, "--valuesFile", files.values, "--meshConfigFile", files.mesh],
      { encoding: "utf8", maxBuffer: 256 << 20, stdio: ["ignore", "pipe", "pipe"], timeout: 120_000 },
    );
    const outputs = docs(out);
    if (outputs.length !== inputs.length) throw new Error(`istioctl kube-inject returned ${outputs.length} objects for ${inputs.length} inputs`);
    mkdirSync(cacheDir, { recursive: true });
    atomicWrite(cached, JSON.stringify(outputs));
    return outputs;
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}
