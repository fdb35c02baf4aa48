// meshlane's control plane on one machine, as a cluster would run it: the Kubernetes
// API stand-in with Istio's injector (fed by Istio's fixtures), meshlane's
// MutatingWebhookConfiguration from manifests/all-in-one.yaml, `meshlane-webhook serve --registrar` and
// `meshlane-loader run --node` as real processes talking to the stand-in through a
// kubeconfig file. The data path underneath is the caller's: a TestNode's kubepods
// cgroup with meshlane attached (pins in `pinDir`). Shared by the end-to-end test,
// the propagation benchmark and the demo.

import { spawn, type ChildProcess } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { get as httpGet, type IncomingMessage } from "node:http";
import { get as httpsGet } from "node:https";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { AdmissionregistrationV1Api, CoreV1Api, PatchStrategy, setHeaderOptions, type V1Pod } from "@kubernetes/client-node";
import { validateInterception, type Interception } from "../registry/document.js";
import { ANNOTATION_INTERCEPTION, NAMESPACE_LABEL, NAMESPACE_LABEL_VALUE, SYSTEM_NAMESPACE } from "../registry/names.js";
import { listRegistrations, type StoredRegistration } from "../registry/configmap.js";
import { istioInjectorFromFixture, start, type StandIn } from "../test/kube/apiserver/index.js";
import { closedPort } from "./ports.js";
import { find, loadManifest } from "../test/manifests/manifest.js";

/** Run from the sources (tests, under tsx) or from dist/ (the built demo): one level deeper. */
const FROM_SOURCES = import.meta.url.endsWith(".ts");
const REPO = fileURLToPath(new URL(FROM_SOURCES ? "../" : "../../", import.meta.url));
/** Istio's own injection output for a plain pod (../shared/fixtures/istio, see PROVENANCE.md). */
const ISTIO_FIXTURE = join(REPO, "..", "shared", "fixtures", "istio", "pod.yaml.injected");
/** meshlane's webhook registration exactly as the manifest installs it (no caBundle: the webhook publishes its CA at start). */
const WEBHOOK_CONFIGURATION = find(loadManifest(join(REPO, "manifests", "all-in-one.yaml")), "MutatingWebhookConfiguration", "meshlane-webhook");
const WEBHOOK_SERVICE = WEBHOOK_CONFIGURATION.webhooks![0]!.clientConfig.service!;
const WEBHOOK_DNS_NAME = `${WEBHOOK_SERVICE.name}.${WEBHOOK_SERVICE.namespace}.svc`;

/** Namespace labels: Istio injects sidecars; meshlane accelerates them. */
export const ISTIO_INJECTION_LABELS = { "istio-injection": "enabled" };
export const MESHLANE_LABELS = { [NAMESPACE_LABEL]: NAMESPACE_LABEL_VALUE };

/** The CLIs run as TypeScript from the sources, as JavaScript from dist/. */
function cliCommand(cli: "webhook" | "loader"): string[] {
  return FROM_SOURCES ? ["--import", "tsx", join(REPO, cli, "cli.ts")] : [join(REPO, "dist", cli, "cli.js")];
}

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

export interface LocalClusterOptions {
  /** Holds the kubeconfig, the webhook's certificates, the audit log and the loader's state file. */
  workDir: string;
  nodeName: string;
  /** The node's pod cgroup root and meshlane's pins there (already attached). */
  kubepods: string;
  pinDir: string;
  registrarResync?: string;
  loaderResyncSeconds?: number;
  /**
   * The API stand-in over HTTPS (default) or plain HTTP. client-node 2.0.1 opens a new
   * connection, so a new TLS handshake, for every request; the stand-in does its half of
   * each in this process, which a load test would measure instead of meshlane.
   */
  apiTls?: boolean;
}

export class LocalCluster {
  readonly core: CoreV1Api;
  readonly kubeconfigPath: string;
  readonly auditLogPath: string;
  readonly loaderStateFile: string;
  webhook: ServiceProcess | undefined;
  loader: ServiceProcess | undefined;
  private webhookPort = 0;
  private loaderMetricsPort = 0;

  private constructor(readonly api: StandIn, readonly options: LocalClusterOptions) {
    this.core = api.kubeConfig.makeApiClient(CoreV1Api);
    this.kubeconfigPath = join(options.workDir, "kubeconfig");
    this.auditLogPath = join(options.workDir, "audit.log");
    this.loaderStateFile = join(options.workDir, "loader-state.json");
  }

  /** The API server, meshlane's webhook registration, then the webhook with its registrar, then the loader. */
  static async start(options: LocalClusterOptions): Promise<LocalCluster> {
    const api = await start({ tls: options.apiTls ?? true, mutators: [istioInjectorFromFixture(ISTIO_FIXTURE)] });
    const cluster = new LocalCluster(api, options);
    try {
      writeFileSync(cluster.kubeconfigPath, api.kubeConfig.exportConfig(), { mode: 0o600 });
      await cluster.core.createNamespace({ body: { metadata: { name: SYSTEM_NAMESPACE } } });
      await api.kubeConfig.makeApiClient(AdmissionregistrationV1Api).createMutatingWebhookConfiguration({ body: WEBHOOK_CONFIGURATION });
      await cluster.startWebhook();
      await cluster.startLoader();
    } catch (e) {
      await cluster.stop();
      throw e;
    }
    return cluster;
  }

