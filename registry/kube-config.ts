// How meshlane's processes find the Kubernetes API: an explicit kubeconfig file,
// else $KUBECONFIG, else the pod's service account (in-cluster). Unlike
// client-node's loadFromDefault, finding nothing is an error rather than a silent
// http://localhost:8080.

import { KubeConfig } from "@kubernetes/client-node";

export function loadKubeConfig(file?: string): KubeConfig {
  const kubeConfig = new KubeConfig();
  try {
    if (file) kubeConfig.loadFromFile(file);
    else if (process.env.KUBECONFIG) kubeConfig.loadFromDefault();
    else if (process.env.KUBERNETES_SERVICE_HOST) kubeConfig.loadFromCluster();
    else throw new Error("no credentials: pass --kubeconfig FILE, set KUBECONFIG, or run in a pod with a service account");
  } catch (e) {
    throw new Error(`loading the Kubernetes configuration${file ? ` from ${file}` : ""}: ${(e as Error).message}`);
  }
  if (!kubeConfig.getCurrentCluster()) {
    throw new Error(`the Kubernetes configuration${file ? ` in ${file}` : ""} has no current cluster (current context: ${kubeConfig.getCurrentContext() || "none"})`);
  }
  return kubeConfig;
}
