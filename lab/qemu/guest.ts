// Boots one kernel under qemu-system-x86_64 (TCG: no hardware virtualisation is
// assumed) with the host's root shared read-only over 9p and runs steps in it
// (lab/qemu/guest-run.sh). The guest has no network device: only its loopback.
// Nothing listens on the host; results come back through a 9p share of a
// directory of ours.

import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { meshlaneCache, type UnpackedKernel } from "./apt.js";
import { buildInitramfs } from "./initramfs.js";
import { GUEST_MODULES } from "./kernels.js";
import { mkdirSync } from "node:fs";

export interface Step {
  /** File-name safe: the step's log is <name>.log. */
  name: string;
  /** A bash command line, run in the checkout as root inside the guest. */
  command: string;
}

export interface StepResult {
  name: string;
  /** Exit code; 124 or 137 when guest-run.sh's timeout ended it. */
  code: number;
  log: string;
  seconds: number;
}

export interface GuestRun {
  release: string;
  steps: StepResult[];
  /** Wall-clock seconds from qemu's start to its exit. */
  seconds: number;
  /** CPU seconds qemu used (user + system, all its threads). */
  cpuSeconds: number;
  console: string;
}

export interface GuestOptions {
  /** The checkout, as a path on the host (the guest sees the same path). */
  repo: string;
  timeoutMs: number;
  memoryMiB?: number;
  cpus?: number;
  /** Each step's own limit inside the guest. */
  stepTimeoutSec?: number;
}

const STEP_NAME = /^[a-z0-9][a-z0-9._-]*$/;

export async function runInGuest(k: UnpackedKernel, steps: Step[], opts: GuestOptions): Promise<GuestRun> {
  for (const s of steps) {
    if (!STEP_NAME.test(s.name)) throw new Error(`guest step name "${s.name}" must match ${STEP_NAME}`);
    if (/[\t\n]/.test(s.command)) throw new Error(`guest step ${s.name}: its command must be one line without tabs`);
  }
  const runs = join(meshlaneCache(), "kernels", "runs");
  mkdirSync(runs, { recursive: true });
  const work = mkdtempSync(join(runs, `${k.kernel.id}-`));
  const out = join(work, "out");
  mkdirSync(out, { mode: 0o755 });
  try {
    const initrd = buildInitramfs(k, join(work, "initramfs.cpio"));
    writeFileSync(join(out, "steps"), steps.map((s) => `${s.name}\t${s.command}\n`).join(""));
    writeFileSync(join(out, "modules"), GUEST_MODULES.join("\n") + "\n");
    // The host's cache holds what the lab built (Istio's istio-iptables, ...); the guest sees the same path.
    const env = { MESHLANE_STEP_TIMEOUT: String(opts.stepTimeoutSec ?? Math.floor(opts.timeoutMs / 1000)), MESHLANE_CACHE: meshlaneCache() };
    writeFileSync(join(out, "env"), Object.entries(env).map(([k, v]) => `${k}='${v.replace(/'/g, `'\\''`)}'\n`).join(""));
    const consoleLog = join(work, "console.log");
    const args = qemuArgs(k, initrd, out, consoleLog, opts);
    const started = Date.now();
    const exit = await runQemu(args, opts.timeoutMs);
    const seconds = (Date.now() - started) / 1000;
    const console = existsSync(consoleLog) ? readFileSync(consoleLog, "utf8") : "";
    if (!existsSync(join(out, "done"))) {
      const tail = console.trim().split("\n").slice(-25).join("\n");
      const why = exit.timedOut ? `did not finish within ${opts.timeoutMs / 1000} s` : `stopped (qemu ${exit.how}) before its steps finished`;
      throw new Error(`kernel ${k.kernel.id} (${k.release}) under qemu ${why}; ${exit.stderr.trim() ? `qemu said: ${exit.stderr.trim()}; ` : ""}last console lines:\n${tail}`);
    }
    return {
      release: readFileSync(join(out, "uname"), "utf8").trim(),
      seconds,
      cpuSeconds: exit.cpuSeconds,
      console,
      steps: steps.map((s) => {
        const [from = 0, to = 0] = readFileSync(join(out, `${s.name}.time`), "utf8").trim().split(" ").map(Number);
        return { name: s.name, code: Number(readFileSync(join(out, `${s.name}.rc`), "utf8").trim()), log: readFileSync(join(out, `${s.name}.log`), "utf8"), seconds: to - from };
      }),
    };
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

function qemuArgs(k: UnpackedKernel, initrd: string, out: string, consoleLog: string, opts: GuestOptions): string[] {
  const share = (path: string, tag: string, ro: boolean) => ["-virtfs", `local,path=${path},mount_tag=${tag},security_model=none,multidevs=remap${ro ? ",readonly=on" : ""}`];
  return [
    "-machine", "q35,accel=tcg",
    "-cpu", "max",
    "-smp", String(opts.cpus ?? 2),
    "-m", String(opts.memoryMiB ?? 3072),
    "-display", "none", "-monitor", "none", "-no-reboot",
    "-serial", `file:${consoleLog}`,
    "-nic", "none",
    "-kernel", k.vmlinuz,
    "-initrd", initrd,
    "-append", `console=ttyS0 panic=-1 rdinit=/init meshlane.repo=${opts.repo}`,
    ...share("/", "hostroot", true),
    ...share(out, "out", false),
  ];
}

/** Runs qemu to its exit; it dies with this process (pdeathsig) and at the deadline. */
function runQemu(args: string[], timeoutMs: number): Promise<{ timedOut: boolean; how: string; stderr: string; cpuSeconds: number }> {
  return new Promise((resolve, reject) => {
    // bash reports qemu's CPU time (`times`): on a shared machine that, not the wall
    // time, is what a guest costs.
    // (`times` prints the shell's own line, then its children's; in a pipeline it would be a subshell's.)
    // qemu gets a pdeathsig of its own: a forked child does not inherit bash's, and an
    // orphaned guest would go on using a core each after its test run was killed.
    const script = 'setpriv --pdeathsig KILL -- qemu-system-x86_64 "$@"; rc=$?; times >&2; exit $rc';
    const child = spawn("setpriv", ["--pdeathsig", "KILL", "--", "bash", "-c", script, "qemu", ...args], { stdio: ["ignore", "ignore", "pipe"] });
    let stderr = "";
    let timedOut = false;
    child.stderr!.on("data", (d) => (stderr += d));
    const t = setTimeout(() => {
      timedOut = true;
      child.kill("SIGKILL");
    }, timeoutMs);
    child.on("error", (e) => {
      clearTimeout(t);
      reject(new Error(`cannot start qemu-system-x86_64 (Debian package qemu-system-x86): ${e.message}`));
    });
    child.on("close", (code, signal) => {
      clearTimeout(t);
      const lines = [...stderr.matchAll(/^(\d+)m([\d.]+)s (\d+)m([\d.]+)s$/gm)];
      const children = lines.at(-1);
      const cpuSeconds = children ? 60 * Number(children[1]) + Number(children[2]) + 60 * Number(children[3]) + Number(children[4]) : NaN;
      for (const l of lines) stderr = stderr.replace(l[0], "");
      resolve({ timedOut, how: signal ? `killed by ${signal}` : `exited ${code}`, stderr, cpuSeconds });
    });
  });
}
