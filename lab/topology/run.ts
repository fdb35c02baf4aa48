// Runs a command to completion; a failure throws with the command line and its stderr.

import { spawn } from "node:child_process";

export function run(cmd: string, args: string[], stdin?: string): Promise<{ stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: [stdin === undefined ? "ignore" : "pipe", "pipe", "pipe"] });
    let stdout = "", stderr = "";
    child.stdout!.on("data", (d) => (stdout += d));
    child.stderr!.on("data", (d) => (stderr += d));
    child.on("error", (e) => reject(new Error(`${cmd} ${args.join(" ")}: ${e.message}`)));
    child.on("close", (code) => {
      if (code === 0) resolve({ stdout, stderr });
      else reject(new Error(`${cmd} ${args.join(" ")} exited ${code}: ${stderr.trim()}`));
    });
    if (stdin !== undefined) {
      child.stdin!.on("error", () => undefined); // an early exit is reported by "close" with its stderr
      child.stdin!.end(stdin);
    }
  });
}
