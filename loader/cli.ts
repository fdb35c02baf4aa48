#!/usr/bin/env node
// meshlane-loader: the node agent's command line. Arguments are checked by
// loader/options.ts; a usage error prints what is wrong and the usage and exits 2,
// any other failure prints its message and exits 1.

import { pino } from "pino";
import { attach, detach } from "./attach.js";
import { startAgent } from "./agent.js";
import { findCgroup2Mount, findKubepods } from "./cgroup.js";
import { formatChecks, runDoctor } from "./doctor.js";
import { loadKubeEndpoint } from "./kube-api.js";
import { parseCommand, USAGE, UsageError, type Command } from "./options.js";
import { fileRegistrySource } from "./registry-file.js";
import { configMapRegistrySource } from "./registry-configmap.js";
import { formatStatus, readStatus } from "./status.js";

function kubepodsOrThrow(): string {
  const cg2 = findCgroup2Mount();
  if (!cg2) throw new Error("no cgroup2 mount found; meshlane needs cgroup v2");
  const kp = findKubepods(cg2);
  if (!kp) throw new Error(`no kubepods cgroup under ${cg2}; pass --cgroup (attach) or --kubepods (run) to name the pod cgroup root`);
  return kp;
}

async function execute(c: Command): Promise<number> {
  switch (c.command) {
    case "help":
      process.stdout.write(USAGE + "\n");
      return 0;
    case "doctor": {
      const checks = runDoctor(c.objectPath);
      process.stdout.write(formatChecks(checks) + "\n");
      return checks.some((x) => x.required && !x.ok) ? 1 : 0;
    }
    case "attach": {
      const r = attach({
        cgroup: c.cgroup ?? kubepodsOrThrow(),
        pinDir: c.pinDir,
        ...(c.objectPath ? { objectPath: c.objectPath } : {}),
      });
      process.stdout.write(`attached to ${r.cgroup} (pins in ${c.pinDir})\n`);
      for (const [prog, what] of Object.entries(r.programs)) process.stdout.write(`  ${prog}: ${what}\n`);
      return 0;
    }
    case "run": {
      const log = pino({ name: "meshlane-loader" });
      const agent = await startAgent({
        pinDir: c.pinDir,
        kubepods: c.kubepods ?? kubepodsOrThrow(),
        source: "registryFile" in c.source ? fileRegistrySource(c.source.registryFile) : configMapRegistrySource(loadKubeEndpoint(c.source.kubeconfig), c.source.node, log),
        log,
        listen: c.listen,
        resyncMs: c.resyncMs,
        stateFile: c.stateFile,
      });
      await new Promise<void>((resolve) => {
        const stop = (signal: string) => {
          log.info({ signal }, "stopping");
          void agent.stop().then(resolve);
        };
        process.once("SIGTERM", () => stop("SIGTERM"));
        process.once("SIGINT", () => stop("SIGINT"));
      });
      return 0;
    }
    case "status": {
      const s = readStatus(c.pinDir, c.stateFile);
      process.stdout.write((c.json ? JSON.stringify(s, null, 2) : formatStatus(s)) + "\n");
      return 0;
    }
    case "detach": {
      const r = await detach({ pinDir: c.pinDir, drainMs: c.drainMs });
      process.stdout.write(r.wasAttached ? `detached: removed ${r.removed.length} pins under ${c.pinDir}\n` : `nothing of meshlane is attached (no pins under ${c.pinDir})\n`);
      return 0;
    }
  }
}

let command: Command;
try {
  command = parseCommand(process.argv.slice(2));
} catch (e) {
  if (!(e instanceof UsageError)) throw e;
  process.stderr.write(`meshlane-loader: ${e.message}\n\n${USAGE}\n`);
  process.exit(2);
}
execute(command).then(
  (code) => process.exit(code),
  (e: Error) => {
    process.stderr.write(`meshlane-loader: ${e.message}\n`);
    process.exit(1);
  },
);
