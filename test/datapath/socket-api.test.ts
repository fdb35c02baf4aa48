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
import { connectionsOf, differences, matrixRows, observe, unsteadyRows, type Observation, type Row } from "./socket-api-matrix.js";
import { HAZARDS_OF_ALL, matrixMarkdown, unexplained } from "./socket-api-hazards.js";

const FIRST_PORT = 20_000;
/** Connections in flight at once: the hung ones of a hazard row (10 s deadline each) overlap. */
const PARALLEL = 8;
/** Emulated guests (lab/qemu) run everything this many times slower; sockapp scales its own waits too. */
const SLOWDOWN = Number(process.env.MESHLANE_LAB_SLOWDOWN ?? "1") || 1;

describe("socket-API matrix", () => {
  const rows = matrixRows();
  const portOf = new Map(rows.map((r, i) => [r.id, FIRST_PORT + i]));
  const rowOfPort = new Map(rows.map((r, i) => [String(FIRST_PORT + i), r]));
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

  /** Runs every row once (each `rep` times) and returns its observations per row. */
  async function runMatrix(): Promise<Map<string, Observation>> {
    appReports.length = 0;
    const jobs = rows.map((row) =>
      specArg({ tag: row.id.replace(/[ ,=]/g, "_"), host: row.forward ? f.ip : b.ip, port: portOf.get(row.id), rep: row.rep, ...endSpec(row, "client") }),
    );
    const r = await a.exec([bin, "client", String(PARALLEL), ...jobs]);
    if (r.code !== 0) throw new Error(`sockapp client exited ${r.code}: ${r.stderr}`);
    const clientReports = parseReports(r.stdout);
    // The server and relay report a connection when they close it, a moment after the client saw the end.
    const want = rows.reduce((n, row) => n + connectionsOf(row), 0);
    for (const start = Date.now(); appReports.length < want && Date.now() - start < 15_000 * SLOWDOWN; ) await sleep(50);
    const byRow = new Map<string, Report[]>(rows.map((row) => [row.id, []]));
    const tagToRow = new Map(rows.map((row) => [row.id.replace(/[ ,=]/g, "_"), row.id]));
    for (const rep of clientReports) byRow.get(tagToRow.get(rep.id.replace(/#\d+$/, ""))!)!.push(rep);
    for (const rep of appReports) byRow.get(rowOfPort.get(rep.id)!.id)!.push(rep);
    return new Map(rows.map((row) => [row.id, observe(row, byRow.get(row.id)!)]));
  }

  before(async () => {
    mesh = await Mesh.create();
    a = await mesh.node.addPod("a");
    b = await mesh.node.addPod("b");
    f = await mesh.node.addPod("f");
    // TCP Fast Open on for clients and servers, in the pods' own namespaces only.
    for (const pod of [a, b, f]) await run("ip", ["netns", "exec", pod.netns, "sysctl", "-qw", "net.ipv4.tcp_fastopen=3"]);
    bin = buildSockapp(mesh.node.workDir);
    const server = b.spawn([bin, "serve", ...rows.map((row) => specArg({ port: portOf.get(row.id), ...endSpec(row, "server") }))]);
    collect(server);
    await waitForLine(server, /^ready/m, "sockapp server of pod b");
    const relays = rows.filter((row) => row.forward);
    const relay = f.spawn([bin, "forward", ...relays.map((row) => specArg({ port: portOf.get(row.id), to: `${b.ip}:${portOf.get(row.id)}`, copy: row.forward }))]);
    collect(relay);
    await waitForLine(relay, /^ready/m, "sockapp relay of pod f");
    // The reference: Istio's iptables rules and the sidecars, no BPF program anywhere yet.
    results.set("iptables", await runMatrix());
    mesh.attach();
  });

  after(async () => {
    const out = process.env.MESHLANE_SOCKET_API_MATRIX;
    if (out && results.size) writeFileSync(out, matrixMarkdown(rows, results));
    await mesh?.destroy();
  });

  test("iptables: every row delivers every byte to both ends, the same way in every repetition", () => {
    const base = results.get("iptables")!;
    assert.deepEqual(unsteadyRows(base), [], "a row whose iptables result varies cannot be compared");
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
      const got = await runMatrix();
      results.set(mode, got);
      const after = mesh.counters();

      const diffs = differences(results.get("iptables")!, got);
      if (mode === "all") {
        assert.deepEqual(unexplained(rows, diffs, HAZARDS_OF_ALL), [], "mode all differs from iptables exactly where its hazards say");
      } else {
        assert.deepEqual(diffs, [], `mode ${mode} changed what applications receive`);
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
