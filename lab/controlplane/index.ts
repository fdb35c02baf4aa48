// A real Kubernetes control plane on loopback for tests and the demo, the way
// controller-runtime's envtest runs one: etcd with a temporary data directory and
// kube-apiserver with its own CA, serving certificate and ServiceAccount signing key,
// Node+RBAC authorization and the default admission plugins (plus NodeRestriction,
// as every real cluster enables it). No controller-manager, scheduler or kubelet:
// the lab does their few jobs through the API (see kubelet.ts, createNamespace).
//
//   const cp = await ControlPlane.start();        // one per test file
//   cp.admin.kubeConfig                            // system:masters
//   await cp.serviceAccount("meshlane-system", "meshlane-loader")   // TokenRequest
//   cp.node("node-a")                              // system:node:node-a, group system:nodes
//   await cp.kubectl(["apply", "-f", file])        // the kubectl built with the apiserver
//   await cp.stop();                               // no process, port or directory left

import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { request } from "node:https";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CoreV1Api, KubeConfig } from "@kubernetes/client-node";
import { closedPort } from "../ports.js";
import { kubeAssets, type KubeAssets } from "./assets.js";
import { createPki, issueClientCertificate, type ControlPlanePki } from "./pki.js";
import { BinaryProcess } from "./process.js";

export { Kubelet } from "./kubelet.js";
export { statusOf } from "./status.js";

/** A user of the API: a kubeconfig object for client-node and the same as a file for CLIs. */
export interface Identity {
  user: string;
  kubeConfig: KubeConfig;
  kubeconfigPath: string;
}

export interface ControlPlaneOptions {
  /** Parent of the control plane's temporary directory (default: the OS's). */
  parentDir?: string;
  /** Bound on etcd's and then the API server's start-up each (default 60 s: 2 busy cores). */
  startTimeoutMs?: number;
  /** Keep the API server's audit log (every request at Metadata level), for `auditEvents`. */
  audit?: boolean;
}

/** One request as the API server's audit log records it (the fields tests look at). */
export interface AuditEvent {
  stage: string;
  verb: string;
  requestURI: string;
  user: { username: string };
  objectRef?: { resource?: string; subresource?: string; namespace?: string; name?: string; apiGroup?: string };
  responseStatus?: { code?: number };
}

export const SERVICE_ACCOUNT_ISSUER = "https://kubernetes.default.svc.cluster.local";

/** The binaries talk only to loopback; a proxy from the environment must not see the webhook calls. */
function binaryEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!/^(https?|no|all)_proxy$/i.test(k)) env[k] = v;
  return env;
}

const PORT_ATTEMPTS = 3;

const stopOnExit = new Set<ControlPlane>();
process.on("exit", () => {
  for (const cp of stopOnExit) cp.killNow();
});

export class ControlPlane {
  readonly admin: Identity;
  private etcd: BinaryProcess | undefined;
  private apiserver: BinaryProcess | undefined;
  private identities = 0;

  private constructor(
    readonly dir: string,
    readonly server: string,
    private readonly pki: ControlPlanePki,
    private readonly assets: KubeAssets,
  ) {
    this.admin = this.certificateIdentity("meshlane-lab-admin", ["system:masters"]);
  }

  static async start(options: ControlPlaneOptions = {}): Promise<ControlPlane> {
    const assets = kubeAssets();
    const timeout = options.startTimeoutMs ?? 60_000;
    const pki = createPki();
    for (let attempt = 1; ; attempt++) {
      const dir = mkdtempSync(join(options.parentDir ?? tmpdir(), "meshlane-cp-"));
      // Free a moment ago, but on a busy machine an outgoing connection can take
      // one of these ports as its source port before the binary binds it.
      const [etcdClient, etcdPeer, apiPort] = [await closedPort(), await closedPort(), await closedPort()];
      const cp = new ControlPlane(dir, `https://127.0.0.1:${apiPort}`, pki, assets);
      stopOnExit.add(cp);
      try {
        await cp.startEtcd(etcdClient, etcdPeer, timeout);
        await cp.startApiserver(etcdClient, apiPort, timeout, options.audit ?? false);
        return cp;
      } catch (e) {
        await cp.stop();
        if (attempt < PORT_ATTEMPTS && /address already in use/.test((e as Error).message)) continue;
        throw e;
      }
    }
  }

