import { test } from "node:test";
import assert from "node:assert/strict";
import { makePlan, schedule } from "../../bench/plan.js";
import { median, ratio, relativeSpread } from "../../bench/stats.js";
import { checkTargets, programCosts, summarise, type Sample } from "../../bench/summary.js";

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
    sidecar: "tcp",
    placement: "one-cpu",
    connMode: "keep-alive",
    connections,
    wrk: { requests: rps * 3, requestsPerSec: rps, latencyUs: { p50: p99 / 4, p90: p99 / 2, p99 }, errors: 0 },
    podCpuSec: (rps * 3) / 50_000,
  };
}

test("figures are medians over repetitions and ratios are meshlane over iptables", () => {
  const rows = summarise([
    sample("iptables", 1, 10_000, 400),
    sample("meshlane-proxy", 1, 15_000, 200),
    sample("iptables", 1, 11_000, 500),
    sample("meshlane-proxy", 1, 16_000, 300),
    sample("iptables", 1, 90_000, 100), // one disturbed repetition does not move the median
    sample("meshlane-proxy", 1, 17_000, 250),
  ]);
  assert.equal(rows.length, 1);
  const [row] = rows;
  assert.equal(row!.modes.iptables!.requestsPerSec, 11_000);
  assert.equal(row!.modes["meshlane-proxy"]!.requestsPerSec, 16_000);
  assert.equal(row!.vsIptables["meshlane-proxy"]!.qps, 16_000 / 11_000);
  assert.equal(row!.vsIptables["meshlane-proxy"]!.p99, 250 / 400);
  assert.equal(row!.modes["meshlane-proxy"]!.cpuSecPer1kRequests, 1000 / 50_000);
  assert.equal(row!.vsIptables.unregistered, undefined);
});

test("a target is met only when every point it covers meets it", () => {
  const rows = summarise([
    sample("iptables", 1, 10_000, 400),
    sample("meshlane-proxy", 1, 15_000, 200),
    sample("iptables", 8, 10_000, 400),
    sample("meshlane-proxy", 8, 13_000, 200),
    sample("iptables", 64, 10_000, 400),
    sample("meshlane-proxy", 64, 5_000, 900), // beyond 16 connections: not covered by the keep-alive targets
  ]);
  const [close, qps, p99, unregistered, switches] = checkTargets(rows, [], [{ kind: "register", windowOverSteadyP99: 1.5 }]);
  assert.equal(qps!.met, false);
  assert.deepEqual(qps!.values.map((v) => v.point), ["tcp one-cpu keep-alive ×1", "tcp one-cpu keep-alive ×8"]);
  assert.equal(p99!.met, true);
  assert.equal(close!.met, false, "no close-mode point measured is no evidence");
  assert.equal(unregistered!.values.length, 0);
  assert.equal(unregistered!.met, false);
  assert.equal(switches!.met, true);
});

test("the programs' share of the CPU time per request comes from bpf_stats of the same runs", () => {
  const base = sample("unregistered", 16, 10_000, 400);
  const run = (runTimeNs: number) => ({
    ...base,
    podCpuSec: 0.3, // 30,000 requests: 10 µs each
    progStats: { mesh_connect4: { runTimeNs, runCnt: 30_000 }, mesh_sockops: { runTimeNs, runCnt: 60_000 } },
  });
  const [cost] = programCosts([run(1_500_000), run(3_000_000), run(600_000)]);
  assert.equal(cost!.programs.mesh_connect4!.runsPerRequest, 1);
  assert.equal(cost!.programs.mesh_sockops!.runsPerRequest, 2);
  assert.equal(cost!.programs.mesh_connect4!.nsPerRun, 50);
  assert.equal(cost!.bpfNsPerRequest, 100);
  assert.equal(cost!.share.median, 0.01);
  assert.equal(cost!.share.max, 0.02);
  const [, , , unregistered] = checkTargets(summarise([base]), [cost!], []);
  assert.equal(unregistered!.met, false, "the highest repetition (2%) is over 1%");
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