  private async startWebhook(): Promise<void> {
    const { workDir, registrarResync = "1s" } = this.options;
    this.webhook = ServiceProcess.spawn("meshlane-webhook", [
      ...cliCommand("webhook"), "serve", "--self-signed", "--cert-dir", join(workDir, "webhook-certs"), "--webhook-config", WEBHOOK_CONFIGURATION.metadata!.name!,
      "--port", "0", "--host", "127.0.0.1", "--audit-log", this.auditLogPath,
      "--registrar", "--registrar-resync", registrarResync, "--kubeconfig", this.kubeconfigPath,
    ]);
    this.webhookPort = Number((await this.webhook.waitFor(/"port":(\d+)[^\n]*"msg":"meshlane webhook listening/))[1]);
    await this.webhook.waitFor(/"msg":"registrar running"/);
    this.makeWebhookReachable();
  }

  private async startLoader(): Promise<void> {
    const { nodeName, kubepods, pinDir, loaderResyncSeconds = 10 } = this.options;
    this.loader = ServiceProcess.spawn("meshlane-loader", [
      ...cliCommand("loader"), "run", "--node", nodeName, "--kubeconfig", this.kubeconfigPath, "--pin-dir", pinDir, "--kubepods", kubepods,
      "--listen", "127.0.0.1:0", "--resync", String(loaderResyncSeconds), "--state-file", this.loaderStateFile,
    ]);
    this.loaderMetricsPort = Number((await this.loader.waitFor(/"metrics":\{[^}]*"port":(\d+)[^\n]*"msg":"loader running"/))[1]);
  }

  /** The Service in front of the webhook has no endpoint, as when its pods are down: the API server cannot call it. */
  async makeWebhookUnreachable(): Promise<void> {
    this.api.registerService(WEBHOOK_SERVICE.namespace, WEBHOOK_SERVICE.name, { host: "127.0.0.1", port: await closedPort() }, WEBHOOK_SERVICE.port);
  }

  makeWebhookReachable(): void {
    this.api.registerService(WEBHOOK_SERVICE.namespace, WEBHOOK_SERVICE.name, { host: "127.0.0.1", port: this.webhookPort }, WEBHOOK_SERVICE.port);
  }

  async createNamespace(name: string, labels: Record<string, string>): Promise<void> {
    await this.core.createNamespace({ body: { metadata: { name, labels } } });
  }

  /** What `kubectl label namespace NAME key=value` does. */
  async labelNamespace(name: string, labels: Record<string, string>): Promise<void> {
    await this.core.patchNamespace({ name, body: { metadata: { labels } } }, setHeaderOptions("Content-Type", PatchStrategy.MergePatch));
  }

  /** Creates a one-container pod; the admission chain (Istio's injector, then meshlane's webhook) runs as in a cluster. */
  createPod(namespace: string, name: string): Promise<V1Pod> {
    return this.core.createNamespacedPod({
      namespace,
      body: { metadata: { name, labels: { app: name } }, spec: { containers: [{ name: "app", image: "registry.local/app:1", ports: [{ containerPort: 80 }] }] } },
    });
  }

  /** Binds the pod to this node and reports it Running with these IPs. */
  runPod(namespace: string, name: string, ips: string[]): Promise<V1Pod> {
    return this.api.kubelet(this.options.nodeName).run(namespace, name, ips);
  }

  /** This node's registry objects (registry/configmap.ts). */
  nodeRegistry(): Promise<StoredRegistration[]> {
    return listRegistrations(this.core, this.options.nodeName);
  }

  /** The Prometheus text of the webhook's (HTTPS, verified with its CA) or the loader's /metrics. */
  metrics(of: "webhook" | "loader"): Promise<string> {
    return new Promise((resolve, reject) => {
      const onResponse = (res: IncomingMessage) => {
        let body = "";
        res.on("data", (d) => (body += d));
        res.on("end", () => (res.statusCode === 200 ? resolve(body) : reject(new Error(`${of} /metrics answered ${res.statusCode}: ${body}`))));
      };
      const req = of === "webhook"
        ? httpsGet({ host: "127.0.0.1", port: this.webhookPort, path: "/metrics", servername: WEBHOOK_DNS_NAME, ca: readFileSync(join(this.options.workDir, "webhook-certs", "ca.crt")) }, onResponse)
        : httpGet({ host: "127.0.0.1", port: this.loaderMetricsPort, path: "/metrics" }, onResponse);
      req.on("error", (e) => reject(new Error(`${of} /metrics: ${e.message}`)));
    });
  }

  /** The audit log, one parsed JSON object a review. */
  auditLines(): Record<string, unknown>[] {
    return readFileSync(this.auditLogPath, "utf8").split("\n").filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>);
  }

  /** Stops the processes, then the API server; safe after a partial start. */
  async stop(): Promise<void> {
    await this.loader?.stop();
    await this.webhook?.stop();
    await this.api.stop();
  }
}

/** The interception a marked pod carries: what its sidecar and iptables must be set up with. */
export function interceptionOf(pod: V1Pod): Interception {
  const text = pod.metadata?.annotations?.[ANNOTATION_INTERCEPTION];
  if (!text) throw new Error(`pod ${pod.metadata?.namespace}/${pod.metadata?.name} has no ${ANNOTATION_INTERCEPTION} annotation`);
  return validateInterception(JSON.parse(text));
}
