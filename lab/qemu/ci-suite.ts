// The per-kernel test files of `npm test` (test/kernels/guest-*.test.ts) are this
// one declaration: boot the kernel once, then one test per thing it must show.
// A guest that cannot boot fails every test with the reason (nothing is skipped).

import { before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { kernelById } from "./kernels.js";
import { runKernel, type Row } from "./matrix.js";

const REPO = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
/** Upper bound for one guest, boot to power-off; measured runs are in docs/kernels.md. */
const GUEST_LIMIT_MS = 40 * 60_000;

export function describeKernel(id: string, suites: string[]): void {
  const k = kernelById(id);
  describe(`kernel ${id} (${k.package} ${k.version}) under qemu`, () => {
    let row: Row;
    before(async () => {
      row = await runKernel(k, { repo: REPO, suites, timeoutMs: GUEST_LIMIT_MS });
    }, { timeout: GUEST_LIMIT_MS + 5 * 60_000 });

    if (k.expect === "too-old") {
      test("doctor exits non-zero and names what the kernel lacks", { timeout: 10_000 }, () => {
        assert.equal(row.doctor.ok, false, `doctor accepted ${row.release}:\n${row.doctor.log}`);
        assert.ok(row.doctor.reasons.length > 0, `doctor gave no reason:\n${row.doctor.log}`);
        assert.ok(row.doctor.reasons.some((r) => /older than|does not offer|does not support/.test(r)), `no reason names a missing kernel feature:\n${row.doctor.log}`);
      });
      test("attach refuses and leaves no pins, attachments or programs behind", { timeout: 10_000 }, () => {
        assert.ok(row.attach, "attach was not run");
        assert.notEqual(row.attach.code, 0, `attach succeeded on ${row.release}:\n${row.attach.log}`);
        assert.deepEqual(row.attach.leftovers, [], row.attach.log);
      });
      return;
    }
    test("doctor passes: every program through the verifier and attached", { timeout: 10_000 }, () => {
      assert.ok(row.doctor.ok, `doctor on ${row.release}:\n${row.doctor.log}`);
    });
    for (const suite of suites) {
      test(`test/datapath/${suite}.test.ts passes in the guest`, { timeout: 10_000 }, () => {
        const s = row.suites.find((x) => x.suite === suite);
        assert.ok(s, `${suite} did not run`);
        assert.ok(s.summary, `${suite} printed no test summary (exit ${s.code}): ${s.failures.join("; ")}`);
        assert.ok(s.summary.tests > 0, `${suite} ran no test`);
        assert.deepEqual(s.failures, [], `${suite} on ${row.release}:\n${s.failures.join("\n")}`);
        assert.equal(s.summary.fail + s.summary.cancelled, 0, `${suite} on ${row.release}: ${s.summary.fail} failed, ${s.summary.cancelled} cancelled`);
        assert.equal(s.code, 0, `${suite} exited ${s.code}`);
      });
    }
  });
}
