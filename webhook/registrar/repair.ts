// The resync's judgement: what the registry objects hold against what they should
// hold, as the changes that make them equal. Pure.

import type { StoredRegistration } from "../../registry/configmap.js";
import type { Registered } from "./desired.js";

/** One pod's registry object to write (document) or delete (null). */
export interface Change {
  node: string;
  document: string | null;
}
/** pod UID → change. */
export type Changes = Map<string, Change>;

export interface Repairs {
  changes: Changes;
  /** Registered pods that had no object (a deleted object counts, as does a new pod the events missed). */
  missing: number;
  /** Objects whose document or node differs from the pod's registration. */
  stale: number;
  /** Objects of pods that are gone, finished, unmarked or refused. */
  stray: number;
}

export function planRepairs(actual: Iterable<StoredRegistration>, desired: ReadonlyMap<string, Registered>): Repairs {
  const repairs: Repairs = { changes: new Map(), missing: 0, stale: 0, stray: 0 };
  const has = new Map<string, StoredRegistration>();
  for (const stored of actual) has.set(stored.uid, stored);
  for (const [uid, want] of desired) {
    const stored = has.get(uid);
    if (!stored) repairs.missing++;
    else if (stored.document !== want.document || stored.node !== want.node) repairs.stale++;
    else continue;
    repairs.changes.set(uid, { node: want.node, document: want.document });
  }
  for (const [uid, stored] of has) {
    if (desired.has(uid)) continue;
    repairs.stray++;
    repairs.changes.set(uid, { node: stored.node, document: null });
  }
  return repairs;
}
