// loader/options.ts: each command's own option set, typed values, and usage errors
// that name the flag.

import { test } from "node:test";
import assert from "node:assert/strict";
import { parseCommand, UsageError } from "../../loader/options.js";
import { DEFAULT_PIN_DIR } from "../../loader/pins.js";

test("commands and their options parse to typed values, defaults filled in", () => {
  const rows: [string[], object][] = [
    [["help"], { command: "help" }],
    [["--help"], { command: "help" }],
    [["run", "--help"], { command: "help" }],
    [["doctor"], { command: "doctor", objectPath: undefined }],
    [["attach", "--cgroup", "/cg"], { command: "attach", cgroup: "/cg", pinDir: DEFAULT_PIN_DIR, objectPath: undefined }],
    [
      ["run", "--node", "n1", "--listen", "127.0.0.1:0", "--resync", "2.5"],
      { command: "run", source: { node: "n1", kubeconfig: undefined }, pinDir: DEFAULT_PIN_DIR, kubepods: undefined, listen: { host: "127.0.0.1", port: 0 }, resyncMs: 2500, stateFile: "/run/meshlane/pods.json" },
    ],
    [
      ["run", "--registry-file", "/r.json", "--listen", "[::1]:9465", "--kubepods", "/k"],
      { command: "run", source: { registryFile: "/r.json" }, pinDir: DEFAULT_PIN_DIR, kubepods: "/k", listen: { host: "::1", port: 9465 }, resyncMs: 10_000, stateFile: "/run/meshlane/pods.json" },
    ],
    [["status", "--json", "--pin-dir", "/p"], { command: "status", pinDir: "/p", stateFile: "/run/meshlane/pods.json", json: true }],
    [["detach", "--drain-ms", "0"], { command: "detach", pinDir: DEFAULT_PIN_DIR, drainMs: 0 }],
  ];
  for (const [argv, expected] of rows) assert.deepEqual(parseCommand(argv), expected, argv.join(" "));
});

test("usage errors say which flag or command is wrong", () => {
  const rows: [string[], RegExp][] = [
    [[], /no command given/],
    [["frobnicate"], /unknown command "frobnicate"/],
    [["status", "--drain-ms", "5"], /status: Unknown option '--drain-ms'/],
    [["detach", "--json"], /detach: Unknown option '--json'/],
    [["run", "--cgroup", "/x", "--node", "n"], /run: Unknown option '--cgroup'/],
    [["attach", "extra"], /attach: Unexpected argument 'extra'/],
    [["attach", "--pin-dir"], /attach: Option '--pin-dir <value>' argument missing/],
    [["attach", "--pin-dir", ""], /--pin-dir wants a path, got an empty string/],
    [["attach", "--control-ports", "15000"], /attach: Unknown option '--control-ports'/],
    [["run"], /run needs either --node NAME \(Kubernetes mode\) or --registry-file FILE/],
    [["run", "--node", "n1", "--registry-file", "/r"], /run needs either/],
    [["run", "--registry-file", "/r", "--kubeconfig", "/k"], /--kubeconfig goes with --node/],
    [["run", "--node", "n1", "--resync", "0"], /--resync wants a number of seconds, got "0"/],
    [["run", "--node", "n1", "--resync", "10s"], /--resync wants a number of seconds, got "10s"/],
    [["run", "--node", "n1", "--listen", "9465"], /--listen wants HOST:PORT, got "9465"/],
    [["run", "--node", "n1", "--listen", "h:99999"], /--listen wants HOST:PORT/],
    [["detach", "--drain-ms=-1"], /--drain-ms wants a whole number of milliseconds, got "-1"/],
    [["detach", "--drain-ms", "-1"], /detach: Option '--drain-ms' argument is ambiguous/],
    [["help", "me"], /help takes no arguments/],
  ];
  for (const [argv, message] of rows) {
    assert.throws(() => parseCommand(argv), (e: unknown) => e instanceof UsageError && message.test(e.message), argv.join(" "));
  }
});
