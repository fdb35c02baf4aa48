// The socket-API compatibility matrix (issue 9, point 3): what an application
// receives, byte for byte, under each redirect mode must be what it receives under
// plain iptables. One node, three pods (client a, server b, relay f), their apps
// started once and driven through every row by the command line of lab/apps/sockapp;
// the iptables run comes first, before any program is attached; then each mode is a
// re-registration of the same pods.

import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import type { ChildProcess } from "node:child_process";
import { setTimeout as sleep } from "node:timers/promises";
import { Mesh } from "../../lab/topology/mesh.js";
import { waitForLine, type TestPod } from "../../lab/topology/node.js";
import { run } from "../../lab/topology/run.js";
import { buildSockapp, parseReports, specArg, type Report } from "../../lab/apps/sockapp.js";
import type { RedirectMode } from "../../registry/document.js";
import { connectionsOf, describeDifference, differences, matrixRows, observe, unsteadyRows, type Observation, type Row } from "./socket-api-matrix.js";
import { HAZARDS_OF_ALL, matrixMarkdown, unexplained } from "./socket-api-hazards.js";

const FIRST_PORT = 20_000;
/** Each run has ports of its own, so that a report arriving late can only count for the run it belongs to. */
const RUNS = ["iptables", "proxy", "none", "all"] as const;
/** Connections in flight at once: the hung ones of a hazard row (10 s deadline each) overlap. */
const PARALLEL = 8;
/** Emulated guests (lab/qemu) run everything this many times slower; sockapp scales its own waits too. */
const SLOWDOWN = Number(process.env.MESHLANE_LAB_SLOWDOWN ?? "1") || 1;

