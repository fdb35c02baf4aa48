// meshlane's control plane on one machine, as a cluster runs it: a real kube-apiserver
// and etcd (lab/controlplane/) with manifests/all-in-one.yaml applied by kubectl, a
// sidecar injector webhook (Istio's real injector, istioctl kube-inject, behind an admission webhook: see
// SidecarInjector), `meshlane-webhook serve --registrar` with its ServiceAccount's token,
// called by the API server, and one `meshlane-loader run --node` per node with the
// loader's token. A kubelet helper per node binds pods and reports their IPs as that
// node. The data path underneath is the caller's: each node's kubepods cgroup with
// meshlane attached (pins in `pinDir`). Shared by the end-to-end test, the
// propagation benchmark and the demo.

import { spawn, type ChildProcess } from "node:child_process";
import { readFileSync } from "node:fs";
import { get as httpGet, type IncomingMessage } from "node:http";
import { get as httpsGet } from "node:https";
import { join } from "node:path";
import { AdmissionregistrationV1Api, CoreV1Api, PatchStrategy, setHeaderOptions, type V1Pod } from "@kubernetes/client-node";
import { validateInterception, type Interception } from "../registry/document.js";
import { apiStatusCode } from "../registry/kube-errors.js";
import { ANNOTATION_INTERCEPTION, ANNOTATION_STATUS, NAMESPACE_LABEL, NAMESPACE_LABEL_VALUE, SYSTEM_NAMESPACE } from "../registry/names.js";
import { listRegistrations, type StoredRegistration } from "../registry/configmap.js";
import { ControlPlane, Kubelet, type Identity } from "./controlplane/index.js";
import { istioInjector, type SidecarInjector } from "./istio-injector-webhook.js";
import { closedPort } from "./ports.js";
import { until } from "./until.js";
import { find, loadManifest } from "../test/manifests/manifest.js";
import { cliCommand, REPO } from "./repo.js";

/** Run from the sources (tests, under tsx) or from dist/ (the built demo): one level deeper. */
const MANIFEST = join(REPO, "manifests", "all-in-one.yaml");
const OBJECTS = loadManifest(MANIFEST);
const WEBHOOK_CONFIGURATION = find(OBJECTS, "MutatingWebhookConfiguration", "meshlane-webhook");
const WEBHOOK_SERVICE = WEBHOOK_CONFIGURATION.webhooks![0]!.clientConfig.service!;
const WEBHOOK_DNS_NAME = `${WEBHOOK_SERVICE.name}.${WEBHOOK_SERVICE.namespace}.svc`;
const WEBHOOK_DEPLOYMENT = find(OBJECTS, "Deployment", "meshlane-webhook");
const WEBHOOK_SA = WEBHOOK_DEPLOYMENT.spec!.template.spec!.serviceAccountName!;
const LOADER_SA = find(OBJECTS, "DaemonSet", "meshlane-loader").spec!.template.spec!.serviceAccountName!;
/** The webhook's own args in the Deployment: --cert-secret, --webhook-config, --registrar, ... */
export const WEBHOOK_ARGS = WEBHOOK_DEPLOYMENT.spec!.template.spec!.containers[0]!.args!.filter((a) => !a.startsWith("--port"));
/** A labelled namespace the lab creates pods in only by dry-run, to see that admission is wired. */
const PROBE_NAMESPACE = "meshlane-lab-probe";

/** Namespace labels: Istio injects sidecars; meshlane accelerates them. */
export const ISTIO_INJECTION_LABELS = { "istio-injection": "enabled" };
export const MESHLANE_LABELS = { [NAMESPACE_LABEL]: NAMESPACE_LABEL_VALUE };

/** A meshlane process: its output is kept, and lines can be awaited. */
export class ServiceProcess {
  private text = "";
  private constructor(readonly name: string, readonly child: ChildProcess) {
    child.stdout!.on("data", (d) => (this.text += d));
    child.stderr!.on("data", (d) => (this.text += d));
  }

  static spawn(name: string, argv: string[]): ServiceProcess {
    return new ServiceProcess(name, spawn(process.execPath, argv, { stdio: ["ignore", "pipe", "pipe"] }));
  }

  output(): string {
    return this.text;
  }

  /** JSON log lines (pino) whose msg is `msg`. */
  logLines(msg: string): Record<string, unknown>[] {
    return this.text.split("\n").filter((l) => l.includes(`"msg":"${msg}"`)).map((l) => JSON.parse(l) as Record<string, unknown>);
  }

