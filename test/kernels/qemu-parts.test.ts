// The pure parts of lab/qemu: module load order, what the guest's logs say, the table.

import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { loadOrder, moduleName } from "../../lab/qemu/initramfs.js";
import { failedTests, parseDoctor, parseRunnerSummary } from "../../lab/qemu/summary.js";
import { BEGIN, END, renderTable, replaceTable, rowProblems } from "../../lab/qemu/table.js";
import type { Row } from "../../lab/qemu/matrix.js";

// Lines as depmod writes them for Debian's 6.1 (uncompressed) and 6.12 (.ko.xz).
const DEP_61 = [
  "kernel/fs/9p/9p.ko: kernel/net/9p/9pnet.ko kernel/fs/fscache/fscache.ko kernel/fs/netfs/netfs.ko",
  "kernel/fs/fscache/fscache.ko: kernel/fs/netfs/netfs.ko",
  "kernel/fs/netfs/netfs.ko:",
  "kernel/net/9p/9pnet.ko:",
  "kernel/net/9p/9pnet_virtio.ko: kernel/net/9p/9pnet.ko kernel/drivers/virtio/virtio_ring.ko kernel/drivers/virtio/virtio.ko",
  "kernel/drivers/virtio/virtio_pci.ko: kernel/drivers/virtio/virtio_pci_legacy_dev.ko kernel/drivers/virtio/virtio_pci_modern_dev.ko kernel/drivers/virtio/virtio_ring.ko kernel/drivers/virtio/virtio.ko",
  "kernel/drivers/virtio/virtio_ring.ko: kernel/drivers/virtio/virtio.ko",
  "kernel/drivers/virtio/virtio.ko:",
  "kernel/drivers/virtio/virtio_pci_legacy_dev.ko:",
  "kernel/drivers/virtio/virtio_pci_modern_dev.ko:",
  "kernel/fs/overlayfs/overlay.ko:",
].join("\n");

describe("initramfs module order", () => {
  test("every module comes after what it depends on, each once", () => {
    const order = loadOrder(DEP_61, ["virtio_pci", "9pnet_virtio", "9p", "overlay"]).map(moduleName);
    assert.deepEqual(order, ["virtio", "virtio_ring", "virtio_pci_modern_dev", "virtio_pci_legacy_dev", "virtio_pci", "9pnet", "9pnet_virtio", "netfs", "fscache", "9p", "overlay"]);
  });
  test("built-in modules (absent from modules.dep) are left out", () => {
    const dep = "kernel/fs/9p/9p.ko.xz: kernel/net/9p/9pnet.ko.xz\nkernel/net/9p/9pnet.ko.xz:\n";
    assert.deepEqual(loadOrder(dep, ["virtio_pci", "9p"]), ["kernel/net/9p/9pnet.ko.xz", "kernel/fs/9p/9p.ko.xz"]);
  });
  test("a cycle is an error that names it", () => {
    assert.throws(() => loadOrder("a.ko: b.ko\nb.ko: a.ko\n", ["a"]), /cycle: a\.ko -> b\.ko -> a\.ko/);
  });
  test("module names drop the compression suffix and read dashes as underscores", () => {
    assert.equal(moduleName("kernel/net/netfilter/xt_REDIRECT.ko.xz"), "xt_REDIRECT");
    assert.equal(moduleName("kernel/drivers/net/wireguard.ko.zst"), "wireguard");
    assert.equal(moduleName("kernel/x/snd-hda.ko"), "snd_hda");
  });
});

