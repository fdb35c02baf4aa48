// Turns a rejected client-node call into the Status the server sent, so tests can
// assert on code, reason and message exactly as a caller would branch on them.

import assert from "node:assert/strict";
import { ApiException } from "@kubernetes/client-node";
import type { Status } from "./apiserver/errors.js";

export async function rejectionStatus(call: Promise<unknown>): Promise<Status> {
  try {
    await call;
  } catch (err) {
    assert.ok(err instanceof ApiException, `expected an ApiException, got ${String(err)}`);
    const body = err.body as unknown;
    const status = (typeof body === "string" ? JSON.parse(body) : body) as Status;
    assert.equal(status.code, err.code, "the Status code matches the HTTP status");
    return status;
  }
  assert.fail("expected the call to be rejected");
}
