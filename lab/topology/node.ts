// docs/design.md's test topology on one machine: a "node" is a cgroup tree of our own
// (…/meshlane-test-<id>/kubepods) plus a bridge in a network namespace of our own;
// a "pod" is a network namespace on that bridge, a cgroup named as kubelet names
// it, Istio's nat rules inside the namespace, and an HAProxy sidecar as uid 1337.
// A second node may join the first one's bridge (TestNode.create({ network })): its
// own cgroup tree, its pods on the same subnet, so pods reach the other node's pods by
// IP as across a cluster's pod network. Nothing here touches the root network
// namespace or the root cgroup, and destroy() removes everything it made, also after
// a failure half-way.

import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { randomUUID } from "node:crypto";
import { createConnection } from "node:net";
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, rmdirSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { defaultInterception, REGISTRATION_VERSION, type Interception, type Registration } from "../../registry/document.js";
import { findCgroup2Mount } from "../../loader/cgroup.js";
import { haproxyConfig, SIDECAR_LOG, type SidecarOptions } from "./haproxy.js";
import { programCapture } from "../istio/capture.js";
import type { Spec as SendSpec, Transfer as TransferResult } from "./peer.js";
import { run } from "./run.js";
import { LAB_SLOWDOWN, until } from "../until.js";
import ts from "typescript";
import { REPO } from "../repo.js";

const PEER_SOURCE = join(REPO, "lab", "topology", "peer.ts");
const SUBNET = "10.77.0";
const SUBNET6 = "fd77::";

export interface SidecarLogEntry {
  frontend: "outbound" | "inbound";
  client: string;
  server: string;
  bytes: number;
}

/** What lab/topology/peer.ts `send` takes, and what it reports for each transfer. */
export type { SendSpec, TransferResult };

export class TestPod {
  readonly procs: ChildProcess[] = [];
  sidecarLog: SidecarLogEntry[] = [];
  /** Remote address:port of every connection the pod's app accepted. */
  appLog: string[] = [];

  constructor(
    readonly node: TestNode,
    readonly name: string,
    readonly uid: string,
    readonly ip: string,
    readonly ip6: string,
    readonly netns: string,
    readonly cgroup: string,
    readonly interception: Interception,
  ) {}

  registration(): Registration {
    return structuredClone({ version: REGISTRATION_VERSION, namespace: "test", name: this.name, uid: this.uid, ips: [this.ip, this.ip6], interception: this.interception });
  }

  /** Starts a process inside this pod: its cgroup first (so its sockets are the pod's), then its namespace and user. */
  spawn(argv: string[], opts: { uid?: number; gid?: number } = {}): ChildProcess {
    const user = opts.uid === undefined ? [] : ["setpriv", `--reuid=${opts.uid}`, `--regid=${opts.gid ?? opts.uid}`, "--clear-groups"];
    const child = spawn("sh", ["-c", 'echo $$ > "$0/cgroup.procs" && exec "$@"', this.cgroup, "ip", "netns", "exec", this.netns, ...user, ...argv], {
      // Not the checkout: a clone may sit in a mode-0700 directory (root's home) that a
      // process under another uid can neither enter nor read.
      cwd: this.node.workDir,
      stdio: ["ignore", "pipe", "pipe"],
    });
    this.procs.push(child);
    return child;
  }

  /** Runs a process in the pod to completion. */
  exec(argv: string[], opts: { uid?: number; gid?: number } = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
    const child = this.spawn(argv, opts);
    let stdout = "", stderr = "";
    child.stdout!.on("data", (d) => (stdout += d));
    child.stderr!.on("data", (d) => (stderr += d));
    return new Promise((resolve) => child.on("close", (code) => resolve({ code, stdout, stderr })));
  }

  async startApp(port: number): Promise<void> {
    const child = this.spawn(["node", this.node.peerScript(), "serve", String(port)]);
    await waitForLine(child, /^listening/, `app of pod ${this.name}`);
    onLines(child, (line) => {
      const m = /^accepted (\S+)$/.exec(line);
      if (m) this.appLog.push(m[1]!);
    });
  }

