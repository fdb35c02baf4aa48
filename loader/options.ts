// meshlane-loader's command line → a checked command. Pure: each command has its
// own option set (an option of another command is an unknown option here), every
// value is checked once and handed on typed, and a usage error names the flag.

import { parseArgs, type ParseArgsConfig } from "node:util";
import { DEFAULT_PIN_DIR } from "./pins.js";

export const DEFAULT_STATE_FILE = "/run/meshlane/pods.json";
export const DEFAULT_LISTEN = "0.0.0.0:9465";
export const DEFAULT_RESYNC_SECONDS = 10;
export const DEFAULT_DRAIN_MS = 2000;

export const USAGE = `usage: meshlane-loader <command> [options]

commands:
  doctor [--object FILE]       check that this node can run meshlane's data path
  attach [--cgroup PATH]       load the programs, pin them and attach them (idempotent)
         [--pin-dir DIR] [--object FILE]
  run --node NAME              keep the BPF maps equal to this node's registrations: watches
      [--kubeconfig FILE]      the registry objects of node NAME in meshlane-system (credentials:
                               --kubeconfig, else $KUBECONFIG, else the pod's service account)
  run --registry-file FILE     the same from a local JSON file of pod UID → registration
                               (standalone mode)
      run's options: [--pin-dir DIR] [--kubepods PATH] [--listen HOST:PORT] [--resync SECONDS]
                     [--state-file FILE]
  status [--json]              what is attached where, registered pods, counters
         [--pin-dir DIR] [--state-file FILE]
  detach [--pin-dir DIR]       take meshlane off this node (drains redirected bytes first)
         [--drain-ms MS]
  help                         this text (also: meshlane-loader <command> --help)

defaults: --pin-dir ${DEFAULT_PIN_DIR}, --cgroup/--kubepods: the node's kubepods cgroup
(kubepods.slice or kubepods under the cgroup2 mount), --listen ${DEFAULT_LISTEN},
--resync ${DEFAULT_RESYNC_SECONDS}, --state-file ${DEFAULT_STATE_FILE}, --drain-ms ${DEFAULT_DRAIN_MS}

usage errors exit 2, failures 1.`;

export class UsageError extends Error {
  override name = "UsageError";
}

export type Command =
  | { command: "help" }
  | { command: "doctor"; objectPath: string | undefined }
  | { command: "attach"; cgroup: string | undefined; pinDir: string; objectPath: string | undefined }
  | {
      command: "run";
      source: { node: string; kubeconfig: string | undefined } | { registryFile: string };
      pinDir: string;
      kubepods: string | undefined;
      listen: { host: string; port: number };
      resyncMs: number;
      stateFile: string;
    }
  | { command: "status"; pinDir: string; stateFile: string; json: boolean }
  | { command: "detach"; pinDir: string; drainMs: number };

type Options = NonNullable<ParseArgsConfig["options"]>;
const str = { type: "string" } as const;
const help = { help: { type: "boolean", short: "h" } } as const;

/** The options each command takes, and nothing else. */
const OPTIONS = {
  doctor: { ...help, object: str },
  attach: { ...help, cgroup: str, "pin-dir": str, object: str },
  run: { ...help, node: str, kubeconfig: str, "registry-file": str, "pin-dir": str, kubepods: str, listen: str, resync: str, "state-file": str },
  status: { ...help, json: { type: "boolean" }, "pin-dir": str, "state-file": str },
  detach: { ...help, "pin-dir": str, "drain-ms": str },
} as const satisfies Record<string, Options>;

function parse<C extends keyof typeof OPTIONS>(command: C, args: string[]) {
  try {
    return parseArgs({ args, options: OPTIONS[command], strict: true, allowPositionals: false }).values;
  } catch (e) {
    // node's messages name the option: "Unknown option '--x'", "Option '--pin-dir <value>' argument missing".
    throw new UsageError(`${command}: ${(e as Error).message.replace(/\. To specify a positional argument.*$/s, "")}`);
  }
}