  /** Resolves with the first match of `re` in the output. */
  waitFor(re: RegExp, timeoutMs = 30_000): Promise<RegExpExecArray> {
    return new Promise((resolve, reject) => {
      const check = (): boolean => {
        const m = re.exec(this.text);
        if (m) {
          cleanup();
          resolve(m);
        }
        return m !== null;
      };
      const onExit = (code: number | null) => {
        cleanup();
        reject(new Error(`${this.name} exited (${code}) before printing ${re}:\n${this.text}`));
      };
      const timer = setTimeout(() => {
        cleanup();
        reject(new Error(`${this.name} printed nothing matching ${re} within ${timeoutMs} ms:\n${this.text}`));
      }, timeoutMs);
      const cleanup = () => {
        clearTimeout(timer);
        this.child.stdout!.off("data", check);
        this.child.stderr!.off("data", check);
        this.child.off("exit", onExit);
      };
      if (check()) return;
      this.child.stdout!.on("data", check);
      this.child.stderr!.on("data", check);
      this.child.once("exit", onExit);
    });
  }

  /** SIGTERM, then SIGKILL if it has not exited within 5 s. Resolves with the exit code. */
  stop(): Promise<number | null> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return Promise.resolve(this.child.exitCode);
    return new Promise((resolve) => {
      const kill = setTimeout(() => this.child.kill("SIGKILL"), 5000);
      this.child.once("exit", (code) => {
        clearTimeout(kill);
        resolve(code);
      });
      this.child.kill("SIGTERM");
    });
  }
}

export interface NodeOptions {
  name: string;
  /** The node's pod cgroup root and meshlane's pins there (already attached). */
  kubepods: string;
  pinDir: string;
}

export interface LocalClusterOptions {
  /** Holds the control plane's directory, the webhook's audit log and the loaders' state files. */
  workDir: string;
  nodes: NodeOptions[];
  registrarResync?: string;
  loaderResyncSeconds?: number;
  /** The sidecar injector the API server calls before meshlane; default: Istio's own injector (lab/istio-injector-webhook.ts). */
  injector?: SidecarInjector;
}

export interface LocalNode extends NodeOptions {
  kubelet: Kubelet;
  loader: ServiceProcess | undefined;
  loaderStateFile: string;
  loaderMetricsPort: number;
}

export class LocalCluster {
  readonly core: CoreV1Api;
  readonly auditLogPath: string;
  readonly nodes: LocalNode[] = [];
  webhook: ServiceProcess | undefined;
  private webhookIdentity: Identity | undefined;
  private webhookPort = 0;

  private constructor(readonly cp: ControlPlane, readonly options: LocalClusterOptions, readonly injector: SidecarInjector) {
    this.core = cp.admin.kubeConfig.makeApiClient(CoreV1Api);
    this.auditLogPath = join(options.workDir, "audit.log");
  }

  /**
   * The control plane, the manifest, the injector's configuration, the webhook with its
   * registrar (then its clientConfig pointed at it), then a loader per node.
   */
  static async start(options: LocalClusterOptions): Promise<LocalCluster> {
    const cp = await ControlPlane.start({ parentDir: options.workDir });
    const cluster = new LocalCluster(cp, options, options.injector ?? istioInjector());
    try {
      await cp.kubectl(["apply", "-f", MANIFEST]);
      const admission = cp.admin.kubeConfig.makeApiClient(AdmissionregistrationV1Api);
      await admission.createMutatingWebhookConfiguration({ body: await cluster.injector.start() });
      await cp.createNamespace(PROBE_NAMESPACE, { ...ISTIO_INJECTION_LABELS, ...MESHLANE_LABELS });
      cluster.webhookIdentity = await cp.serviceAccount(SYSTEM_NAMESPACE, WEBHOOK_SA);
      cluster.webhookPort = await closedPort();
      await cluster.startWebhook();
      await cluster.pointWebhookAt(cluster.webhookPort);
      await until("the API server calls the injector and then meshlane's webhook", async () => (await cluster.admissionProbe()) === "accelerated", 30_000, 250);
      for (const node of options.nodes) {
        const kubelet = new Kubelet(node.name, { node: cp.node(node.name), scheduler: cp.admin });
        await kubelet.register();
        const local: LocalNode = { ...node, kubelet, loader: undefined, loaderStateFile: join(options.workDir, `loader-state-${node.name}.json`), loaderMetricsPort: 0 };
        cluster.nodes.push(local);
        await cluster.startLoader(local);
      }
    } catch (e) {
      await cluster.stop();
      throw e;
    }
    return cluster;
  }