  /** cpus (a taskset list) pins HAProxy from its start, so it sizes its thread count to them. */
  /**
   * Starts lab/topology/origdst-probe.c as this pod's proxy user on `port` of one address family: it
   * accepts one connection, reports its original destination and echoes it.
   * Resolves once listening; `answer` then resolves to "<address> <port>" (or "error <errno>"),
   * `client` to the accepted connection's peer as "<address> <port>".
   * (Wrapped in an object: an async function returning a promise would wait for it.)
   */
  async startProbe(port: number, family: 4 | 6): Promise<{ answer: Promise<string>; client: Promise<string> }> {
    const child = this.spawn([this.node.helperBinary("origdst-probe"), String(port), String(family)], { uid: this.interception.proxyUid, gid: this.interception.proxyGid });
    let seenClient: (c: string) => void = () => undefined;
    const client = new Promise<string>((resolve) => (seenClient = resolve));
    const answer = new Promise<string>((resolve) =>
      onLines(child, (line) => {
        const c = /^client (.+)$/.exec(line);
        if (c) seenClient(c[1]!);
        const m = /^origdst(?:-(error))? (.+)$/.exec(line);
        if (m) resolve(m[1] ? `error ${m[2]}` : m[2]!);
      }),
    );
    await waitForLine(child, /^ready/, `origdst probe of pod ${this.name}`);
    return { answer, client };
  }

  async startSidecar(cpus?: string, opts: SidecarOptions = {}): Promise<void> {
    const cfg = join(this.node.workDir, `${this.name}-haproxy.cfg`);
    const adminDir = dirname(this.sidecarAdminSocket());
    mkdirSync(adminDir, { recursive: true, mode: 0o700 });
    chownSync(adminDir, this.interception.proxyUid, this.interception.proxyGid);
    const ports = { outbound: this.interception.outboundPort, inbound: this.interception.inboundPort, admin: this.sidecarAdminSocket() };
    writeFileSync(cfg, haproxyConfig(ports, opts), { mode: 0o644 });
    const pin = cpus === undefined ? [] : ["taskset", "-c", cpus];
    const child = this.spawn([...pin, "haproxy", "-db", "-f", cfg], { uid: this.interception.proxyUid, gid: this.interception.proxyGid });
    let err = "";
    child.stderr!.on("data", (d) => (err += d));
    onLines(child, (line) => {
      const m = SIDECAR_LOG.exec(line);
      if (m) {
        this.sidecarLog.push({ frontend: m[1] as "outbound" | "inbound", client: m[2]!, server: m[3]!, bytes: Number(m[4]) });
        this.node.lastSidecarLogAt = Date.now();
      }
    });
    // HAProxy prints nothing when ready; wait until both listeners accept.
    for (let i = 0; i < 100; i++) {
      const r = await run("ip", ["netns", "exec", this.netns, "ss", "-Htln", `( sport = :${this.interception.outboundPort} or sport = :${this.interception.inboundPort} )`]);
      if (r.stdout.trim().split("\n").filter(Boolean).length >= 4) return; // both ports, both families
      if (child.exitCode !== null) throw new Error(`HAProxy of pod ${this.name} exited with ${child.exitCode}: ${err.trim()}`);
      await sleep(50);
    }
    throw new Error(`HAProxy of pod ${this.name} did not listen on its ports`);
  }

  /** In a directory of the proxy uid's own (startSidecar makes it): HAProxy runs as that uid and creates the socket. */
  private sidecarAdminSocket(): string {
    return join(this.node.workDir, `${this.name}-sidecar`, "admin.sock");
  }

  /** HAProxy's `show info` as name → value ("CurrConns" → "0"). */
  private async sidecarInfo(): Promise<Map<string, string>> {
    const info = await this.sidecarAdmin("show info");
    return new Map(info.split("\n").flatMap((l) => {
      const m = /^(\w+): (.*)$/.exec(l);
      return m ? [[m[1]!, m[2]!] as [string, string]] : [];
    }));
  }

  /** How many log lines the sidecar dropped since it started (HAProxy's DroppedLogs). */
  private async sidecarDroppedLogs(): Promise<number> {
    const dropped = (await this.sidecarInfo()).get("DroppedLogs");
    if (dropped === undefined) throw new Error(`pod ${this.name}'s sidecar: "show info" on its admin socket gave no DroppedLogs`);
    return Number(dropped);
  }

  private droppedAtStart = 0;

  /** Starts a count for expectSidecarLogged: clears the sidecar's lines and notes what HAProxy has dropped so far. */
  async startSidecarLog(): Promise<void> {
    this.sidecarLog = [];
    this.droppedAtStart = await this.sidecarDroppedLogs();
  }