  private async startEtcd(clientPort: number, peerPort: number, timeoutMs: number): Promise<void> {
    const client = `http://127.0.0.1:${clientPort}`;
    const peer = `http://127.0.0.1:${peerPort}`;
    this.etcd = BinaryProcess.spawn(this.assets.etcd, [
      "--name=lab", `--data-dir=${join(this.dir, "etcd")}`,
      `--listen-client-urls=${client}`, `--advertise-client-urls=${client}`,
      `--listen-peer-urls=${peer}`, `--initial-advertise-peer-urls=${peer}`, `--initial-cluster=lab=${peer}`,
      // A throw-away store: fsync would only slow every write on a shared disk.
      "--unsafe-no-fsync", "--log-level=warn",
    ], binaryEnv());
    await this.etcd.waitReady(() => httpOk(`${client}/health`), timeoutMs);
  }

  private async startApiserver(etcdPort: number, port: number, timeoutMs: number, audit: boolean): Promise<void> {
    const file = (name: string, text: string) => {
      const path = join(this.dir, name);
      writeFileSync(path, text, { mode: 0o600 });
      return path;
    };
    const { ca, serving, serviceAccountKey } = this.pki;
    this.apiserver = BinaryProcess.spawn(this.assets.kubeApiserver, [
      `--etcd-servers=http://127.0.0.1:${etcdPort}`,
      "--bind-address=127.0.0.1", "--advertise-address=127.0.0.1", `--secure-port=${port}`,
      `--tls-cert-file=${file("apiserver.crt", serving.certPem)}`, `--tls-private-key-file=${file("apiserver.key", serving.keyPem)}`,
      `--client-ca-file=${file("ca.crt", ca.certPem)}`,
      `--service-account-issuer=${SERVICE_ACCOUNT_ISSUER}`,
      `--service-account-key-file=${file("sa.pub", serviceAccountKey.publicPem)}`,
      `--service-account-signing-key-file=${file("sa.key", serviceAccountKey.privatePem)}`,
      "--service-cluster-ip-range=10.96.0.0/16",
      // The "kubernetes" Service's endpoint would be 127.0.0.1, which Endpoints may not hold.
      "--endpoint-reconciler-type=none",
      "--authorization-mode=Node,RBAC",
      // On top of the defaults (MutatingAdmissionWebhook, ValidatingAdmissionPolicy, ServiceAccount, PodSecurity, ...).
      "--enable-admission-plugins=NodeRestriction",
      `--cert-dir=${join(this.dir, "apiserver-certs")}`,
      ...(audit ? [
        `--audit-policy-file=${file("audit-policy.yaml", "apiVersion: audit.k8s.io/v1\nkind: Policy\nomitStages: [RequestReceived]\nrules:\n  - level: Metadata\n")}`,
        `--audit-log-path=${this.auditLogPath}`, "--audit-log-format=json", "--audit-log-mode=blocking",
      ] : []),
    ], binaryEnv());
    await this.apiserver.waitReady(() => this.readyz(), timeoutMs);
  }

  private readyz(): Promise<boolean> {
    const { ca } = this.pki;
    // The kubeconfig holds the admin's certificate base64-encoded, as kubeconfigs do.
    const user = this.admin.kubeConfig.getCurrentUser()!;
    const [cert, key] = [user.certData!, user.keyData!].map((b64) => Buffer.from(b64, "base64"));
    return new Promise((resolve) => {
      const req = request(`${this.server}/readyz`, { ca: ca.certPem, cert, key, timeout: 2000 }, (res) => {
        res.resume();
        resolve(res.statusCode === 200);
      });
      req.on("error", () => resolve(false));
      req.on("timeout", () => req.destroy());
      req.end();
    });
  }

  private get auditLogPath(): string {
    return join(this.dir, "audit.log");
  }

  /** What the API server's audit log holds so far for this user (start with `audit: true`). */
  auditEvents(username: string): AuditEvent[] {
    return readFileSync(this.auditLogPath, "utf8").split("\n").filter(Boolean)
      .map((l) => JSON.parse(l) as AuditEvent).filter((e) => e.user.username === username);
  }

  get caPem(): string {
    return this.pki.ca.certPem;
  }

