// `meshlane-loader run` in standalone mode, against real pinned maps: the maps
// follow the registry file, bad input changes nothing, late cgroups are retried.

import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { pino } from "pino";
import { startAgent, type Agent } from "../../loader/agent.js";
import { fileRegistrySource } from "../../loader/registry-file.js";
import { readStatus } from "../../loader/status.js";
import { countEntries } from "../../loader/pinned.js";
import { MAPS } from "../../loader/maps/codecs.js";
import { Mesh } from "../../lab/topology/mesh.js";
import { until } from "../../lab/until.js";
import type { TestPod } from "../../lab/topology/node.js";

describe("loader run (standalone)", () => {
  let mesh: Mesh;
  let a: TestPod, b: TestPod;
  let agent: Agent;
  let file: string, stateFile: string;
  let base: string;
  const podsInMap = () => countEntries(mesh.fds().mesh_pods, MAPS.mesh_pods.key.size);
  const write = (doc: unknown) => {
    // Replace the file the way editors and ConfigMap volume updates do: write aside, rename over.
    writeFileSync(`${file}.new`, typeof doc === "string" ? doc : JSON.stringify(doc));
    renameSync(`${file}.new`, file);
  };

  before(async () => {
    mesh = await Mesh.create();
    a = await mesh.node.addPod("a", { sidecar: false, iptables: false });
    b = await mesh.node.addPod("b", { sidecar: false, iptables: false });
    mesh.attach();
    file = join(mesh.node.workDir, "registry.json");
    stateFile = join(mesh.node.workDir, "state", "pods.json");
    write(mesh.node.registrations([a]));
    agent = await startAgent({
      pinDir: mesh.pinDir,
      kubepods: mesh.node.kubepods,
      source: fileRegistrySource(file),
      log: pino({ level: "silent" }),
      listen: { host: "127.0.0.1", port: 0 },
      resyncMs: 60_000,
      pendingRetryMs: 100,
      stateFile,
    });
    base = `http://127.0.0.1:${agent.address()!.port}`;
  });
  after(async () => {
    await agent?.stop();
    await mesh.destroy();
  });

  test("the maps hold the file's pods on start, and follow edits of the file", async () => {
    assert.equal(podsInMap(), 1);
    write(mesh.node.registrations([a, b]));
    await until("b is registered", () => podsInMap() === 2);
    write(mesh.node.registrations([b]));
    await until("a is removed", () => podsInMap() === 1);
    const status = readStatus(mesh.pinDir, stateFile);
    assert.deepEqual(status.pods.map((p) => [p.name, [...p.ips].sort()]), [["b", [b.ip, b.ip6].sort()]]);
  });

  test("a file that is not JSON changes nothing and is counted", async () => {
    write("{ not json");
    await until("the failed sync is counted", async () => /meshlane_sync_errors_total\{reason="registry-unreadable"\} [1-9]/.test(await (await fetch(`${base}/metrics`)).text()));
    assert.equal(podsInMap(), 1, "b stays registered");
  });

  test("an invalid registration is reported and the valid ones still apply", async () => {
    const regs = mesh.node.registrations([a, b]) as Record<string, any>;
    regs[a.uid].interception.excludeOutboundPorts = [70000];
    write(regs);
    const r = await agent.syncNow();
    assert.deepEqual(r!.pods.find((p) => p.uid === a.uid)!.state, "invalid");
    assert.match(r!.pods.find((p) => p.uid === a.uid)!.problem!, /excludeOutboundPorts\[0\].*1-65535/);
    assert.equal(podsInMap(), 1);
  });

  test("a pod whose cgroup appears later is retried, not dropped", async () => {
    const late = { ...mesh.node.registrations([a])[a.uid]!, uid: "5f0e8c3a-9d7b-4c1e-a2f3-0123456789ab", ips: ["10.77.0.250"] };
    write({ ...mesh.node.registrations([a, b]), [late.uid]: late });
    const r = await agent.syncNow();
    assert.equal(r!.pods.find((p) => p.uid === late.uid)!.state, "pending-cgroup");
    mkdirSync(join(mesh.node.kubepods, `pod${late.uid}`));
    await until("the late pod is registered", () => podsInMap() === 3);
  });

  test("/metrics, /healthz and /status answer", async () => {
    const metrics = await (await fetch(`${base}/metrics`)).text();
    assert.match(metrics, /meshlane_datapath_events_total\{event="connect_outbound"\} \d+/);
    assert.match(metrics, /meshlane_map_entries\{map="mesh_pods"\} 3/);
    assert.match(metrics, /meshlane_map_capacity\{map="mesh_socks"\} 65536/);
    assert.match(metrics, /meshlane_pods\{state="registered"\} 3/);
    assert.equal((await fetch(`${base}/healthz`)).status, 200);
    const status = (await (await fetch(`${base}/status`)).json()) as { pods: unknown[] };
    assert.equal(status.pods.length, 3);
    assert.equal((await fetch(`${base}/nope`)).status, 404);
  });
});