  /**
   * Waits until `expected` of the sidecar's lines since startSidecarLog match, and
   * throws if they do not come. HAProxy logs a connection when it closes, which under
   * emulation can come later than any settle window, so this waits (bounded). HAProxy
   * also drops a line when two of its threads log at once (it gives up on the log
   * fd's lock after 200 tries; under qemu a descheduled vCPU holding it makes that
   * happen): lines it says it dropped count as connections it handled. A shortfall
   * lists every line logged and what this sidecar and those of `alsoReport` still hold.
   */
  async expectSidecarLogged(expected: number, match: (l: SidecarLogEntry) => boolean, what: string, alsoReport: TestPod[] = []): Promise<void> {
    const count = () => this.sidecarLog.filter(match).length;
    const dropped = async () => (await this.sidecarDroppedLogs()) - this.droppedAtStart;
    // Polled every 250 ms, not the default 20: each poll asks HAProxy's admin socket.
    await until(`pod ${this.name}'s sidecar logged ${expected} connections`, async () => count() + (await dropped()) >= expected, undefined, 250).catch(() => undefined);
    const [matched, lost] = [count(), await dropped()];
    if (matched + lost === expected) return;
    const lines = this.sidecarLog.map((l) => `${l.frontend} ${l.client} -> ${l.server} ${l.bytes}`);
    const reports = await Promise.all([this, ...alsoReport.filter((p) => p !== this)].map((p) => p.sidecarReport()));
    throw new Error(`${what}: pod ${this.name}'s sidecar logged ${matched} matching lines and dropped ${lost}, not ${expected}; its lines:\n${lines.join("\n") || "(nothing)"}\n${reports.join("\n")}`);
  }

  /**
   * What the sidecar says of itself and the pod's sockets, for a failure message:
   * the connections HAProxy still holds (`show sess all`: a connection it never
   * logged is either still open there or never reached it) and `ss` in the pod.
   */
  private async sidecarReport(): Promise<string> {
    const info = await this.sidecarInfo();
    const counters = ["CurrConns", "CumConns", "DroppedLogs"].map((k) => `${k}: ${info.get(k) ?? "?"}`);
    const sessions = await this.sidecarAdmin("show sess all");
    const ss = await run("ip", ["netns", "exec", this.netns, "ss", "-tanoi"]);
    return `pod ${this.name}'s sidecar: ${counters.join(", ")}; its sessions:\n${sessions || "(none)"}\npod ${this.name}'s sockets (ss -tanoi):\n${ss.stdout.trim()}`;
  }

  private sidecarAdmin(command: string): Promise<string> {
    return new Promise((resolve) => {
      let out = "";
      const c = createConnection(this.sidecarAdminSocket(), () => c.end(`${command}\n`));
      c.on("data", (d) => (out += d));
      c.on("close", () => resolve(out.trim()));
      c.on("error", (e) => resolve(`(${command} on pod ${this.name}'s sidecar admin socket: ${e.message})`));
    });
  }

  /** Runs payload transfers from this pod's app side to host:port; one result per payload. */
  async send(host: string, port: number, spec: SendSpec, opts: { uid?: number } = {}) {
    const r = await this.exec(["node", this.node.peerScript(), "send", host, String(port), JSON.stringify(spec)], opts);
    if (r.code !== 0) throw new Error(`peer send from ${this.name} exited ${r.code}: ${r.stderr}`);
    // Sidecars log a connection when it closes, a moment after the client saw the
    // close: let their logs settle so that callers see every connection they made.
    await this.node.sidecarLogsSettled();
    return JSON.parse(r.stdout.trim().split("\n").pop()!) as TransferResult[];
  }

  /** Packet counters of the REDIRECT rules: how many connections iptables (or ip6tables) redirected. */
  async redirectCounters(family: 4 | 6 = 4): Promise<{ outbound: number; inbound: number }> {
    const r = await run("ip", ["netns", "exec", this.netns, family === 4 ? "iptables-save" : "ip6tables-save", "-c", "-t", "nat"]);
    const count = (chain: string) => {
      const m = new RegExp(`^\\[(\\d+):\\d+\\] -A ${chain} .*-j REDIRECT`, "m").exec(r.stdout);
      return m ? Number(m[1]) : 0;
    };
    return { outbound: count("ISTIO_REDIRECT"), inbound: count("ISTIO_IN_REDIRECT") };
  }

  async stopProcesses(): Promise<void> {
    await Promise.all(this.procs.map((p) => stopChild(p)));
    this.procs.length = 0;
  }
}

/**
 * The pod network: a bridge in a namespace of its own, made by the node that created
 * it (and removed with it), and the host numbers its pods take, shared by every node
 * on it so that no two pods get one address or veth name.
 */
export class PodNetwork {
  private nextHost = 2;
  constructor(readonly bridgeNs: string, readonly owner: string) {}