  private identity(user: string, credentials: { certData: string; keyData: string } | { token: string }): Identity {
    const kubeConfig = new KubeConfig();
    kubeConfig.loadFromOptions({
      clusters: [{ name: "lab", server: this.server, caData: Buffer.from(this.pki.ca.certPem).toString("base64") }],
      users: [{ name: user, ...("token" in credentials
        ? { token: credentials.token }
        : { certData: Buffer.from(credentials.certData).toString("base64"), keyData: Buffer.from(credentials.keyData).toString("base64") }) }],
      contexts: [{ name: "lab", cluster: "lab", user }],
      currentContext: "lab",
    });
    const kubeconfigPath = join(this.dir, `kubeconfig-${++this.identities}-${user.replace(/[^a-zA-Z0-9.-]/g, "_")}`);
    writeFileSync(kubeconfigPath, kubeConfig.exportConfig(), { mode: 0o600 });
    return { user, kubeConfig, kubeconfigPath };
  }

  private certificateIdentity(user: string, groups: string[]): Identity {
    const { certPem, keyPem } = issueClientCertificate(this.pki.ca, user, groups);
    return this.identity(user, { certData: certPem, keyData: keyPem });
  }

  /** A kubelet's credentials, as its bootstrap would get them: user system:node:<name>, group system:nodes. */
  node(name: string): Identity {
    return this.certificateIdentity(`system:node:${name}`, ["system:nodes"]);
  }

  /** A ServiceAccount's bound token (TokenRequest, as the kubelet mounts one into the pod); the account must exist. */
  async serviceAccount(namespace: string, name: string, expirationSeconds = 3600): Promise<Identity> {
    const core = this.admin.kubeConfig.makeApiClient(CoreV1Api);
    const response = await core.createNamespacedServiceAccountToken({ namespace, name, body: { spec: { audiences: [SERVICE_ACCOUNT_ISSUER], expirationSeconds } } });
    const token = response.status?.token;
    if (!token) throw new Error(`TokenRequest for ServiceAccount ${namespace}/${name} returned no token`);
    return this.identity(`system:serviceaccount:${namespace}:${name}`, { token });
  }

  /**
   * A namespace as a cluster has it: with its `default` ServiceAccount, which the
   * controller-manager would add (the ServiceAccount admission plugin refuses pods without it).
   */
  async createNamespace(name: string, labels: Record<string, string> = {}): Promise<void> {
    const core = this.admin.kubeConfig.makeApiClient(CoreV1Api);
    await core.createNamespace({ body: { metadata: { name, labels } } });
    await core.createNamespacedServiceAccount({ namespace: name, body: { metadata: { name: "default" } } });
  }

  /** Runs the kubectl built with the API server (admin unless `as` says otherwise); rejects with its stderr. */
  kubectl(args: string[], options: { as?: Identity; input?: string } = {}): Promise<string> {
    const kubeconfig = (options.as ?? this.admin).kubeconfigPath;
    return new Promise((resolve, reject) => {
      const child = execFile(this.assets.kubectl, [`--kubeconfig=${kubeconfig}`, ...args], { env: binaryEnv(), maxBuffer: 64 << 20 }, (error, stdout, stderr) => {
        if (error) reject(new Error(`kubectl ${args.join(" ")}: ${stderr.trim() || error.message}`));
        else resolve(stdout);
      });
      if (options.input !== undefined) child.stdin!.end(options.input);
    });
  }

  /** The two processes' ids (tests check that stop ends them). */
  pids(): number[] {
    return [this.apiserver?.child.pid, this.etcd?.child.pid].filter((p): p is number => p !== undefined);
  }

  /** The API server's and etcd's last log lines, for a failing test's message. */
  logs(): string {
    return `kube-apiserver:\n${this.apiserver?.lastLines() ?? ""}\netcd:\n${this.etcd?.lastLines() ?? ""}`;
  }

  /** Stops the API server, then etcd, and removes the directory; safe to call twice and after a failed start. */
  async stop(): Promise<void> {
    try {
      await this.apiserver?.stop();
      await this.etcd?.stop();
    } finally {
      rmSync(this.dir, { recursive: true, force: true });
      stopOnExit.delete(this);
    }
  }

  killNow(): void {
    this.apiserver?.killNow();
    this.etcd?.killNow();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

function httpOk(url: string): Promise<boolean> {
  return fetch(url, { signal: AbortSignal.timeout(2000) }).then((r) => r.ok, () => false);
}