  /** The webhook process as the Deployment runs it, on a fixed loopback port so that a restart keeps its URL. */
  async startWebhook(): Promise<void> {
    const { registrarResync = "1s" } = this.options;
    this.webhook = ServiceProcess.spawn("meshlane-webhook", [
      ...cliCommand("webhook"), ...WEBHOOK_ARGS, "--port", String(this.webhookPort), "--host", "127.0.0.1", "--san", "127.0.0.1",
      "--audit-log", this.auditLogPath, "--registrar-resync", registrarResync, "--kubeconfig", this.webhookIdentity!.kubeconfigPath,
    ]);
    await this.webhook.waitFor(/"msg":"meshlane webhook listening/);
    await this.webhook.waitFor(/"msg":"registrar running"/);
  }

  /** The webhook's pods are gone: the API server's calls are refused (failurePolicy Ignore decides). */
  async stopWebhook(): Promise<void> {
    await this.webhook?.stop();
    this.webhook = undefined;
  }

  private async pointWebhookAt(port: number): Promise<void> {
    const admission = this.cp.admin.kubeConfig.makeApiClient(AdmissionregistrationV1Api);
    await admission.patchMutatingWebhookConfiguration({ name: WEBHOOK_CONFIGURATION.metadata!.name!, body: loopbackClientConfigPatch(port) }, setHeaderOptions("Content-Type", PatchStrategy.JsonPatch));
  }

  /** meshlane's marking of a pod created by server-side dry-run in a labelled namespace (admission runs, nothing is stored). */
  private async admissionProbe(): Promise<string | undefined> {
    const pod = await this.core.createNamespacedPod({ namespace: PROBE_NAMESPACE, dryRun: "All", body: podBody("probe") });
    return pod.metadata?.annotations?.[ANNOTATION_STATUS];
  }

  private async startLoader(node: LocalNode): Promise<void> {
    const { loaderResyncSeconds = 10 } = this.options;
    const identity = await this.cp.serviceAccount(SYSTEM_NAMESPACE, LOADER_SA);
    node.loader = ServiceProcess.spawn(`meshlane-loader ${node.name}`, [
      ...cliCommand("loader"), "run", "--node", node.name, "--kubeconfig", identity.kubeconfigPath, "--pin-dir", node.pinDir, "--kubepods", node.kubepods,
      "--listen", "127.0.0.1:0", "--resync", String(loaderResyncSeconds), "--state-file", node.loaderStateFile,
    ]);
    node.loaderMetricsPort = Number((await node.loader.waitFor(/"metrics":\{[^}]*"port":(\d+)[^\n]*"msg":"loader running"/))[1]);
  }

  node(name = this.nodes[0]!.name): LocalNode {
    const node = this.nodes.find((n) => n.name === name);
    if (!node) throw new Error(`no node ${name} in this cluster (${this.nodes.map((n) => n.name).join(", ")})`);
    return node;
  }

  /** A namespace with these labels (and its default ServiceAccount). */
  createNamespace(name: string, labels: Record<string, string>): Promise<void> {
    return this.cp.createNamespace(name, labels);
  }

  /** `kubectl label namespace NAME key=value`. */
  async labelNamespace(name: string, labels: Record<string, string>): Promise<void> {
    await this.cp.kubectl(["label", "namespace", name, "--overwrite", ...Object.entries(labels).map(([k, v]) => `${k}=${v}`)]);
  }

  /**
   * `kubectl create` of a one-container pod: the API server runs the admission chain (the
   * injector, then meshlane's webhook). `nodeName` places it on a node at creation
   * (spec.nodeName, as a user pinning a pod does); otherwise runPod binds it.
   */
  async createPod(namespace: string, name: string, nodeName?: string): Promise<V1Pod> {
    if (nodeName !== undefined) this.node(nodeName); // a clear error for a node without a kubelet here
    return JSON.parse(await this.cp.kubectl(["create", "-n", namespace, "-o", "json", "-f", "-"], { input: JSON.stringify(podBody(name, nodeName)) })) as V1Pod;
  }

  /** `kubectl delete pod`, and the node's kubelet confirming the pod's containers are gone. */
  async deletePod(namespace: string, name: string): Promise<void> {
    await this.cp.kubectl(["delete", "pod", "-n", namespace, name, "--wait=false"]);
    const pod = await this.core.readNamespacedPod({ namespace, name }).catch((e) => (apiStatusCode(e) === 404 ? undefined : Promise.reject(e)));
    if (pod?.spec?.nodeName) await this.node(pod.spec.nodeName).kubelet.confirmDeletion(namespace, name);
  }

  /** Binds the pod to the node (default: the first) and reports it Running with these IPs, as its kubelet. */
  runPod(namespace: string, name: string, ips: string[], nodeName?: string): Promise<V1Pod> {
    return this.node(nodeName).kubelet.run(namespace, name, ips);
  }

  /** A node's registry objects (registry/configmap.ts); default: the first node. */
  nodeRegistry(nodeName = this.nodes[0]!.name): Promise<StoredRegistration[]> {
    return listRegistrations(this.core, nodeName);
  }

  /** The Prometheus text of the webhook's (HTTPS, verified with the CA it published) or a node's loader's /metrics. */
  async metrics(of: "webhook" | "loader", nodeName?: string): Promise<string> {
    const ca = of === "webhook" ? await this.webhookCa() : "";
    return new Promise((resolve, reject) => {
      const onResponse = (res: IncomingMessage) => {
        let body = "";
        res.on("data", (d) => (body += d));
        res.on("end", () => (res.statusCode === 200 ? resolve(body) : reject(new Error(`${of} /metrics answered ${res.statusCode}: ${body}`))));
      };
      const req = of === "webhook"
        ? httpsGet({ host: "127.0.0.1", port: this.webhookPort, path: "/metrics", servername: WEBHOOK_DNS_NAME, ca }, onResponse)
        : httpGet({ host: "127.0.0.1", port: this.node(nodeName).loaderMetricsPort, path: "/metrics" }, onResponse);
      req.on("error", (e) => reject(new Error(`${of} /metrics: ${e.message}`)));
    });
  }

  private async webhookCa(): Promise<string> {
    const mwc = await this.cp.admin.kubeConfig.makeApiClient(AdmissionregistrationV1Api).readMutatingWebhookConfiguration({ name: WEBHOOK_CONFIGURATION.metadata!.name! });
    return Buffer.from(mwc.webhooks![0]!.clientConfig.caBundle ?? "", "base64").toString();
  }

  /** The audit log, one parsed JSON object a review (the lab's dry-run probes left out). */
  auditLines(): Record<string, unknown>[] {
    return readFileSync(this.auditLogPath, "utf8").split("\n").filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => l.namespace !== PROBE_NAMESPACE);
  }

