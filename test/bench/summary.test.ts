import { test } from "node:test";
import assert from "node:assert/strict";
import { makePlan, schedule } from "../../bench/plan.js";
import { median, ratio, relativeSpread } from "../../bench/stats.js";
import { checkTargets, summarise, type Sample } from "../../bench/summary.js";

test("median of odd and even counts, spread and ratio", () => {
  assert.equal(median([5, 1, 3]), 3);
  assert.equal(median([4, 1, 3, 2]), 2.5);
  assert.throws(() => median([]), /no values/);
  assert.equal(relativeSpread([90, 100, 110]), 0.2);
  assert.equal(ratio(3, 2), 1.5);
  assert.equal(ratio(3, 0), null);
});

function sample(mode: Sample["mode"], connections: number, rps: number, p99: number): Sample {
  return {
    mode,
    connMode: "keep-alive",
    connections,
    wrk: { requests: rps * 3, requestsPerSec: rps, latencyUs: { p50: p99 / 4, p90: p99 / 2, p99 }, errors: 0 },
    podCpuSec: (rps * 3) / 50_000,
  };
}

test("figures are medians over repetitions and ratios are meshlane over iptables", () => {
  const rows = summarise([
    sample("iptables", 1, 10_000, 400),
    sample("meshlane", 1, 15_000, 200),
    sample("iptables", 1, 11_000, 500),
    sample("meshlane", 1, 16_000, 300),
    sample("iptables", 1, 90_000, 100), // one disturbed repetition does not move the median
    sample("meshlane", 1, 17_000, 250),
  ]);
  assert.equal(rows.length, 1);
  const [row] = rows;
  assert.equal(row!.modes.iptables!.requestsPerSec, 11_000);
  assert.equal(row!.modes.meshlane!.requestsPerSec, 16_000);
  assert.equal(row!.meshlaneVsIptables!.qps, 16_000 / 11_000);
  assert.equal(row!.meshlaneVsIptables!.p99, 250 / 400);
  assert.equal(row!.modes.meshlane!.cpuSecPer1kRequests, 1000 / 50_000);
  assert.equal(row!.unregisteredVsIptables, null);
});

test("a target is met only when every point it covers meets it", () => {
  const rows = summarise([
    sample("iptables", 1, 10_000, 400),
    sample("meshlane", 1, 15_000, 200),
    sample("iptables", 8, 10_000, 400),
    sample("meshlane", 8, 13_000, 200),
    sample("iptables", 64, 10_000, 400),
    sample("meshlane", 64, 5_000, 900), // beyond 16 connections: not covered by the keep-alive targets
  ]);
  const [qps, p99, close, unregistered] = checkTargets(rows);
  assert.equal(qps!.met, false);
  assert.deepEqual(qps!.values.map((v) => v.point), ["keep-alive ×1", "keep-alive ×8"]);
  assert.equal(p99!.met, true);
  assert.equal(close!.met, false, "no close-mode point measured is no evidence");
  assert.equal(unregistered!.values.length, 0);
});

test("the schedule interleaves modes at every point and rotates which goes first", () => {
  const plan = makePlan(false);
  const steps = schedule(plan);
  const perPoint = plan.points.reduce((n, p) => n + p.modes.length, 0);
  assert.equal(steps.length, perPoint * plan.repetitions);
  const firsts = new Set(steps.filter((s, i) => i === 0 || steps[i - 1]!.point !== s.point).filter((s) => s.point === plan.points[0]).map((s) => s.mode));
  assert.equal(firsts.size, Math.min(plan.repetitions, plan.points[0]!.modes.length));
  assert.ok(makePlan(true).repetitions === 1);
});
