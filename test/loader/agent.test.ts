// `meshlane-loader run` in standalone mode, against real pinned maps: the maps
// follow the registry file, bad input changes nothing, late cgroups are retried, and a
// pod that cannot be written is reported while every other pod is applied.

import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, renameSync, rmdirSync, writeFileSync } from "node:fs";
import { get } from "node:http";
import { join } from "node:path";
import { Writable } from "node:stream";
import { pino } from "pino";
import { startAgent, type Agent } from "../../loader/agent.js";
import { fileRegistrySource } from "../../loader/registry-file.js";
import { readStatus } from "../../loader/status.js";
import { MapHandle } from "../../loader/map-handle.js";
import { Mesh } from "../../lab/topology/mesh.js";
import { until } from "../../lab/until.js";
import type { TestPod } from "../../lab/topology/node.js";

describe("loader run (standalone)", () => {
  let mesh: Mesh;
  let a: TestPod, b: TestPod;
  let agent: Agent;
  let file: string, stateFile: string;
  let base: string;
  const podsInMap = () => new MapHandle("mesh_pods", mesh.fds().mesh_pods).count();
  const portRules = () => new MapHandle("mesh_ports", mesh.fds().mesh_ports).count();
  const logLines: Record<string, any>[] = [];
  const logStream = new Writable({
    write(chunk, _enc, done) {
      for (const line of String(chunk).split("\n").filter(Boolean)) logLines.push(JSON.parse(line));
      done();
    },
  });
  // A fresh connection per scrape: a kept-alive one may be closed by the server while a long sync runs.
  const metrics = () =>
    new Promise<string>((resolve, reject) => {
      get(`${base}/metrics`, { agent: false }, (res) => {
        let body = "";
        res.setEncoding("utf8").on("data", (d: string) => (body += d)).on("end", () => resolve(body)).on("error", reject);
      }).on("error", reject);
    });
  /** A registration of a pod whose cgroup the test makes (and may remove) itself. */
  const extraPod = (uid: string, ip: string, interception: Record<string, unknown> = {}) => {
    const base = mesh.node.registrations([a])[a.uid]! as Record<string, any>;
    mkdirSync(join(mesh.node.kubepods, `pod${uid}`));
    return { ...base, uid, name: `extra-${uid.slice(0, 4)}`, ips: [ip], interception: { ...base.interception, ...interception } };
  };
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
      log: pino({ level: "info" }, logStream),
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
    // The state file follows within a second (it is rewritten at most once a second).
    await until("the state file names b alone", () => readStatus(mesh.pinDir, stateFile).pods.length === 1 && readStatus(mesh.pinDir, stateFile).pods[0]!.name === "b");
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
    assert.deepEqual(r!.pods.find((p) => p.uid === a.uid)!.reason, "invalid-document");
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
    assert.match(metrics, /meshlane_pods\{state="registered",reason="applied"\} 3/);
    assert.match(metrics, /meshlane_pods\{state="not-applied",reason="map-full"\} 0/);
    assert.equal((await fetch(`${base}/healthz`)).status, 200);
    const status = (await (await fetch(`${base}/status`)).json()) as { pods: unknown[] };
    assert.equal(status.pods.length, 3);
    assert.equal((await fetch(`${base}/nope`)).status, 404);
  });

  test("a pod too big for a map is reported, nothing of it is written, and every other pod is applied", async () => {
    const regs = mesh.node.registrations([a, b]);
    write(regs);
    await agent.syncNow();
    const rulesBefore = portRules();
    // 65,535 + 1,000 port rules: more than mesh_ports holds (65,536).
    const huge = extraPod("7d1c2b3a-0000-4000-8000-00000000f111", "10.77.0.251", {
      excludeOutboundPorts: Array.from({ length: 65535 }, (_, i) => i + 1),
      excludeInboundPorts: Array.from({ length: 1000 }, (_, i) => i + 1),
    });
    const small = extraPod("7d1c2b3a-0000-4000-8000-00000000f222", "10.77.0.252", { excludeOutboundPorts: [2222] });
    write({ ...regs, [huge.uid]: huge, [small.uid]: small });
    const r = (await agent.syncNow())!;
    const state = (uid: string) => r.pods.find((p) => p.uid === uid)!;
    assert.equal(state(huge.uid).state, "not-applied");
    assert.equal(state(huge.uid).reason, "map-full");
    const controlPorts = (huge.interception.controlPorts as number[]).length;
    assert.match(state(huge.uid).problem!, new RegExp(`mesh_ports is full: the pod needs ${66535 + controlPorts} new entries, \\d+ are free of 65536; nothing of it was written`));
    for (const uid of [a.uid, b.uid, small.uid]) assert.equal(state(uid).state, "registered", uid);
    assert.equal(podsInMap(), 3, "a, b and the small pod; not the huge one");
    assert.equal(portRules(), rulesBefore + 1 + (small.interception.controlPorts as number[]).length, "only the small pod's rules were added");
    assert.match(await metrics(), /meshlane_pods\{state="not-applied",reason="map-full"\} 1/);
    assert.match(await metrics(), /meshlane_pods\{state="registered",reason="applied"\} 3/);
    const warn = [...logLines].reverse().find((l) => l.msg === "registration not applied" && l.uid === huge.uid);
    assert.equal(warn?.reason, "map-full");
    const summary = [...logLines].reverse().find((l) => typeof l.msg === "string" && l.msg.startsWith("maps updated"));
    assert.deepEqual(summary?.notApplied, [huge.uid]);
    assert.equal(summary?.entriesNotWritten, 66535 + controlPorts + 2, "the huge pod's rules, IP and pod entry");

    // The map has room once the huge pod's registration is fixed: it is applied then.
    write({ ...regs, [huge.uid]: { ...huge, interception: { ...huge.interception, excludeOutboundPorts: [1], excludeInboundPorts: [] } }, [small.uid]: small });
    assert.equal((await agent.syncNow())!.pods.find((p) => p.uid === huge.uid)!.state, "registered");
    assert.equal(podsInMap(), 4);
    write(regs);
    await agent.syncNow();
    for (const uid of [huge.uid, small.uid]) rmdirSync(join(mesh.node.kubepods, `pod${uid}`));
  });

  test("a pod whose cgroup vanishes goes back to pending and out of the maps; the others stay", async () => {
    const regs = mesh.node.registrations([a, b]);
    const gone = extraPod("7d1c2b3a-0000-4000-8000-00000000f333", "10.77.0.253");
    write({ ...regs, [gone.uid]: gone });
    assert.equal((await agent.syncNow())!.pods.find((p) => p.uid === gone.uid)!.state, "registered");
    assert.equal(podsInMap(), 3);
    rmdirSync(join(mesh.node.kubepods, `pod${gone.uid}`));
    const r = (await agent.syncNow())!;
    assert.deepEqual([r.pods.find((p) => p.uid === gone.uid)!.state, r.pods.find((p) => p.uid === gone.uid)!.reason], ["pending-cgroup", "no-cgroup"]);
    assert.deepEqual(r.pods.filter((p) => p.state === "registered").map((p) => p.uid).sort(), [a.uid, b.uid].sort());
    assert.equal(podsInMap(), 2);
    assert.match(await metrics(), /meshlane_pods\{state="pending-cgroup",reason="no-cgroup"\} 1/);
  });
});
