// Where the control-plane binaries are: scripts/build-kube.sh knows the pinned versions,
// builds them on first use (minutes, progress on stderr) and prints the directory.
// KUBEBUILDER_ASSETS short-cuts it (envtest's convention).

import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

/** Run from the sources (tests, under tsx) or from dist/ (the built demo): one level deeper. */
const FROM_SOURCES = import.meta.url.endsWith(".ts");
export const REPO = fileURLToPath(new URL(FROM_SOURCES ? "../../" : "../../../", import.meta.url));

export interface KubeAssets {
  etcd: string;
  kubeApiserver: string;
  kubectl: string;
}

let cached: KubeAssets | undefined;

export function kubeAssets(): KubeAssets {
  if (cached) return cached;
  const run = spawnSync("bash", [join(REPO, "scripts", "build-kube.sh")], { encoding: "utf8", stdio: ["ignore", "pipe", "inherit"] });
  if (run.status !== 0) throw new Error(`scripts/build-kube.sh failed (${run.status ?? run.signal}); its output is above`);
  const dir = run.stdout.trim().split("\n").pop()!;
  cached = { etcd: join(dir, "etcd"), kubeApiserver: join(dir, "kube-apiserver"), kubectl: join(dir, "kubectl") };
  return cached;
}
