// One test node with meshlane attached and the local cluster on it (API server,
// Istio's injector, meshlane's webhook with its registrar, and the loader), as the
// benchmarks that register many pods run it: production resync periods, one namespace
// labelled for Istio and meshlane. Everything is removed afterwards, also on failure.

import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { Mesh } from "./topology/mesh.js";
import { ISTIO_INJECTION_LABELS, LocalCluster, MESHLANE_LABELS } from "./local-cluster.js";

export async function withNodeCluster<T>(nodeName: string, namespace: string, body: (mesh: Mesh, cluster: LocalCluster) => Promise<T>): Promise<T> {
  const mesh = await Mesh.create();
  let cluster: LocalCluster | undefined;
  try {
    mesh.attach();
    const workDir = join(mesh.node.workDir, "cluster");
    mkdirSync(workDir);
    // Production resync periods: a resync lists every pod, which is not what these benchmarks measure.
    cluster = await LocalCluster.start({ workDir, nodes: [{ name: nodeName, kubepods: mesh.node.kubepods, pinDir: mesh.pinDir }], registrarResync: "1m", loaderResyncSeconds: 10 });
    await cluster.createNamespace(namespace, { ...ISTIO_INJECTION_LABELS, ...MESHLANE_LABELS });
    return await body(mesh, cluster);
  } finally {
    await cluster?.stop();
    await mesh.destroy();
  }
}

/** Pod i's IP in 10.96.0.0/16, skipping .0 and .255 in each /24 so no address looks like a network or broadcast one. */
export function podIp(i: number): string {
  return `10.96.${Math.floor(i / 250)}.${(i % 250) + 1}`;
}

/** One sample of a Prometheus text, e.g. meshlane_loader_process_resident_memory_bytes; `labels` as printed, e.g. state="registered". */
export function metricValue(metrics: string, name: string, labels = ""): number {
  const m = new RegExp(`^${name}${labels ? `\\{${labels}\\}` : "(?:\\{[^}]*\\})?"} (\\S+)$`, "m").exec(metrics);
  if (!m) throw new Error(`metric ${name}${labels ? `{${labels}}` : ""} not found`);
  return Number(m[1]);
}