describe("socket-API matrix", () => {
  const rows = matrixRows();
  const portOf = (run: (typeof RUNS)[number], row: Row) => FIRST_PORT + RUNS.indexOf(run) * rows.length + rows.indexOf(row);
  const rowOfPort = new Map(RUNS.flatMap((run) => rows.map((row) => [String(portOf(run, row)), row] as const)));
  let mesh: Mesh;
  let a: TestPod, b: TestPod, f: TestPod;
  let bin: string;
  const appReports: Report[] = [];
  const results = new Map<string, Map<string, Observation>>();

  /** Collects every report line an app prints (server and relay run for the whole suite). */
  function collect(child: ChildProcess): void {
    let buf = "";
    child.stdout!.on("data", (d) => {
      buf += d;
      const nl = buf.lastIndexOf("\n");
      if (nl < 0) return;
      appReports.push(...parseReports(buf.slice(0, nl)));
      buf = buf.slice(nl + 1);
    });
  }

  const endSpec = (row: Row, end: "client" | "server") => ({ size: row.size, ...row[end] });

  /** Runs every row once (each `rep` times) on the run's own ports and returns its observations per row. */
  async function runMatrix(run: (typeof RUNS)[number]): Promise<Map<string, Observation>> {
    const ports = new Set(rows.map((row) => String(portOf(run, row))));
    const ofRun = () => appReports.filter((rep) => ports.has(rep.id));
    const jobs = rows.map((row) =>
      specArg({ tag: row.id.replace(/[ ,=]/g, "_"), host: row.forward ? f.ip : b.ip, port: portOf(run, row), rep: row.rep, ...endSpec(row, "client") }),
    );
    const r = await a.exec([bin, "client", String(PARALLEL), ...jobs]);
    if (r.code !== 0) throw new Error(`sockapp client exited ${r.code}: ${r.stderr}`);
    const clientReports = parseReports(r.stdout);
    // The server and relay report a connection when they close it, a moment after the client saw the end.
    const want = rows.reduce((n, row) => n + connectionsOf(row), 0);
    for (const start = Date.now(); ofRun().length < want && Date.now() - start < 15_000 * SLOWDOWN; ) await sleep(50);
    const byRow = new Map<string, Report[]>(rows.map((row) => [row.id, []]));
    const tagToRow = new Map(rows.map((row) => [row.id.replace(/[ ,=]/g, "_"), row.id]));
    for (const rep of clientReports) byRow.get(tagToRow.get(rep.id.replace(/#\d+$/, ""))!)!.push(rep);
    for (const rep of ofRun()) byRow.get(rowOfPort.get(rep.id)!.id)!.push(rep);
    return new Map(rows.map((row) => [row.id, observe(row, byRow.get(row.id)!, portOf(run, row))]));
  }

  before(async () => {
    mesh = await Mesh.create();
    a = await mesh.node.addPod("a");
    b = await mesh.node.addPod("b");
    f = await mesh.node.addPod("f");
    // TCP Fast Open on for clients and servers, in the pods' own namespaces only.
    for (const pod of [a, b, f]) await run("ip", ["netns", "exec", pod.netns, "sysctl", "-qw", "net.ipv4.tcp_fastopen=3"]);
    bin = buildSockapp(mesh.node.workDir);
    const server = b.spawn([bin, "serve", ...RUNS.flatMap((run) => rows.map((row) => specArg({ port: portOf(run, row), ...endSpec(row, "server") })))]);
    collect(server);
    await waitForLine(server, /^ready/m, "sockapp server of pod b");
    const relays = rows.filter((row) => row.forward);
    const relay = f.spawn([bin, "forward", ...RUNS.flatMap((run) => relays.map((row) => specArg({ port: portOf(run, row), to: `${b.ip}:${portOf(run, row)}`, copy: row.forward })))]);
    collect(relay);
    await waitForLine(relay, /^ready/m, "sockapp relay of pod f");
    // The reference: Istio's iptables rules and the sidecars, no BPF program anywhere yet.
    results.set("iptables", await runMatrix("iptables"));
    mesh.attach();
  });

  after(async () => {
    const out = process.env.MESHLANE_SOCKET_API_MATRIX;
    if (out && results.size) writeFileSync(out, matrixMarkdown(rows, results));
    await mesh?.destroy();
  });

  test("iptables: every row delivers every byte to both ends, the same way in every repetition", () => {
    const base = results.get("iptables")!;
    const unsteady = unsteadyRows(base);
    assert.ok(!unsteady.length, `rows whose iptables result varies cannot be compared:\n${unsteady.map((id) => `${id}: ${JSON.stringify(base.get(id))}`).join("\n")}`);
    for (const row of rows) {
      const obs = base.get(row.id)!;
      const ends = row.forward ? 3 : 2;
      assert.equal(Object.values(obs).flat().length, row.rep * ends, `${row.id}: one report per end and connection`);
      for (const line of [...obs.client, ...obs.server]) {
        // A reset ends what the reset end's peer reads; every other end gets its whole stream and end-of-file.
        if (row.client.end === "linger0" || row.server.end === "linger0") assert.match(line, /intact=true/, `${row.id}: ${line}`);
        else assert.match(line, /intact=true end=eof/, `${row.id}: ${line}`);
        assert.doesNotMatch(line, /txErr|differs|more-than|under|stalled|missing|unavailable/, `${row.id}: ${line}`);
      }
    }
  });

  for (const mode of ["proxy", "none", "all"] as const satisfies readonly RedirectMode[]) {
    test(`redirect=${mode}: ${mode === "all" ? "rows differ from iptables exactly where the hazard list says" : "every row identical to iptables"}`, async () => {
      for (const pod of [a, b, f]) pod.interception.redirect = mode;
      mesh.register([a, b, f]);
      const before = mesh.counters();
      const got = await runMatrix(mode);
      results.set(mode, got);
      const after = mesh.counters();

      const diffs = differences(results.get("iptables")!, got);
      if (mode === "all") {
        const problems = unexplained(rows, diffs, HAZARDS_OF_ALL);
        assert.ok(!problems.length, `mode all differs from iptables where its hazards do not say:\n${problems.join("\n")}`);
      } else {
        assert.ok(!diffs.length, `mode ${mode} changed what applications receive:\n${diffs.map(describeDifference).join("\n")}`);
      }

      // meshlane really handled this run: every client connection was steered at connect time.
      const connections = BigInt(rows.reduce((n, row) => n + connectionsOf(row), 0));
      assert.equal(after.CNT_CONNECT_OUTBOUND - before.CNT_CONNECT_OUTBOUND, connections, "every app connection was steered by meshlane");
      const redirected = after.CNT_BYTES_REDIRECTED - before.CNT_BYTES_REDIRECTED;
      if (mode === "none") assert.equal(redirected, 0n, "nothing moves socket to socket in mode none");
      else assert.ok(redirected > 0n, "bytes moved socket to socket");
    });
  }
});
