// Pure: what the agent believes the pod maps hold, each entry filed under the
// cgroup (pod) it belongs to. A change of one pod is planned against this rather
// than against a walk of every map, so it costs that pod's entries, not the node's.
// It is built from a walk of the maps at each full resync (the maps stay the truth)
// and kept by the writes the agent makes in between.

import { emptyContents, POD_MAPS, type Contents, type PodMap } from "./plan.js";
import { ownerOf } from "./pod-steps.js";

type Keys = Record<PodMap, Set<string>>;
const noKeys = (): Keys => Object.fromEntries(POD_MAPS.map((m) => [m, new Set<string>()])) as Keys;
const owner = (map: PodMap, key: string, value: string) => ownerOf(map, Buffer.from(key, "hex"), Buffer.from(value, "hex"));

export class Shadow {
  private readonly contents: Contents = emptyContents();
  private readonly owned = new Map<bigint, Keys>();

  /** A shadow of maps that hold `contents` (hex key → hex value). */
  static of(contents: Contents): Shadow {
    const s = new Shadow();
    for (const map of POD_MAPS) for (const [k, v] of contents[map]) s.put(map, k, v);
    return s;
  }

  put(map: PodMap, key: string, value: string): void {
    const before = this.contents[map].get(key);
    if (before === value) return;
    if (before !== undefined) this.disown(map, key, before);
    this.contents[map].set(key, value);
    const id = owner(map, key, value);
    let keys = this.owned.get(id);
    if (!keys) this.owned.set(id, (keys = noKeys()));
    keys[map].add(key);
  }

  delete(map: PodMap, key: string): void {
    const before = this.contents[map].get(key);
    if (before === undefined) return;
    this.disown(map, key, before);
    this.contents[map].delete(key);
  }

  size(map: PodMap): number {
    return this.contents[map].size;
  }

  /**
   * Makes the shadow equal to what the maps were read to hold, and returns the cgroups
   * whose entries differed (written or deleted by someone else, or lost): their pods
   * are planned again.
   */
  align(actual: Contents): Set<bigint> {
    const differ = new Set<bigint>();
    for (const map of POD_MAPS) {
      const known = this.contents[map];
      const gone = [...known].filter(([k]) => !actual[map].has(k));
      for (const [k, v] of gone) {
        differ.add(owner(map, k, v));
        this.delete(map, k);
      }
      for (const [k, v] of actual[map]) {
        const before = known.get(k);
        if (before === v) continue;
        if (before !== undefined) differ.add(owner(map, k, before));
        differ.add(owner(map, k, v));
        this.put(map, k, v);
      }
    }
    return differ;
  }

  /** Everything, as hex key → hex value: what a full plan compares against. */
  all(): Contents {
    const copy = emptyContents();
    for (const map of POD_MAPS) for (const [k, v] of this.contents[map]) copy[map].set(k, v);
    return copy;
  }

  /**
   * The part of the maps a plan for some pods needs to see: every entry of their
   * cgroups (`owners`: what they hold, and what they may no longer need) and the
   * present value of each key they want (to tell a new key from an overwrite, and an
   * unchanged entry from one to write), whoever holds it.
   */
  view(owners: Iterable<bigint>, wanted: Contents): Contents {
    const out = emptyContents();
    for (const id of owners) {
      const keys = this.owned.get(id);
      if (keys) for (const map of POD_MAPS) for (const k of keys[map]) out[map].set(k, this.contents[map].get(k)!);
    }
    for (const map of POD_MAPS) {
      for (const k of wanted[map].keys()) {
        const v = this.contents[map].get(k);
        if (v !== undefined) out[map].set(k, v);
      }
    }
    return out;
  }

  private disown(map: PodMap, key: string, value: string): void {
    const id = owner(map, key, value);
    const keys = this.owned.get(id);
    if (!keys) return;
    keys[map].delete(key);
    if (POD_MAPS.every((m) => keys[m].size === 0)) this.owned.delete(id);
  }
}
