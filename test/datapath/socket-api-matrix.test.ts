// The matrix's pure parts: what counts as the application's view, what counts as a
// difference from iptables, and what the hazard list of mode all must explain.

import { describe, test } from "node:test";
import assert from "node:assert/strict";
import type { Report } from "../../lab/apps/sockapp.js";
import { differences, matrixRows, observe, observed, unsteadyRows, type Observation, type Row } from "./socket-api-matrix.js";
import { HAZARDS_OF_ALL, unexplained, type Hazard } from "./socket-api-hazards.js";

const full: Report = { side: "server", id: "20000", rx: 1000, hash: "aa", intact: true, firstBad: -1, end: "eof", tx: 1000, txErr: "", local: "10.77.0.3:20000", peer: "127.0.0.6:41234", extra: "", ms: 3 };
const row = (id: string, app: Row["app"] = "server"): Row => ({ id, app, size: 1000, rep: 1, client: {}, server: {} });
const obs = (server: string[], client: string[] = []): Observation => ({ client, server, forwarder: [] });

describe("socket-API matrix rows and comparison", () => {
  test("row ids are unique and short enough for sockapp's tag", () => {
    const ids = matrixRows().map((r) => r.id);
    assert.equal(new Set(ids).size, ids.length);
    for (const id of ids) assert.ok(id.length < 100, id);
  });

  test("every declared hazard names rows that exist", () => {
    const ids = new Set(matrixRows().map((r) => r.id));
    for (const h of HAZARDS_OF_ALL) for (const id of h.rows) assert.ok(ids.has(id), `${h.what}: ${id}`);
  });

  test("the application's view: bytes, order and end count, times and ephemeral ports do not", () => {
    assert.equal(observed({ ...full, ms: 900 }, false), observed(full, false));
    assert.equal(observed({ ...full, peer: "127.0.0.6:50000" }, true), observed(full, true));
    assert.notEqual(observed({ ...full, local: "127.0.0.1:15006" }, true), observed(full, true));
    assert.match(observed({ ...full, intact: false, firstBad: 0 }, false), /intact=false firstBad=0 /);
    assert.match(observed({ side: "client", id: "x#0", end: "connect:ECONNREFUSED" }, false), /connect failed ECONNREFUSED/);
  });

  test("fewer bytes, another end or a missing connection is a difference; repetition order is not", () => {
    const base = new Map([["r", observe(row("r"), [full, { ...full, tx: 5 }])]]);
    assert.deepEqual(differences(base, new Map([["r", observe(row("r"), [{ ...full, tx: 5 }, full])]])), []);
    for (const bad of [{ ...full, rx: 999 }, { ...full, end: "err:EAGAIN" }]) {
      assert.equal(differences(base, new Map([["r", observe(row("r"), [bad, { ...full, tx: 5 }])]])).length, 1);
    }
    assert.equal(differences(base, new Map([["r", observe(row("r"), [full])]])).length, 1);
    assert.deepEqual(unsteadyRows(base), ["r"]);
  });

  test("mode all: an undeclared difference, an unexplained line and a steady hazard that did not show are each reported", () => {
    const rows = [row("a"), row("b"), row("c")];
    const hazards: Hazard[] = [
      { what: "steady", rows: ["a"], shows: /rx=0/ },
      { what: "race", rows: ["b"], shows: /EAGAIN/, intermittent: true },
    ];
    const base = new Map(rows.map((r) => [r.id, obs(["rx=1000 end=eof"])]));
    const run = (a: string, b: string, c: string) => differences(base, new Map([["a", obs([a])], ["b", obs([b])], ["c", obs([c])]]));
    assert.deepEqual(unexplained(rows, run("rx=0 end=eof", "rx=1000 end=eof", "rx=1000 end=eof"), hazards), []);
    assert.deepEqual(unexplained(rows, run("rx=0 end=eof", "rx=7 end=err:EAGAIN", "rx=1000 end=eof"), hazards), []);
    assert.equal(unexplained(rows, run("rx=1000 end=eof", "rx=1000 end=eof", "rx=1000 end=eof"), hazards).length, 1, "steady hazard absent");
    assert.equal(unexplained(rows, run("rx=0 end=eof", "rx=1000 end=eof", "rx=5 end=eof"), hazards).length, 1, "undeclared row");
    assert.equal(unexplained(rows, run("rx=0 end=eof", "rx=5 intact=false end=eof", "rx=1000 end=eof"), hazards).length, 1, "line unlike its hazard");
  });
});