  allocateHost(): number {
    if (this.nextHost > 254) throw new Error(`pod network ${this.bridgeNs}: no address left in ${SUBNET}.0/24`);
    return this.nextHost++;
  }
}

export class TestNode {
  readonly pods: TestPod[] = [];

  private constructor(
    readonly id: string,
    readonly cgroupRoot: string,
    readonly kubepods: string,
    readonly network: PodNetwork,
    readonly workDir: string,
  ) {}

  get bridgeNs(): string {
    return this.network.bridgeNs;
  }

  /**
   * A fresh node; its names carry this process's pid and a random tag so suites never
   * collide. With `network` (another node's), its pods join that node's bridge: two
   * nodes of one cluster. The network's creator must be destroyed last.
   */
  static async create(opts: { network?: PodNetwork } = {}): Promise<TestNode> {
    const cg2 = findCgroup2Mount();
    if (!cg2) throw new Error("no cgroup2 mount found: the kernel suites need cgroup v2");
    const id = `mlt${process.pid}${randomUUID().slice(0, 4)}`;
    const network = opts.network ?? new PodNetwork(`${id}-br`, id);
    const node = new TestNode(id, join(cg2, `meshlane-test-${id}`), join(cg2, `meshlane-test-${id}`, "kubepods"), network, mkdtempSync(join(tmpdir(), `${id}-`)));
    try {
      chmodSync(node.workDir, 0o755); // the sidecar (uid 1337) reads its config from here
      mkdirSync(node.kubepods, { recursive: true });
      if (network.owner === id) {
        await run("ip", ["netns", "add", node.bridgeNs]);
        await run("ip", ["-n", node.bridgeNs, "link", "add", "br0", "type", "bridge"]);
        await run("ip", ["-n", node.bridgeNs, "link", "set", "br0", "up"]);
        await run("ip", ["-n", node.bridgeNs, "link", "set", "lo", "up"]);
      }
    } catch (e) {
      await node.destroy();
      throw e;
    }
    return node;
  }

  /**
   * Adds a pod: namespace, veth to the bridge, cgroup kubepods/[qos/]pod<uid>, Istio's
   * rules (unless iptables is false) and, unless sidecar is false, HAProxy. `uid`
   * names the cgroup (default: a random one); pass the UID an API server gave the pod.
   */
  async addPod(name: string, opts: { uid?: string; interception?: Partial<Interception>; sidecar?: boolean; sidecarCpus?: string; sidecarOptions?: SidecarOptions; iptables?: boolean; underKubepods?: boolean; qos?: "burstable" } = {}): Promise<TestPod> {
    const uid = opts.uid ?? randomUUID();
    const n = this.network.allocateHost();
    const ip = `${SUBNET}.${n}`;
    const ip6 = `${SUBNET6}${n}`;
    const netns = `${this.id}-${name}`;
    const cgroup = opts.underKubepods === false ? join(this.cgroupRoot, `host-${name}`) : join(this.kubepods, opts.qos ?? "", `pod${uid}`);
    const pod = new TestPod(this, name, uid, ip, ip6, netns, cgroup, { ...defaultInterception(), ...opts.interception });
    this.pods.push(pod);
    mkdirSync(cgroup, { recursive: true });
    await run("ip", ["netns", "add", netns]);
    await run("ip", ["-n", netns, "link", "set", "lo", "up"]);
    await run("ip", ["-n", this.bridgeNs, "link", "add", `v${n}`, "type", "veth", "peer", "name", "eth0", "netns", netns]);
    await run("ip", ["-n", this.bridgeNs, "link", "set", `v${n}`, "master", "br0", "up"]);
    await run("ip", ["-n", netns, "addr", "add", `${ip}/24`, "dev", "eth0"]);
    await run("ip", ["-n", netns, "-6", "addr", "add", `${ip6}/64`, "dev", "eth0", "nodad"]);
    await run("ip", ["-n", netns, "link", "set", "eth0", "up"]);
    // Istio's own istio-iptables, with the arguments Istio's injector writes for these settings.
    if (opts.iptables !== false) await programCapture(netns, pod.interception);
    if (opts.sidecar !== false) await pod.startSidecar(opts.sidecarCpus, opts.sidecarOptions);
    return pod;
  }

  /** A process outside kubepods on its own namespace: what the node's host processes look like to meshlane. */
  addHost(name: string): Promise<TestPod> {
    return this.addPod(name, { sidecar: false, iptables: false, underKubepods: false });
  }

  private peer: string | null = null;
  /** When any sidecar of this node last logged a connection. */
  lastSidecarLogAt = 0;

