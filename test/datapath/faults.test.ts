// Faults: the loader killed mid-transfer, meshlane detached mid-transfer, and
// attach run twice. Transfers in flight must complete intact every time.

import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { Mesh } from "../../lab/topology/mesh.js";
import { LAB_SLOWDOWN, until } from "../../lab/until.js";
import { cliCommand } from "../../lab/repo.js";
import type { TestPod } from "../../lab/topology/node.js";
import { waitForLine } from "../../lab/topology/node.js";
import * as bpf from "../../loader/libbpf.js";
import { openDir, withFd } from "../../loader/attach.js";
import { loadObject } from "../../loader/object.js";
import { PROGRAMS, PROGRAM_NAMES } from "../../loader/maps/codecs.js";

/** Long enough that the disturbance lands mid-transfer: 8 chunks, 120 ms apart. */
const LONG = { sizes: Array<number>(12).fill(2 << 20), concurrency: 12, holdMs: 120 };

describe("faults", () => {
  let mesh: Mesh;
  let a: TestPod, b: TestPod;

  before(async () => {
    mesh = await Mesh.create();
    a = await mesh.node.addPod("a");
    b = await mesh.node.addPod("b");
    await b.startApp(80);
  });
  after(() => mesh.destroy());

  test("SIGKILL of the loader during transfers: every transfer completes, still accelerated", async () => {
    mesh.attach();
    const registry = join(mesh.node.workDir, "registry.json");
    writeFileSync(registry, JSON.stringify(mesh.node.registrations([a, b])));
    const loader = spawn(
      process.execPath,
      [...cliCommand("loader"), "run", "--registry-file", registry, "--pin-dir", mesh.pinDir, "--kubepods", mesh.node.kubepods, "--listen", "127.0.0.1:0", "--state-file", join(mesh.node.workDir, "state.json")],
      { stdio: ["ignore", "pipe", "pipe"] },
    );
    try {
      // From the sources tsx compiles the loader at start: on a busy 2-core machine that alone takes over 10 s.
      await waitForLine(loader, /"msg":"loader running"/, "meshlane-loader run", 60_000 * LAB_SLOWDOWN);
      const before = mesh.counters();
      const transfers = a.send(b.ip, 80, LONG);
      await until("all transfers are connected", () => mesh.counters().CNT_CONNECT_OUTBOUND - before.CNT_CONNECT_OUTBOUND === BigInt(LONG.sizes.length));
      loader.kill("SIGKILL");
      const res = await transfers;
      assert.equal(loader.signalCode, "SIGKILL");
      assert.deepEqual(res.filter((r) => !r.ok), []);
      // Programs and maps live on in their pins: a new connection is still steered with no loader running.
      const mid = mesh.counters();
      assert.equal(mid.CNT_CONNECT_OUTBOUND - before.CNT_CONNECT_OUTBOUND, BigInt(LONG.sizes.length));
      const again = await a.send(b.ip, 80, { sizes: [100_000], concurrency: 1 });
      assert.deepEqual(again.filter((r) => !r.ok), []);
      assert.equal(mesh.counters().CNT_CONNECT_OUTBOUND - mid.CNT_CONNECT_OUTBOUND, 1n);
    } finally {
      loader.kill("SIGKILL");
    }
  });

  test("detach during transfers: every transfer completes intact, then traffic is back on iptables", async () => {
    mesh.attach();
    mesh.register([a, b]);
    const before = mesh.counters();
    const transfers = a.send(b.ip, 80, LONG);
    await until("all transfers are connected and accelerated", () => {
      const c = mesh.counters();
      return c.CNT_CONNECT_OUTBOUND - before.CNT_CONNECT_OUTBOUND === BigInt(LONG.sizes.length) && c.CNT_MSG_REDIRECTED > before.CNT_MSG_REDIRECTED;
    });
    const detached = await mesh.detach(300);
    const res = await transfers;
    assert.ok(detached.wasAttached);
    assert.deepEqual(res.filter((r) => !r.ok), []);

    const ipt = await a.redirectCounters();
    const after = await a.send(b.ip, 80, { sizes: [100_000], concurrency: 1 });
    assert.deepEqual(after.filter((r) => !r.ok), []);
    assert.equal((await a.redirectCounters()).outbound - ipt.outbound, 1, "iptables handled the new connection");
  });

  test("attach twice: each program attached once, registrations kept, other tools' programs left alone", async () => {
    // Another tool's program on the same cgroup (a private copy of our connect4, attached by link).
    const other = loadObject(null);
    const otherLink = withFd(openDir(mesh.node.kubepods), (fd) => bpf.attachCgroup(bpf.findProgram(other.obj, "mesh_connect4"), fd));
    try {
      const first = mesh.attach();
      mesh.register([a, b]);
      const second = mesh.attach();
      assert.ok(PROGRAM_NAMES.every((p) => first.programs[p] === "attached"), JSON.stringify(first));
      assert.ok(PROGRAM_NAMES.every((p) => second.programs[p] === "replaced"), JSON.stringify(second));

      const attachedIds = (type: number) => withFd(openDir(mesh.node.kubepods), (fd) => bpf.progQuery(fd, type));
      for (const name of PROGRAM_NAMES) {
        const { attach, attachType } = PROGRAMS[name];
        if (attach !== "cgroup") continue;
        const expected = name === "mesh_connect4" ? 2 : 1; // ours once, plus the other tool's connect4
        assert.equal(attachedIds(attachType).length, expected, `${name} attached ${expected === 2 ? "once besides the other tool's" : "once"}`);
      }
      // The maps were reused, so the registrations survived and traffic is still steered.
      const before = mesh.counters();
      const res = await a.send(b.ip, 80, { sizes: [10_000], concurrency: 1 });
      assert.deepEqual(res.filter((r) => !r.ok), []);
      assert.equal(mesh.counters().CNT_CONNECT_OUTBOUND - before.CNT_CONNECT_OUTBOUND, 1n);

      await mesh.detach(0);
      assert.equal(attachedIds(PROGRAMS.mesh_connect4.attachType).length, 1, "the other tool's program is still attached after detach");
      assert.equal(attachedIds(PROGRAMS.mesh_sockops.attachType).length, 0);
    } finally {
      bpf.destroyLink(otherLink);
      other.close();
    }
  });
});
