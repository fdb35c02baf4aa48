// A container of the manifest, as near as this machine allows without a container
// engine: a private mount namespace laid out from the pod's volumes and mounts (host
// paths bound where the container mounts them, read-only where it says so, memory
// volumes as tmpfs, a read-only root filesystem), and each command run in it as the
// container's user with exactly its capabilities. Host paths are replaced by
// stand-ins the test owns: a node's bpffs by a fresh bpffs instance that dies with
// the namespace, a node's cgroup tree by a scratch cgroup.

import { spawn, spawnSync, type ChildProcess, type SpawnSyncReturns } from "node:child_process";
import { randomBytes } from "node:crypto";
import { chmodSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { V1Container, V1EnvVar, V1PodSecurityContext, V1Volume, V1VolumeMount } from "@kubernetes/client-node";

export interface SandboxOptions {
  /** The containers that share the sandbox (their mounts are united). */
  containers: V1Container[];
  volumes: V1Volume[];
  /** The pod's securityContext: the user (and runAsNonRoot) its containers inherit. */
  podSecurityContext?: V1PodSecurityContext;
  /** Host path in the manifest → a directory of this machine that stands in for it, or "fresh-bpffs". */
  hostPaths: Record<string, string>;
  /** A command name of the image → the argv that runs it here (e.g. meshlane-loader → node dist/loader/cli.js). */
  commands: Record<string, string[]>;
  /** What the downward API would give: fieldPath → value. */
  fieldRefs: Record<string, string>;
  /** Extra environment (KUBECONFIG for the API server). */
  env: Record<string, string>;
  /**
   * The checkout the commands' files live in. It is bound into the sandbox at a path
   * any user can reach, and commands naming files below it use that path: a clone may
   * sit in a mode-0700 directory (root's home) that the container's user cannot enter.
   */
  checkout?: string;
}

/**
 * Names this process's leftovers the way lab/topology/janitor.ts recognises them
 * (mlt<pid><4 hex>), so that a run killed before its after-hooks is cleaned up by the next.
 */
export const RUN_ID = `mlt${process.pid}${randomBytes(2).toString("hex")}`;

const quote = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`;

/** Kubernetes' $(VAR) expansion of command and args; $$ escapes. */
export function expand(text: string, env: Record<string, string>): string {
  return text.replace(/\$\$|\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g, (m, name: string | undefined) => (name === undefined ? "$" : (env[name] ?? m)));
}

/** setpriv arguments giving a process exactly the container's user and capabilities. */
export function privilegeArgs(container: V1Container, pod: V1PodSecurityContext = {}): string[] {
  const sc = container.securityContext ?? {};
  if (sc.privileged) throw new Error(`${container.name} is privileged: a sandbox cannot stand in for that`);
  if (!sc.capabilities?.drop?.includes("ALL")) throw new Error(`${container.name} keeps the runtime's default capabilities; the sandbox knows only drop: [ALL]`);
  const uid = sc.runAsUser ?? pod.runAsUser;
  const gid = sc.runAsGroup ?? pod.runAsGroup;
  if (uid === undefined) throw new Error(`${container.name} runs as the image's user; give runAsUser so the sandbox knows it`);
  if ((sc.runAsNonRoot ?? pod.runAsNonRoot) && uid === 0) throw new Error(`${container.name}: runAsNonRoot with runAsUser 0 would not start`);
  const user = uid === 0 ? [] : [`--reuid=${uid}`, `--regid=${gid ?? uid}`, "--clear-groups"];
  const add = (sc.capabilities.add ?? []).map((c) => `+${c.toLowerCase().replace(/^cap_/, "")}`);
  return [...user, `--bounding-set=${["-all", ...add].join(",")}`, "--inh-caps=-all", ...(sc.allowPrivilegeEscalation === false ? ["--no-new-privs"] : [])];
}

