// The stand-in Kubernetes API server: start() serves it on 127.0.0.1 at an ephemeral
// port and hands back a KubeConfig that @kubernetes/client-node uses unmodified.

import { createServer as createHttpServer, type Server } from "node:http";
import { createServer as createHttpsServer } from "node:https";
import type { AddressInfo } from "node:net";
import { KubeConfig } from "@kubernetes/client-node";
import type { InProcessMutator, UserInfo } from "./admission.js";
import { Api } from "./api.js";
import { Router } from "./http.js";
import { Kubelet, type KubeletOptions } from "./kubelet.js";
import { RESOURCE_TYPES } from "./resources.js";
import { ObjectStore } from "./store.js";
import { createTestCa } from "./tls.js";
import { ServiceDirectory, type ServiceTarget } from "./webhook-call.js";

export type { InProcessMutator, UserInfo } from "./admission.js";
export type { KubeObject } from "./resources.js";
export { Kubelet, type KubeletOptions } from "./kubelet.js";
export { createTestCa, type TestCa } from "./tls.js";

export interface StandInOptions {
  /** HTTPS with a fresh CA carried in the KubeConfig (default), or plain HTTP. */
  tls?: boolean;
  /** Events kept for watch resumption; older resourceVersions get 410 Expired. */
  historyLimit?: number;
  bookmarkIntervalMs?: number;
  /** Who every request is from, as admission webhooks see it. */
  userInfo?: UserInfo;
  /** Namespaces that exist from the start, as in a new cluster. */
  namespaces?: string[];
  /** In-process webhooks (e.g. an Istio injector stand-in); more can be added later. */
  mutators?: InProcessMutator[];
}

export interface StandIn {
  url: string;
  kubeConfig: KubeConfig;
  /** Where webhook `service` references connect: name.namespace.svc:servicePort → target. */
  registerService(namespace: string, name: string, target: ServiceTarget, servicePort?: number): void;
  addMutator(mutator: InProcessMutator): void;
  /** Ends all open watch streams; clients reconnect from their last resourceVersion. */
  closeWatches(): void;
  /**
   * The kubelet of one node, talking to this server through its own client. The same
   * node always gets the same kubelet (so pod IPs are not handed out twice); options
   * are taken when it is first asked for.
   */
  kubelet(nodeName: string, options?: KubeletOptions): Kubelet;
  stop(): Promise<void>;
}

const DEFAULT_NAMESPACES = ["default", "kube-system", "kube-public", "kube-node-lease"];
const ADMIN: UserInfo = { username: "kubernetes-admin", groups: ["system:masters", "system:authenticated"] };

function kubeConfigFor(url: string, caPem: string | undefined): KubeConfig {
  const kubeConfig = new KubeConfig();
  kubeConfig.loadFromOptions({
    clusters: [{
      name: "meshlane-stand-in", server: url,
      ...(caPem ? { caData: Buffer.from(caPem).toString("base64") } : { skipTLSVerify: true }),
    }],
    users: [{ name: "meshlane-admin", token: "meshlane-stand-in" }],
    contexts: [{ name: "meshlane-stand-in", cluster: "meshlane-stand-in", user: "meshlane-admin", namespace: "default" }],
    currentContext: "meshlane-stand-in",
  });
  return kubeConfig;
}

export async function start(options: StandInOptions = {}): Promise<StandIn> {
  const store = new ObjectStore(options.historyLimit ?? 1000);
  const services = new ServiceDirectory();
  const mutators = [...(options.mutators ?? [])];
  const api = new Api(store, services, mutators, options.userInfo ?? ADMIN);
  const router = new Router(api, { bookmarkIntervalMs: options.bookmarkIntervalMs ?? 1000, currentRevision: () => store.currentRevision() });

  const namespaceType = RESOURCE_TYPES.find((t) => t.kind === "Namespace")!;
  for (const name of options.namespaces ?? DEFAULT_NAMESPACES) await api.create(namespaceType, undefined, { metadata: { name } });

  const useTls = options.tls ?? true;
  let server: Server;
  let caPem: string | undefined;
  if (useTls) {
    const ca = createTestCa("meshlane stand-in API server CA");
    const serving = ca.issue({ dnsNames: ["localhost", "kubernetes.default.svc"], ips: ["127.0.0.1"] });
    server = createHttpsServer({ key: serving.keyPem, cert: serving.certPem }, router.handle);
    caPem = ca.certPem;
  } else {
    server = createHttpServer(router.handle);
  }
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  const url = `${useTls ? "https" : "http"}://127.0.0.1:${port}`;
  const kubeConfig = kubeConfigFor(url, caPem);
  const kubelets = new Map<string, Kubelet>();

  return {
    url,
    kubeConfig,
    registerService: (namespace, name, target, servicePort) => services.register(namespace, name, target, servicePort),
    addMutator: (mutator) => void mutators.push(mutator),
    closeWatches: () => router.closeWatches(),
    kubelet(nodeName, kubeletOptions) {
      let kubelet = kubelets.get(nodeName);
      if (kubelet && kubeletOptions) throw new Error(`the kubelet of node ${nodeName} already exists; options apply only when it is first made`);
      if (!kubelet) kubelets.set(nodeName, (kubelet = new Kubelet(kubeConfig, nodeName, kubeletOptions)));
      return kubelet;
    },
    async stop() {
      router.closeWatches();
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections();
      await closed;
    },
  };
}
