// Reading /proc/self/mountinfo: which filesystem is mounted where.

import { readFileSync } from "node:fs";

export interface Mount {
  mountPoint: string;
  fsType: string;
  /** The directory of the filesystem shown at mountPoint ("/" unless a subtree is mounted). */
  root: string;
}

export function parseMountinfo(text = readFileSync("/proc/self/mountinfo", "utf8")): Mount[] {
  const mounts: Mount[] = [];
  for (const line of text.split("\n")) {
    // "<id> <parent> <maj:min> <root> <mount point> <options> [optional...] - <fs type> <source> <super options>"
    const [left, right] = line.split(" - ");
    const fields = left?.split(" ") ?? [];
    const [root, mountPoint] = [fields[3], fields[4]];
    const fsType = right?.split(" ")[0];
    if (root && mountPoint && fsType) mounts.push({ mountPoint, fsType, root });
  }
  return mounts;
}

/** The filesystem visible at a mount point: the last one mounted there wins, as it covers the others. */
export function fsTypeAt(mountPoint: string, mounts = parseMountinfo()): string | null {
  return mounts.filter((m) => m.mountPoint === mountPoint).pop()?.fsType ?? null;
}