function mountScript(opts: SandboxOptions, stage: string): string {
  const mounts = new Map<string, V1VolumeMount>();
  for (const c of opts.containers) for (const m of c.volumeMounts ?? []) mounts.set(m.mountPath, m);
  const lines = ["set -eu"];
  const later: string[] = [];
  // The container's /run is its own; emptyDirs below it are made on top.
  lines.push("mount -t tmpfs -o size=1m,mode=755 sandbox-run /run");
  let n = 0;
  for (const [path, m] of mounts) {
    const volume = opts.volumes.find((v) => v.name === m.name);
    if (!volume) throw new Error(`mount ${m.name} has no volume`);
    const ro = m.readOnly ? [`mount -o remount,bind,ro ${quote(path)}`] : [];
    if (volume.hostPath) {
      const standIn = opts.hostPaths[volume.hostPath.path];
      if (!standIn) throw new Error(`no stand-in for host path ${volume.hostPath.path}`);
      later.push(`if mountpoint -q ${quote(path)}; then umount -l ${quote(path)}; fi`);
      if (standIn === "fresh-bpffs") {
        later.push(`mount -t bpf sandbox-bpffs ${quote(path)}`, ...ro);
      } else {
        // Bound aside first: the stand-in may live below the tree that is replaced.
        const aside = join(stage, String(n++));
        lines.push(`mkdir -p ${quote(aside)}`, `mount --bind ${quote(standIn)} ${quote(aside)}`);
        later.push(`mount --move ${quote(aside)} ${quote(path)}`, ...ro);
      }
    } else if (volume.emptyDir) {
      later.push(`mkdir -p ${quote(path)}`, `mount -t tmpfs -o size=16m sandbox-empty ${quote(path)}`, ...ro);
    } else {
      throw new Error(`volume ${volume.name}: the sandbox knows hostPath and emptyDir only`);
    }
  }
  lines.push(...later);
  if (opts.checkout) lines.push(`mkdir -p ${quote(join(stage, "checkout"))}`, `mount --bind ${quote(opts.checkout)} ${quote(join(stage, "checkout"))}`);
  if (opts.containers.every((c) => c.securityContext?.readOnlyRootFilesystem)) lines.push("mount -o remount,bind,ro /");
  lines.push("echo ready", "exec sleep infinity");
  return lines.join("\n");
}

export class PodSandbox {
  private constructor(
    private readonly opts: SandboxOptions,
    private readonly holder: ChildProcess,
    private readonly stage: string,
  ) {}

  static async start(opts: SandboxOptions): Promise<PodSandbox> {
    const stage = mkdtempSync(join(tmpdir(), `${RUN_ID}-sandbox-`));
    chmodSync(stage, 0o755); // the container's user reaches the bound checkout through it
    // The namespace (and its bpffs, programs included) dies with the test process, even a killed one.
    const holder = spawn("unshare", ["--mount", "--propagation", "private", "setpriv", "--pdeathsig=KILL", "bash", "-c", mountScript(opts, stage)], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    let err = "";
    holder.stderr!.on("data", (d: Buffer) => (err += d.toString()));
    await new Promise<void>((resolve, reject) => {
      holder.stdout!.on("data", (d: Buffer) => d.toString().includes("ready") && resolve());
      holder.once("exit", (code) => reject(new Error(`sandbox set-up failed (exit ${code}): ${err}`)));
    });
    return new PodSandbox(opts, holder, stage);
  }

  /** The container's environment: downward API fields resolved, plus the extras. */
  environment(container: V1Container): Record<string, string> {
    const env: Record<string, string> = { PATH: process.env.PATH ?? "/usr/bin:/bin", ...this.opts.env };
    for (const e of container.env ?? ([] as V1EnvVar[])) {
      const field = e.valueFrom?.fieldRef?.fieldPath;
      const value = e.value ?? (field ? this.opts.fieldRefs[field] : undefined);
      if (value === undefined) throw new Error(`env ${e.name}: nothing for ${field ?? "its source"}`);
      env[e.name] = value;
    }
    return env;
  }

  /** argv for an image command line, run in the sandbox with the container's capabilities. */
  argv(container: V1Container, command: string[]): string[] {
    const env = this.environment(container);
    const [name, ...rest] = command.map((c) => expand(c, env));
    const checkout = this.opts.checkout;
    const local = this.opts.commands[name!]?.map((a) => (checkout && a.startsWith(`${checkout}/`) ? join(this.stage, "checkout", a.slice(checkout.length + 1)) : a));
    if (!local) throw new Error(`no local stand-in for the image's ${name}`);
    return [
      "nsenter", `--target=${this.holder.pid}`, "--mount", "--",
      // --pdeathsig: a container process never outlives the test that started it.
      "setpriv", "--pdeathsig=KILL", ...privilegeArgs(container, this.opts.podSecurityContext), "--",
      "env", "-i", ...Object.entries(env).map(([k, v]) => `${k}=${v}`), ...local, ...rest,
    ];
  }

  exec(container: V1Container, command: string[], timeoutMs = 60_000): SpawnSyncReturns<string> {
    const [cmd, ...args] = this.argv(container, command);
    return spawnSync(cmd!, args, { encoding: "utf8", timeout: timeoutMs, cwd: "/" });
  }

  spawn(container: V1Container, command: string[]): ChildProcess {
    const [cmd, ...args] = this.argv(container, command);
    return spawn(cmd!, args, { stdio: ["ignore", "pipe", "pipe"], cwd: "/" });
  }

  /** Ends the namespace: its bpffs instance goes with it, and every pin in it. */
  async stop(): Promise<void> {
    if (this.holder.exitCode === null && this.holder.signalCode === null) {
      const exited = new Promise((resolve) => this.holder.once("exit", resolve));
      this.holder.kill("SIGKILL");
      await exited;
    }
    rmSync(this.stage, { recursive: true, force: true });
  }
}
