// meshlane-loader as a user runs it: exit codes and what it prints.

import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { Mesh } from "../../lab/topology/mesh.js";
import { findCgroup2Mount } from "../../loader/cgroup.js";
import { DEFAULT_BPFFS } from "../../loader/pins.js";

function cli(...args: string[]) {
  const r = spawnSync("node", ["--import", "tsx", "loader/cli.ts", ...args], { encoding: "utf8" });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

describe("meshlane-loader CLI", () => {
  let mesh: Mesh;
  before(async () => {
    mesh = await Mesh.create();
  });
  after(() => mesh.destroy());

  test("doctor passes on this machine", () => {
    const r = cli("doctor");
    assert.equal(r.code, 0, r.out + r.err);
    assert.match(r.out, /all checks passed/);
    assert.match(r.out, /ok\s+attach mesh_sk_msg/);
  });

  test("doctor inside a read-only cgroup mount (the loader's pod) skips the attach checks instead of failing", () => {
    const cg2 = findCgroup2Mount()!;
    // A private mount namespace, so the read-only remount is seen by this command only.
    const r = spawnSync("unshare", ["-m", "sh", "-c", `mount --bind ${cg2} ${cg2} && mount -o remount,ro,bind ${cg2} && exec node --import tsx loader/cli.ts doctor`], { encoding: "utf8" });
    assert.equal(r.status, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /note\s+scratch cgroup\s+cannot create a scratch cgroup .*attach checks skipped/);
    assert.doesNotMatch(r.stdout, /attach mesh_connect4/);
  });

  test("attach, attach again, status, detach, detach again", () => {
    const pin = ["--pin-dir", mesh.pinDir];
    const first = cli("attach", "--cgroup", mesh.node.kubepods, ...pin);
    assert.equal(first.code, 0, first.err);
    assert.match(first.out, /mesh_connect4: attached/);
    const second = cli("attach", "--cgroup", mesh.node.kubepods, ...pin);
    assert.match(second.out, /mesh_connect4: replaced/);

    const status = cli("status", "--json", ...pin, "--state-file", "/nonexistent");
    assert.equal(status.code, 0, status.err);
    const s = JSON.parse(status.out);
    assert.equal(s.attached, true);
    assert.ok(s.programs.every((p: { attachedTo: string }) => p.attachedTo === mesh.node.kubepods || p.attachedTo === "sockhash mesh_socks"), status.out);

    assert.match(cli("status", ...pin).out, /PROGRAM\s+ATTACHED TO/);
    assert.match(cli("detach", "--drain-ms", "0", ...pin).out, /detached: removed \d+ pins/);
    assert.match(cli("detach", ...pin).out, /nothing of meshlane is attached/);
    const after = cli("status", ...pin);
    assert.equal(after.code, 1);
    assert.match(after.err, /meshlane is not attached .* run "meshlane-loader attach" first/);
  });

  test("attach mounts bpffs when none is visible", () => {
    // In a private mount namespace a tmpfs covers /sys/fs/bpf, so attach must mount bpffs over it;
    // the pins (and with them the attachment) vanish with the namespace.
    const pinDir = `${DEFAULT_BPFFS}/meshlane-bpffs-${mesh.node.id}`;
    const script = [
      `mount -t tmpfs none ${DEFAULT_BPFFS}`,
      `node --import tsx loader/cli.ts attach --cgroup ${mesh.node.kubepods} --pin-dir ${pinDir}`,
      `grep " ${DEFAULT_BPFFS} " /proc/self/mountinfo | tail -n 1`,
      `node --import tsx loader/cli.ts detach --drain-ms 0 --pin-dir ${pinDir}`,
    ].join(" && ");
    const r = spawnSync("unshare", ["-m", "--propagation", "private", "sh", "-c", script], { encoding: "utf8" });
    assert.equal(r.status, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /mesh_connect4: attached/);
    assert.match(r.stdout, / - bpf bpf /, "the topmost mount at /sys/fs/bpf is a bpffs attach mounted");
    assert.match(r.stdout, /detached: removed/);
  });

  test("usage errors exit 2 and say what is wrong", () => {
    const unknown = cli("frobnicate");
    assert.equal(unknown.code, 2);
    assert.match(unknown.err, /unknown command "frobnicate"/);
    const run = cli("run");
    assert.equal(run.code, 2);
    assert.match(run.err, /run needs either --node NAME \(Kubernetes mode\) or --registry-file FILE/);
    const both = cli("run", "--node", "n1", "--registry-file", "/tmp/r.json");
    assert.equal(both.code, 2);
    // Control ports are per pod now (the registration's controlPorts): the node-wide flag is gone.
    // (An unknown option, whatever exit code the CLI gives those.)
    const ports = cli("attach", "--cgroup", mesh.node.kubepods, "--pin-dir", mesh.pinDir, "--control-ports", "15000");
    assert.equal(ports.code, 2);
    assert.match(ports.err, /attach: Unknown option '--control-ports'/);
    const other = cli("status", "--drain-ms", "5");
    assert.equal(other.code, 2, "an option of another command is unknown here");
    assert.match(other.err, /^meshlane-loader: status: Unknown option '--drain-ms'/);
    assert.match(other.err, /usage: meshlane-loader <command>/);
    const none = cli();
    assert.equal(none.code, 2);
    assert.match(none.err, /no command given/);
    const help = cli("detach", "--help");
    assert.equal(help.code, 0);
    assert.match(help.out, /^  detach \[--pin-dir DIR\]/m);
  });
});
