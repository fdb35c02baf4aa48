// One control-plane binary (etcd, kube-apiserver) as a child process: its output is
// kept as a tail of lines for error messages, start-up is bounded by a readiness
// probe, and stop escalates SIGTERM → SIGKILL. A process that exits while starting
// fails the start at once, naming the binary and its last log lines.

import { spawn, type ChildProcess } from "node:child_process";
import { basename } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";

const TAIL_LINES = 40;

export class BinaryProcess {
  private tail: string[] = [];
  private partial = "";
  private exited: string | undefined;

  private constructor(readonly binary: string, readonly child: ChildProcess) {
    const take = (d: Buffer) => {
      const lines = (this.partial + d.toString("utf8")).split("\n");
      this.partial = lines.pop()!;
      this.tail.push(...lines);
      if (this.tail.length > TAIL_LINES) this.tail.splice(0, this.tail.length - TAIL_LINES);
    };
    child.stdout!.on("data", take);
    child.stderr!.on("data", take);
    child.on("exit", (code, signal) => (this.exited = signal ? `killed by ${signal}` : `exited with code ${code}`));
    child.on("error", (e) => (this.exited = `could not start: ${e.message}`));
  }

  static spawn(binary: string, args: string[], env: NodeJS.ProcessEnv): BinaryProcess {
    return new BinaryProcess(binary, spawn(binary, args, { stdio: ["ignore", "pipe", "pipe"], env }));
  }

  get name(): string {
    return basename(this.binary);
  }

  lastLines(): string {
    return [...this.tail, this.partial].filter(Boolean).join("\n");
  }

  private failure(why: string): Error {
    return new Error(`${this.binary} ${why}; its last log lines:\n${this.lastLines() || "(none)"}`);
  }

  /** Polls `ready` until it answers true; fails when the process exits or `timeoutMs` passes. */
  async waitReady(ready: () => Promise<boolean>, timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (this.exited) throw this.failure(`${this.exited} while starting`);
      if (await ready().catch(() => false)) return;
      if (Date.now() > deadline) throw this.failure(`was not ready within ${timeoutMs / 1000} s`);
      await sleep(100);
    }
  }

  /** SIGTERM, SIGKILL after `graceMs`; resolves once the process is gone. */
  async stop(graceMs = 5000): Promise<void> {
    const child = this.child;
    if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return;
    const gone = new Promise<void>((resolve) => child.once("exit", () => resolve()));
    child.kill("SIGTERM");
    const timer = setTimeout(() => child.kill("SIGKILL"), graceMs);
    await gone;
    clearTimeout(timer);
  }

  /** For process-exit hooks, which cannot wait. */
  killNow(): void {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill("SIGKILL");
  }
}
