// current_pod() looks for a task's pod only at the cgroup levels attach writes
// into mesh_config: the levels right below kubepods and below its QoS cgroups.
// Wrong levels either lose pods (a burstable pod no longer steered) or cost a
// lookup per level for every unregistered task (a range the loader widened).

import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { relative } from "node:path";
import { Mesh } from "../../lab/topology/mesh.js";
import type { TestPod } from "../../lab/topology/node.js";
import { findCgroup2Mount } from "../../loader/cgroup.js";
import { MapHandle } from "../../loader/map-handle.js";

const SPEC = { sizes: [1000], concurrency: 1 };

describe("pod cgroup levels", () => {
  let mesh: Mesh;
  let guaranteed: TestPod, burstable: TestPod, server: TestPod;
  let kubepodsLevel: number;
  const config = () => new MapHandle("mesh_config", mesh.fds().mesh_config);

  before(async () => {
    mesh = await Mesh.create();
    guaranteed = await mesh.node.addPod("g");
    burstable = await mesh.node.addPod("bu", { qos: "burstable" });
    server = await mesh.node.addPod("s");
    await server.startApp(80);
    mesh.attach();
    const report = mesh.register([guaranteed, burstable, server]);
    assert.deepEqual(report.pods.map((p) => p.state), ["registered", "registered", "registered"]);
    kubepodsLevel = relative(findCgroup2Mount()!, mesh.node.kubepods).split("/").length;
  });
  after(() => mesh.destroy());

  /** Whether one connection from `pod` to the server was steered by meshlane (else iptables took it). */
  async function steered(pod: TestPod): Promise<boolean> {
    const before = mesh.counters().CNT_CONNECT_OUTBOUND;
    const ipt = (await pod.redirectCounters()).outbound;
    const res = await pod.send(server.ip, 80, SPEC);
    assert.deepEqual(res.filter((r) => !r.ok), [], `${pod.name}'s connection worked`);
    const byMeshlane = mesh.counters().CNT_CONNECT_OUTBOUND - before;
    const byIptables = (await pod.redirectCounters()).outbound - ipt;
    assert.equal(Number(byMeshlane) + byIptables, 1, `exactly one path took ${pod.name}'s connection`);
    return byMeshlane === 1n;
  }

  test("attach writes exactly the two levels below kubepods, no wider", () => {
    assert.deepEqual(config().lookup(0), { flags: 0, pod_level_min: kubepodsLevel + 1, pod_level_max: kubepodsLevel + 2 });
  });

  test("pods right below kubepods and below a QoS cgroup are both steered", async () => {
    assert.equal(await steered(guaranteed), true);
    assert.equal(await steered(burstable), true);
  });

  test("the programs look at no level outside the range", async () => {
    const written = config().lookup(0)!;
    try {
      config().update(0, { ...written, pod_level_max: kubepodsLevel + 1 });
      assert.equal(await steered(burstable), false, "a pod one level below the range takes iptables");
      assert.equal(await steered(guaranteed), true);
      config().update(0, { ...written, pod_level_min: kubepodsLevel + 2 });
      assert.equal(await steered(guaranteed), false, "a pod one level above the range takes iptables");
      assert.equal(await steered(burstable), true);
    } finally {
      config().update(0, written);
    }
  });

  test("no levels written (an older loader, a lost config) steers nothing: iptables takes it all", async () => {
    const written = config().lookup(0)!;
    try {
      config().update(0, { flags: 0, pod_level_min: 0, pod_level_max: 0 });
      assert.equal(await steered(guaranteed), false);
      assert.equal(await steered(burstable), false);
    } finally {
      config().update(0, written);
    }
  });
});