  /** Stops the loaders, the webhook, the injector, then the control plane; safe after a partial start. */
  async stop(): Promise<void> {
    try {
      for (const node of this.nodes) await node.loader?.stop();
      await this.webhook?.stop();
      await this.injector.stop();
    } finally {
      await this.cp.stop();
    }
  }
}

/**
 * The one change the lab makes to the manifest's MutatingWebhookConfiguration (a JSON
 * patch): clientConfig becomes a loopback URL with the manifest's path, as there is no
 * kube-proxy here and Endpoints may not hold loopback addresses. The webhook's
 * certificate must then name 127.0.0.1 (--san).
 */
export function loopbackClientConfigPatch(port: number): object[] {
  return WEBHOOK_CONFIGURATION.webhooks!.flatMap((w, i) => [
    { op: "test", path: `/webhooks/${i}/name`, value: w.name },
    { op: "remove", path: `/webhooks/${i}/clientConfig/service` },
    { op: "add", path: `/webhooks/${i}/clientConfig/url`, value: `https://127.0.0.1:${port}${w.clientConfig.service!.path}` },
  ]);
}

function podBody(name: string, nodeName?: string): V1Pod {
  return {
    apiVersion: "v1", kind: "Pod", metadata: { name, labels: { app: name } },
    spec: { ...(nodeName ? { nodeName } : {}), containers: [{ name: "app", image: "registry.local/app:1", ports: [{ containerPort: 80 }] }] },
  };
}

/** The interception a marked pod carries: what its sidecar and iptables must be set up with. */
export function interceptionOf(pod: V1Pod): Interception {
  const text = pod.metadata?.annotations?.[ANNOTATION_INTERCEPTION];
  if (!text) throw new Error(`pod ${pod.metadata?.namespace}/${pod.metadata?.name} has no ${ANNOTATION_INTERCEPTION} annotation`);
  return validateInterception(JSON.parse(text));
}
