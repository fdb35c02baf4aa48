// The resync's judgement: what the node ConfigMaps hold against what they should
// hold, as the key changes that make them equal. Pure.

/** A key to set (value) or remove (null), per the JSON merge patch convention. */
export type KeyChanges = Map<string, string | null>;

export interface NodeRepair {
  node: string;
  changes: KeyChanges;
  /** Keys of registered pods that were not there (a deleted ConfigMap counts all of them). */
  missing: number;
  /** Keys whose value differs from the pod's registration. */
  stale: number;
  /** Keys of pods that are gone, finished, unmarked or on another node. */
  stray: number;
}

/**
 * `actual`: node → the data of its ConfigMap (absent: no ConfigMap). `desired`: node →
 * pod UID → value. Nodes needing no change are left out.
 */
export function planRepairs(actual: ReadonlyMap<string, Readonly<Record<string, string>>>, desired: ReadonlyMap<string, ReadonlyMap<string, string>>): NodeRepair[] {
  const repairs: NodeRepair[] = [];
  for (const node of new Set([...actual.keys(), ...desired.keys()])) {
    const has = actual.get(node) ?? {};
    const wants = desired.get(node) ?? new Map<string, string>();
    const repair: NodeRepair = { node, changes: new Map(), missing: 0, stale: 0, stray: 0 };
    for (const [key, value] of wants) {
      if (!Object.hasOwn(has, key)) repair.missing++;
      else if (has[key] !== value) repair.stale++;
      else continue;
      repair.changes.set(key, value);
    }
    for (const key of Object.keys(has)) {
      if (wants.has(key)) continue;
      repair.stray++;
      repair.changes.set(key, null);
    }
    if (repair.changes.size > 0) repairs.push(repair);
  }
  return repairs;
}
