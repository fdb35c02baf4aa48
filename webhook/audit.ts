// The audit log: one JSON line per review. It records who asked about what and what
// was decided, on what evidence. It never holds the pod spec or env values: the pod is
// named, and evidence is reduced to enumerated facts.

import { createHash } from "node:crypto";
import pino, { type DestinationStream, type Logger } from "pino";
import type { Outcome } from "./decision.js";
import type { AdmissionRequest } from "./review.js";

export type AuditDestination = "stdout" | { file: string } | DestinationStream;

export function createAuditLog(destination: AuditDestination): Logger {
  // Synchronous writes: a line is on disk before the review is answered, and none is
  // lost when the process exits. (A stream is checked first: SonicBoom has a `file` too.)
  const stream =
    destination === "stdout"
      ? pino.destination({ dest: 1, sync: true })
      : "write" in destination
        ? destination
        : pino.destination({ dest: destination.file, mkdir: true, sync: true });
  return pino({ base: undefined, timestamp: pino.stdTimeFunctions.isoTime, messageKey: "msg" }, stream);
}

export interface PatchDigest {
  bytes: number;
  sha256: string | undefined;
}

export function digestPatch(patchJson: string | undefined): PatchDigest {
  if (patchJson === undefined) return { bytes: 0, sha256: undefined };
  return { bytes: Buffer.byteLength(patchJson), sha256: createHash("sha256").update(patchJson).digest("hex") };
}

export function auditReview(log: Logger, request: AdmissionRequest, outcome: Outcome, patch: PatchDigest, latencyMs: number): void {
  const kind = request.kind;
  log.info(
    {
      uid: request.uid,
      operation: request.operation,
      kind: kind ? `${kind.group ? `${kind.group}/` : ""}${kind.version}/${kind.kind}` : undefined,
      namespace: request.namespace,
      name: request.name,
      generateName: request.name ? undefined : request.generateName,
      user: request.user,
      dryRun: request.dryRun,
      decision: outcome.decision,
      reason: outcome.reason,
      detail: outcome.detail,
      evidence: outcome.evidence,
      patchBytes: patch.bytes,
      patchSha256: patch.sha256,
      latencyMs: Math.round(latencyMs * 1000) / 1000,
    },
    "admission review",
  );
}

/** Requests refused before a decision (bad body, wrong type, no uid) are audited too. */
export function auditRefusal(log: Logger, status: number, problem: string, message: string, latencyMs: number): void {
  log.warn({ decision: "refused", status, problem, detail: message, latencyMs: Math.round(latencyMs * 1000) / 1000 }, "admission request refused");
}