const SPEC_LOG = `✔ steering (102319.6ms)
✖ integrity (2000.1ms)
ℹ tests 9
ℹ suites 2
ℹ pass 7
ℹ fail 1
ℹ cancelled 1
ℹ skipped 0
ℹ todo 0
ℹ duration_ms 219223.5

✖ failing tests:

test at test/datapath/integrity.test.ts:1:1
✖ bytes arrive unchanged (1500.2ms)
  AssertionError [ERR_ASSERTION]: 1048576 !== 1048000

test at test/datapath/integrity.test.ts:1:2
✖ eof is seen
  'test did not finish before its parent and was cancelled'

test at test/datapath/socket-api.test.ts:116:5
✖ redirect=proxy: every row identical to iptables (93012.4ms)
  AssertionError [ERR_ASSERTION]: mode proxy changed what applications receive:
  read 1000 server: iptables rx=1000 end=eof, got rx=0 end=eagain
  at least one more row: splice 200000 client
      at TestContext.<anonymous> (file:///work/meshlane/test/datapath/socket-api.test.ts:131:16)
      at async Test.run (node:internal/test_runner/test:797:9)
      at async Promise.all (index 0) {
    generatedMessage: false,
    code: 'ERR_ASSERTION'
  }

test at dist/test/datapath/switching.test.js:127:9
✖ deregistered, then registered (1693.6ms)
  AssertionError [ERR_ASSERTION]: PAWSTimewait in pod b
  
  3 !== 0
  
      at TestContext.<anonymous> (file:///work/meshlane/dist/test/datapath/switching.test.js:140:20) {
    generatedMessage: false
  }
`;

describe("guest output", () => {
  test("the runner's closing summary", () => {
    assert.deepEqual(parseRunnerSummary(SPEC_LOG), { tests: 9, pass: 7, fail: 1, cancelled: 1, skipped: 0, todo: 0 });
    assert.deepEqual(parseRunnerSummary("# tests 3\n# pass 3\n# fail 0\n"), { tests: 3, pass: 3, fail: 0, cancelled: 0, skipped: 0, todo: 0 });
  });
  test("no summary (a crashed runner) is null, not zero failures", () => {
    assert.equal(parseRunnerSummary("Segmentation fault\n"), null);
    assert.equal(parseRunnerSummary("ℹ tests 3\n"), null);
  });
  test("failed tests with their whole error message, without the stack", () => {
    assert.deepEqual(failedTests(SPEC_LOG), [
      "bytes arrive unchanged: AssertionError [ERR_ASSERTION]: 1048576 !== 1048000",
      "eof is seen: 'test did not finish before its parent and was cancelled'",
      "redirect=proxy: every row identical to iptables: AssertionError [ERR_ASSERTION]: mode proxy changed what applications receive:\n" +
        "read 1000 server: iptables rx=1000 end=eof, got rx=0 end=eagain\nat least one more row: splice 200000 client",
      "deregistered, then registered: AssertionError [ERR_ASSERTION]: PAWSTimewait in pod b\n\n3 !== 0",
    ]);
    assert.deepEqual(failedTests("✔ all good\nℹ fail 0\n"), []);
  });
  test("doctor: a pass needs exit 0 and the closing sentence; a refusal carries its reasons", () => {
    assert.deepEqual(parseDoctor("ok    kernel 6.1\n\nall checks passed: this node can run meshlane's data path\n", 0), { ok: true, reasons: [] });
    const refused = "FAIL  kernel  x\n\nmeshlane cannot run on this node:\n- kernel 5.10.0-32-amd64 is older than 6.1\n- the kernel does not offer bpf_get_netns_cookie to sock_ops programs\n";
    assert.deepEqual(parseDoctor(refused, 1), { ok: false, reasons: ["kernel 5.10.0-32-amd64 is older than 6.1", "the kernel does not offer bpf_get_netns_cookie to sock_ops programs"] });
    assert.equal(parseDoctor("all checks passed\n", 1).ok, false, "a non-zero exit is never a pass");
    assert.equal(parseDoctor("", 0).ok, false, "no output is never a pass");
  });
});

const summary = (pass: number, fail: number) => ({ tests: pass + fail, pass, fail, cancelled: 0, skipped: 0, todo: 0 });
const good: Row = {
  kernel: "6.1", release: "6.1.0-50-amd64", seconds: 300, cpuSeconds: 410,
  doctor: { ok: true, reasons: [], seconds: 77, log: "" },
  suites: [{ suite: "steering", summary: summary(7, 0), code: 0, seconds: 220, failures: [], log: "" }],
};
const old: Row = {
  kernel: "5.10", release: "5.10.0-32-amd64", seconds: 120,
  doctor: { ok: false, reasons: ["kernel 5.10.0-32-amd64 is older than 6.1"], seconds: 60, log: "" },
  suites: [],
  attach: { code: 1, leftovers: [], log: "" },
};

