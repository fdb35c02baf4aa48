import { test } from "node:test";
import assert from "node:assert/strict";
import { parseBenchArgs, selectPoints } from "../../bench/args.js";
import { makePlan, seriesName } from "../../bench/plan.js";

test("no flag is the full run; --quick the quick one; neither needs a label", () => {
  assert.equal(parseBenchArgs([]).quick, false);
  assert.equal(parseBenchArgs(["--quick"]).quick, true);
  assert.equal(parseBenchArgs(["--quick"]).label, null);
});

test("a partial run needs a label, so it never replaces the full run's README", () => {
  assert.throws(() => parseBenchArgs(["--series", "tcp-one-cpu"]), /needs --label/);
  assert.throws(() => parseBenchArgs(["--object", "/tmp/x.o"]), /needs --label/);
  assert.throws(() => parseBenchArgs(["--skip-hop", "--label", "Bad Name"]), /--label must be/);
  assert.throws(() => parseBenchArgs(["--conn", "slow", "--label", "x"]), /--conn must be/);
  assert.throws(() => parseBenchArgs(["--bogus"]), /bogus/);
  const a = parseBenchArgs(["--quick", "--series", "tcp-one-cpu,http-one-cpu", "--conn", "close", "--label", "exp-1"]);
  assert.deepEqual(a.series, ["tcp-one-cpu", "http-one-cpu"]);
  assert.equal(a.connMode, "close");
});

test("selecting points keeps only the named series and connection mode; an unknown series is refused", () => {
  const plan = makePlan(true);
  const sel = selectPoints(plan, parseBenchArgs(["--quick", "--series", "http-one-cpu", "--conn", "close", "--label", "x"]));
  assert.ok(sel.points.length > 0);
  assert.ok(sel.points.every((p) => seriesName(p.series) === "http-one-cpu" && p.connMode === "close"));
  assert.equal(selectPoints(plan, parseBenchArgs(["--quick", "--skip-points", "--label", "x"])).points.length, 0);
  assert.throws(() => selectPoints(plan, parseBenchArgs(["--series", "udp-one-cpu", "--label", "x"])), /unknown series udp-one-cpu/);
});

test("every series of the plan measures iptables and each meshlane mode at every point", () => {
  for (const quick of [true, false]) {
    const plan = makePlan(quick);
    assert.deepEqual([...new Set(plan.points.map((p) => seriesName(p.series)))], ["tcp-one-cpu", "http-one-cpu", "tcp-two-cpus", "http-two-cpus"]);
    for (const p of plan.points) for (const m of ["no-mesh", "iptables", "meshlane-proxy", "meshlane-all", "meshlane-none"] as const) assert.ok(p.modes.includes(m));
    assert.ok(plan.points.some((p) => p.modes.includes("unregistered")));
  }
});

test("--repetitions repeats every point of the plan; anything but 1–99 is refused", () => {
  const plan = makePlan(true);
  assert.equal(selectPoints(plan, parseBenchArgs(["--quick"])).repetitions, plan.repetitions);
  const repeated = selectPoints(plan, parseBenchArgs(["--quick", "--repetitions", "3"]));
  assert.equal(repeated.repetitions, 3);
  assert.deepEqual(repeated.points, plan.points);
  for (const bad of ["0", "-1", "2.5", "100", "three"]) assert.throws(() => parseBenchArgs(["--quick", `--repetitions=${bad}`]), /--repetitions must be/);
});
