// Waiting for something that happens asynchronously elsewhere (a watch, another
// process, the kernel), with a deadline that names what never happened.

import { setTimeout as sleep } from "node:timers/promises";

/**
 * Under software emulation (lab/qemu's guests) everything runs ~20× slower and a
 * process takes seconds to start; the guest sets MESHLANE_LAB_SLOWDOWN so that the
 * lab's default deadlines stretch with it instead of failing a slow start as dead.
 */
export const LAB_SLOWDOWN = Number(process.env.MESHLANE_LAB_SLOWDOWN ?? "1") || 1;

export async function until(what: string, cond: () => boolean | Promise<boolean>, timeoutMs = 10_000 * LAB_SLOWDOWN, pollMs = 20): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting until ${what}`);
    await sleep(pollMs);
  }
}
