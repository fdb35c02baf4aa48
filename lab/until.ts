// Waiting for something that happens asynchronously elsewhere (a watch, another
// process, the kernel), with a deadline that names what never happened.

import { setTimeout as sleep } from "node:timers/promises";

export async function until(what: string, cond: () => boolean | Promise<boolean>, timeoutMs = 10_000, pollMs = 20): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting until ${what}`);
    await sleep(pollMs);
  }
}
