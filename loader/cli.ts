#!/usr/bin/env node
// meshlane-loader: the node agent's command line.

import { parseArgs } from "node:util";
import { pino } from "pino";
import { attach, detach, DEFAULT_CONTROL_PORTS } from "./attach.js";
import { startAgent } from "./agent.js";
import { findCgroup2Mount, findKubepods } from "./cgroup.js";
import { formatChecks, runDoctor } from "./doctor.js";
import { fileRegistrySource } from "./registry-file.js";
import { configMapRegistrySource } from "./registry-configmap.js";
import { loadKubeEndpoint } from "./kube-api.js";
import { DEFAULT_PIN_DIR } from "./pins.js";
import { formatStatus, readStatus } from "./status.js";

const DEFAULT_STATE_FILE = "/run/meshlane/pods.json";

const USAGE = `usage: meshlane-loader <command> [options]

commands:
  doctor                       check that this node can run meshlane's data path
  attach [--cgroup PATH]       load the programs, pin them and attach them (idempotent)
         [--pin-dir DIR] [--control-ports 15000,15004,...]
  run --node NAME              keep the BPF maps equal to this node's registrations: watches
      [--kubeconfig FILE]      ConfigMap meshlane-node-NAME in meshlane-system (credentials:
                               --kubeconfig, else $KUBECONFIG, else the pod's service account)
  run --registry-file FILE     the same from a local JSON file of the same keys (standalone mode)
      run's options: [--pin-dir DIR] [--kubepods PATH] [--listen HOST:PORT] [--resync SECONDS]
                     [--state-file FILE]
  status [--json]              what is attached where, registered pods, counters
  detach [--pin-dir DIR]       take meshlane off this node (drains redirected bytes first)
         [--drain-ms MS]

defaults: --pin-dir ${DEFAULT_PIN_DIR}, --cgroup/--kubepods: the node's kubepods cgroup
(kubepods.slice or kubepods under the cgroup2 mount), --listen 0.0.0.0:9465,
--resync 10, --state-file ${DEFAULT_STATE_FILE}, --drain-ms 2000`;

class UsageError extends Error {}

function kubepodsOrThrow(): string {
  const cg2 = findCgroup2Mount();
  if (!cg2) throw new Error("no cgroup2 mount found; meshlane needs cgroup v2");
  const kp = findKubepods(cg2);
  if (!kp) throw new Error(`no kubepods cgroup under ${cg2}; pass --cgroup/--kubepods to name the pod cgroup root`);
  return kp;
}

function parseListen(text: string): { host: string; port: number } {
  const i = text.lastIndexOf(":");
  const port = Number(text.slice(i + 1));
  if (i < 0 || !Number.isInteger(port) || port < 0 || port > 65535) throw new UsageError(`--listen wants HOST:PORT, got "${text}"`);
  return { host: text.slice(0, i) || "0.0.0.0", port };
}

function parsePorts(text: string): number[] {
  return text.split(",").map((p) => {
    const n = Number(p.trim());
    if (!Number.isInteger(n) || n < 1 || n > 65535) throw new UsageError(`--control-ports: "${p}" is not a port`);
    return n;
  });
}

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  const { values } = parseArgs({
    args: rest,
    options: {
      cgroup: { type: "string" },
      "pin-dir": { type: "string", default: DEFAULT_PIN_DIR },
      "control-ports": { type: "string" },
      object: { type: "string" },
      "registry-file": { type: "string" },
      node: { type: "string" },
      kubeconfig: { type: "string" },
      kubepods: { type: "string" },
      listen: { type: "string", default: "0.0.0.0:9465" },
      resync: { type: "string", default: "10" },
      "state-file": { type: "string", default: DEFAULT_STATE_FILE },
      json: { type: "boolean", default: false },
      "drain-ms": { type: "string", default: "2000" },
    },
    strict: true,
  });
  const pinDir = values["pin-dir"]!;

  switch (command) {
    case "doctor": {
      const checks = runDoctor(values.object);
      process.stdout.write(formatChecks(checks) + "\n");
      return checks.some((c) => c.required && !c.ok) ? 1 : 0;
    }
    case "attach": {
      const r = attach({
        cgroup: values.cgroup ?? kubepodsOrThrow(),
        pinDir,
        controlPorts: values["control-ports"] ? parsePorts(values["control-ports"]) : DEFAULT_CONTROL_PORTS,
        ...(values.object ? { objectPath: values.object } : {}),
      });
      process.stdout.write(`attached to ${r.cgroup} (pins in ${pinDir})\n`);
      for (const [prog, what] of Object.entries(r.programs)) process.stdout.write(`  ${prog}: ${what}\n`);
      return 0;
    }
    case "run": {
      const file = values["registry-file"];
      const node = values.node;
      if (!file === !node) throw new UsageError("run needs either --node NAME (Kubernetes mode) or --registry-file FILE (standalone mode)");
      if (file && values.kubeconfig) throw new UsageError("--kubeconfig goes with --node, not --registry-file");
      const resync = Number(values.resync);
      if (!(resync > 0)) throw new UsageError(`--resync wants a number of seconds, got "${values.resync}"`);
      const log = pino({ name: "meshlane-loader" });
      const agent = await startAgent({
        pinDir,
        kubepods: values.kubepods ?? values.cgroup ?? kubepodsOrThrow(),
        source: file ? fileRegistrySource(file) : configMapRegistrySource(loadKubeEndpoint(values.kubeconfig), node!, log),
        log,
        listen: parseListen(values.listen!),
        resyncMs: resync * 1000,
        stateFile: values["state-file"]!,
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
      const s = readStatus(pinDir, values["state-file"]);
      process.stdout.write((values.json ? JSON.stringify(s, null, 2) : formatStatus(s)) + "\n");
      return 0;
    }
    case "detach": {
      const drainMs = Number(values["drain-ms"]);
      if (!(drainMs >= 0)) throw new UsageError(`--drain-ms wants milliseconds, got "${values["drain-ms"]}"`);
      const r = await detach({ pinDir, drainMs });
      process.stdout.write(r.wasAttached ? `detached: removed ${r.removed.length} pins under ${pinDir}\n` : `nothing of meshlane is attached (no pins under ${pinDir})\n`);
      return 0;
    }
    case undefined:
    case "help":
    case "--help":
    case "-h":
      process.stdout.write(USAGE + "\n");
      return command === undefined ? 2 : 0;
    default:
      throw new UsageError(`unknown command "${command}"`);
  }
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (e: Error) => {
    process.stderr.write(`meshlane-loader: ${e.message}\n`);
    if (e instanceof UsageError || e.name === "TypeError") process.stderr.write(`\n${USAGE}\n`);
    process.exit(e instanceof UsageError ? 2 : 1);
  },
);