function path(text: string | undefined, flag: string): string | undefined {
  if (text !== undefined && text.trim() === "") throw new UsageError(`${flag} wants a path, got an empty string`);
  return text;
}

export function parseListen(text: string): { host: string; port: number } {
  const i = text.lastIndexOf(":");
  const port = text.slice(i + 1);
  if (i < 0 || !/^\d{1,5}$/.test(port) || Number(port) > 65535) throw new UsageError(`--listen wants HOST:PORT, got "${text}"`);
  return { host: text.slice(0, i).replace(/^\[(.*)\]$/, "$1") || "0.0.0.0", port: Number(port) };
}

function positive(text: string, flag: string, what: string): number {
  const n = Number(text);
  if (!/^\d+(\.\d+)?$/.test(text) || !(n > 0)) throw new UsageError(`${flag} wants ${what}, got "${text}"`);
  return n;
}

function nonNegativeInteger(text: string, flag: string, what: string): number {
  if (!/^\d+$/.test(text)) throw new UsageError(`${flag} wants ${what}, got "${text}"`);
  return Number(text);
}

export function parseCommand(argv: string[]): Command {
  const [command, ...rest] = argv;
  if (command === undefined) throw new UsageError("no command given");
  if (command === "help" || command === "--help" || command === "-h") {
    if (rest.length) throw new UsageError(`help takes no arguments, got "${rest.join(" ")}"`);
    return { command: "help" };
  }
  if (!(command in OPTIONS)) throw new UsageError(`unknown command "${command}"`);
  switch (command as keyof typeof OPTIONS) {
    case "doctor": {
      const v = parse("doctor", rest);
      return v.help ? { command: "help" } : { command: "doctor", objectPath: path(v.object, "--object") };
    }
    case "attach": {
      const v = parse("attach", rest);
      if (v.help) return { command: "help" };
      return {
        command: "attach",
        cgroup: path(v.cgroup, "--cgroup"),
        pinDir: path(v["pin-dir"], "--pin-dir") ?? DEFAULT_PIN_DIR,
        objectPath: path(v.object, "--object"),
      };
    }
    case "run": {
      const v = parse("run", rest);
      if (v.help) return { command: "help" };
      const file = path(v["registry-file"], "--registry-file");
      if ((file === undefined) === (v.node === undefined)) throw new UsageError("run needs either --node NAME (Kubernetes mode) or --registry-file FILE (standalone mode)");
      if (file !== undefined && v.kubeconfig !== undefined) throw new UsageError("--kubeconfig goes with --node, not --registry-file");
      if (v.node !== undefined && v.node.trim() === "") throw new UsageError("--node wants a node name, got an empty string");
      return {
        command: "run",
        source: file !== undefined ? { registryFile: file } : { node: v.node!, kubeconfig: path(v.kubeconfig, "--kubeconfig") },
        pinDir: path(v["pin-dir"], "--pin-dir") ?? DEFAULT_PIN_DIR,
        kubepods: path(v.kubepods, "--kubepods"),
        listen: parseListen(v.listen ?? DEFAULT_LISTEN),
        resyncMs: positive(v.resync ?? String(DEFAULT_RESYNC_SECONDS), "--resync", "a number of seconds") * 1000,
        stateFile: path(v["state-file"], "--state-file") ?? DEFAULT_STATE_FILE,
      };
    }
    case "status": {
      const v = parse("status", rest);
      if (v.help) return { command: "help" };
      return { command: "status", pinDir: path(v["pin-dir"], "--pin-dir") ?? DEFAULT_PIN_DIR, stateFile: path(v["state-file"], "--state-file") ?? DEFAULT_STATE_FILE, json: v.json ?? false };
    }
    case "detach": {
      const v = parse("detach", rest);
      if (v.help) return { command: "help" };
      return {
        command: "detach",
        pinDir: path(v["pin-dir"], "--pin-dir") ?? DEFAULT_PIN_DIR,
        drainMs: nonNegativeInteger(v["drain-ms"] ?? String(DEFAULT_DRAIN_MS), "--drain-ms", "a whole number of milliseconds"),
      };
    }
  }
}
