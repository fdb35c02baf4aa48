// What the API server answered a call: 200 when it succeeded, else the HTTP status of the
// refusal (-1 when the error carries none). Tests compare it with what RBAC or admission
// must decide.

import { apiStatusCode } from "../../registry/kube-errors.js";

export async function statusOf(call: Promise<unknown>): Promise<number> {
  try {
    await call;
    return 200;
  } catch (e) {
    return apiStatusCode(e) ?? -1;
  }
}