  /** Resolves once no sidecar has logged anything for a quiet period (bounded). */
  async sidecarLogsSettled(quietMs = 150 * LAB_SLOWDOWN, maxMs = 3000 * LAB_SLOWDOWN): Promise<void> {
    const start = Date.now();
    await sleep(quietMs);
    while (Date.now() - this.lastSidecarLogAt < quietMs && Date.now() - start < maxMs) await sleep(25);
  }

  /**
   * The peer app as plain JavaScript in the node's world-readable work directory, written
   * once per node: the proxy uid runs it too, and it may not read a checkout under a
   * mode-0700 directory. Plain node also starts faster than node with tsx.
   */
  peerScript(): string {
    if (!this.peer) {
      const out = join(this.workDir, "peer.mjs");
      const js = ts.transpileModule(readFileSync(PEER_SOURCE, "utf8"), {
        compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 },
        fileName: PEER_SOURCE,
      }).outputText;
      writeFileSync(out, js, { mode: 0o644 });
      this.peer = out;
    }
    return this.peer;
  }

  private built = new Map<string, string>();

  /** Builds one of lab/topology's C helpers once per node (clang is a build dependency already). */
  helperBinary(name: "origdst-probe" | "tfo-client"): string {
    let out = this.built.get(name);
    if (!out) {
      out = join(this.workDir, name);
      const r = spawnSync("clang", ["-O2", "-Wall", "-Werror", "-o", out, join(REPO, "lab", "topology", `${name}.c`)], { encoding: "utf8" });
      if (r.status !== 0) throw new Error(`building ${name} failed: ${r.stderr}`);
      this.built.set(name, out);
    }
    return out;
  }

  registrations(pods: TestPod[]): Record<string, Registration> {
    return Object.fromEntries(pods.map((p) => [p.uid, p.registration()]));
  }

  /** Removes processes, namespaces, cgroups and files; safe to call twice and after a partial create. */
  async destroy(): Promise<void> {
    for (const pod of this.pods) await pod.stopProcesses();
    for (const pod of this.pods) await run("ip", ["netns", "del", pod.netns]).catch(() => undefined);
    if (this.network.owner === this.id) await run("ip", ["netns", "del", this.bridgeNs]).catch(() => undefined);
    removeCgroupTree(this.cgroupRoot);
    rmSync(this.workDir, { recursive: true, force: true });
  }
}

/** Removes a cgroup directory tree bottom-up, killing whatever is still inside. */
export function removeCgroupTree(dir: string): void {
  if (!existsSync(dir)) return;
  for (const entry of readdirDirs(dir)) removeCgroupTree(join(dir, entry));
  for (let attempt = 0; attempt < 50; attempt++) {
    try {
      rmdirSync(dir);
      return;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "ENOENT") return;
      for (const pid of readFileSync(join(dir, "cgroup.procs"), "utf8").split("\n").filter(Boolean)) {
        try { process.kill(Number(pid), "SIGKILL"); } catch { /* already gone */ }
      }
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 20);
    }
  }
  throw new Error(`cannot remove cgroup ${dir}: processes keep it busy`);
}

function readdirDirs(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).filter((d) => d.isDirectory()).map((d) => d.name);
}

function stopChild(p: ChildProcess): Promise<void> {
  if (p.exitCode !== null || p.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const t = setTimeout(() => p.kill("SIGKILL"), 2000);
    p.once("close", () => {
      clearTimeout(t);
      resolve();
    });
    p.kill("SIGTERM");
  });
}

function onLines(child: ChildProcess, each: (line: string) => void): void {
  let buf = "";
  child.stdout!.on("data", (d) => {
    buf += d;
    let nl;
    while ((nl = buf.indexOf("\n")) >= 0) {
      each(buf.slice(0, nl).trim());
      buf = buf.slice(nl + 1);
    }
  });
}

export function waitForLine(child: ChildProcess, re: RegExp, what: string, timeoutMs = 15_000 * LAB_SLOWDOWN): Promise<void> {
  return new Promise((resolve, reject) => {
    let buf = "", err = "";
    const t = setTimeout(() => reject(new Error(`${what}: no line matching ${re} within ${timeoutMs} ms; stderr: ${err}`)), timeoutMs);
    child.stdout!.on("data", (d) => {
      buf += d;
      if (re.test(buf)) {
        clearTimeout(t);
        resolve();
      }
    });
    child.stderr!.on("data", (d) => (err += d));
    child.once("exit", (code) => {
      clearTimeout(t);
      reject(new Error(`${what} exited with ${code} before ready; stderr: ${err}`));
    });
  });
}
