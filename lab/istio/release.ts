// Where the pinned Istio lives on this machine: the binaries scripts/build-istio.sh built
// into meshlane's cache, and the istio.io/istio module (its manifests/) in Go's module
// cache. Both come from the bootstrap; nothing here is in the repository.

import { execFileSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { meshlaneCache } from "../cache.js";

const VERSION_FILE = new URL("../../scripts/lib/istio-version.sh", import.meta.url);

function pinned(name: string): string {
  const m = new RegExp(`^${name}=(\\S+)$`, "m").exec(readFileSync(VERSION_FILE, "utf8"));
  if (!m) throw new Error(`scripts/lib/istio-version.sh: no ${name}=`);
  return m[1]!;
}

/** The tested Istio: the istio.io/istio pseudo-version and the cache key scripts/build-istio.sh uses. */
export const ISTIO_MODULE_VERSION = pinned("ISTIO_MODULE_VERSION");
export const ISTIO_PIN_NAME = pinned("ISTIO_PIN_NAME");


export function istioCacheDir(): string {
  return join(meshlaneCache(), `istio-${ISTIO_PIN_NAME}`);
}

export function istioBinary(name: "pilot-agent" | "istioctl"): string {
  const path = join(istioCacheDir(), "bin", name);
  if (!existsSync(path)) {
    throw new Error(`Istio's ${name} is not built (${path}); run scripts/build-istio.sh (scripts/bootstrap.sh does)`);
  }
  return path;
}

let moduleDir: string | undefined;
/** The pinned istio.io/istio module as the Go module cache holds it (read-only). */
export function istioModuleDir(): string {
  if (moduleDir) return moduleDir;
  const modcache = execFileSync("go", ["env", "GOMODCACHE"], { encoding: "utf8" }).trim();
  const dir = join(modcache, `istio.io/istio@${ISTIO_MODULE_VERSION}`);
  if (!existsSync(join(dir, "manifests"))) throw new Error(`istio.io/istio@${ISTIO_MODULE_VERSION} is not in the Go module cache (${dir}); run scripts/build-istio.sh`);
  moduleDir = dir;
  return dir;
}