describe("compatibility table", () => {
  test("one row per kernel with doctor, each suite's counts and the refusal", () => {
    const t = renderTable([good, old], ["steering"], "2026-12-01");
    assert.match(t, /^Run of 2026-12-01\./);
    assert.match(t, /\| 6\.1 \| `6\.1\.0-50-amd64` \| pass \(77 s\) \| 7\/7 pass \(220 s\) \| – \| 300 s \(410 s\) \|/);
    assert.match(t, /\| 5\.10 \| `5\.10\.0-32-amd64` \| \*\*refuses\*\*: kernel 5\.10\.0-32-amd64 is older than 6\.1 \| – \| refused \(exit 1\), nothing left behind \| 120 s \|/);
  });
  test("failures are counted in the cell and listed under the table", () => {
    const bad: Row = { ...good, suites: [{ suite: "steering", summary: summary(6, 1), code: 1, seconds: 200, failures: ["outbound: AssertionError"], log: "✖ outbound" }] };
    const t = renderTable([bad], ["steering"], "2026-12-01");
    assert.match(t, /6\/7 pass, \*\*1 fail\*\*/);
    assert.match(t, /- 6\.1, steering: outbound: AssertionError/);
  });
  test("a failure of many lines stays one list item, shortened past 30 lines", () => {
    const message = ["rows differ:", ...Array.from({ length: 40 }, (_, i) => `row ${i}`)].join("\n");
    const bad: Row = { ...good, suites: [{ suite: "socket-api", summary: summary(3, 1), code: 1, seconds: 90, failures: [`proxy: ${message}`], log: "" }] };
    const t = renderTable([bad], ["socket-api"], "2026-12-01");
    assert.match(t, /^- 6\.1, socket-api: proxy: rows differ:\n  row 0\n  row 1\n/m);
    assert.match(t, /\n  row 28\n  … 11 more lines$/);
    assert.doesNotMatch(t, /row 29/);
  });
  test("kernels without a row are named with the reason: still running, or the guest failed", () => {
    const t = renderTable([good], ["steering"], "2026-12-01", [
      { kernel: "6.12", why: "still running when this was written" },
      { kernel: "5.10", why: "under qemu stopped before its steps finished; last console lines:\nKernel panic" },
    ]);
    assert.match(t, /^Run of 2026-12-01\.\n\n- \*\*6\.12: no result\*\*: still running when this was written\n- \*\*5\.10: no result\*\*: under qemu stopped .*\n  Kernel panic\n\n\| kernel \|/);
    assert.match(t, /\| 6\.1 \| `6\.1\.0-50-amd64` \|/);
  });
  test("the table replaces what is between the markers and nothing else", () => {
    const page = `# Kernels\n\nintro\n\n${BEGIN}\nold table\n${END}\n\nafter\n`;
    assert.equal(replaceTable(page, "NEW"), `# Kernels\n\nintro\n\n${BEGIN}\nNEW\n${END}\n\nafter\n`);
    assert.throws(() => replaceTable("# no markers\n", "NEW"), /expected one/);
  });
  test("what a row must show: a supported kernel passes everything, an old one refuses cleanly", () => {
    assert.deepEqual(rowProblems(good, "supported"), []);
    assert.deepEqual(rowProblems(old, "too-old"), []);
    assert.deepEqual(rowProblems(good, "too-old"), ["doctor accepted 6.1.0-50-amd64, which it must refuse", "attach was not tried"]);
    assert.deepEqual(rowProblems({ ...old, attach: { code: 0, leftovers: ["pin directory /sys/fs/bpf/x"], log: "" } }, "too-old"), [
      "attach succeeded on a kernel doctor refuses",
      "attach left behind: pin directory /sys/fs/bpf/x",
    ]);
    const crashed: Row = { ...good, suites: [{ suite: "steering", summary: null, code: 137, seconds: 1, failures: [], log: "" }] };
    assert.deepEqual(rowProblems(crashed, "supported"), ["steering: no test summary (exit 137)"]);
  });
});
