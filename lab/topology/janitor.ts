// Removes what test nodes of dead processes left behind (a run killed by a
// timeout or Ctrl-C never reaches its after-hooks). Every test node is named
// mlt<pid><4 hex>, so state whose owner is gone is recognisable and only that is
// touched: live runs alongside (a benchmark, another suite) keep theirs.
//
//   node --import tsx lab/topology/janitor.ts      (scripts/test.sh runs it first)

import { existsSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { findCgroup2Mount } from "../../loader/cgroup.js";
import { detach } from "../../loader/attach.js";
import { DEFAULT_BPFFS } from "../../loader/pins.js";
import { removeCgroupTree } from "./node.js";
import { run } from "./run.js";

const ID = /mlt(\d+)[0-9a-f]{4}(?![0-9a-z])/;

function ownerAlive(name: string): boolean {
  const m = ID.exec(name);
  if (!m) return true; // not ours: leave it
  try {
    process.kill(Number(m[1]), 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}

export async function sweep(): Promise<string[]> {
  const removed: string[] = [];
  const dead = (name: string) => ID.test(name) && !ownerAlive(name);

  for (const line of (await run("ip", ["netns", "list"])).stdout.split("\n")) {
    const ns = line.split(" ")[0];
    if (ns && ns.startsWith("mlt") && dead(ns)) {
      await run("ip", ["netns", "del", ns]).catch(() => undefined);
      removed.push(`netns ${ns}`);
    }
  }
  if (existsSync(DEFAULT_BPFFS)) {
    for (const entry of readdirSync(DEFAULT_BPFFS)) {
      if (entry.startsWith("meshlane-") && dead(entry)) {
        await detach({ pinDir: join(DEFAULT_BPFFS, entry), drainMs: 0 });
        removed.push(`pins ${entry}`);
      }
    }
  }
  const cg2 = findCgroup2Mount();
  if (cg2) {
    for (const entry of readdirSync(cg2)) {
      if (entry.startsWith("meshlane-test-") && dead(entry)) {
        removeCgroupTree(join(cg2, entry));
        removed.push(`cgroup ${entry}`);
      }
    }
  }
  for (const entry of readdirSync(tmpdir())) {
    if (entry.startsWith("mlt") && dead(entry)) {
      rmSync(join(tmpdir(), entry), { recursive: true, force: true });
      removed.push(`dir ${entry}`);
    }
  }
  return removed;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const removed = await sweep();
  if (removed.length) process.stdout.write(`removed state of dead test runs: ${removed.join(", ")}\n`);
}
