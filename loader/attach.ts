// `attach` and `detach`: putting meshlane's programs on a cgroup and taking them
// off again without ever breaking a connection that is in flight.

import { execFileSync } from "node:child_process";
import { closeSync, constants, existsSync, mkdirSync, openSync, rmSync, rmdirSync } from "node:fs";
import { dirname } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import * as bpf from "./libbpf.js";
import { MAPS, MESH_CFG_DRAINING, PROGRAMS, PROGRAM_NAMES, type ProgramName } from "./maps/codecs.js";
import { MapHandle } from "./map-handle.js";
import { loadObject } from "./object.js";
import { linkPinPath, linksDir, mapPinPath, mapsDir } from "./pins.js";
import { cgroupId } from "./cgroup.js";
import { fsTypeAt, parseMountinfo } from "./mounts.js";
import { cgroupLevel, podLevels, type PodLevels } from "./pod-levels.js";

/** Mounts bpffs at `mountPoint` unless a bpf filesystem is what is visible there. */
export function ensureBpffs(mountPoint: string): void {
  if (fsTypeAt(mountPoint) === "bpf") return;
  mkdirSync(mountPoint, { recursive: true });
  try {
    execFileSync("mount", ["-t", "bpf", "bpf", mountPoint], { stdio: "pipe" });
  } catch (e) {
    throw new Error(`bpffs is not mounted at ${mountPoint} and mounting it failed: ${(e as Error).message}`);
  }
}

export function openDir(path: string): number {
  try {
    return openSync(path, constants.O_RDONLY | constants.O_DIRECTORY);
  } catch (e) {
    throw new Error(`cannot open cgroup ${path}: ${(e as Error).message}`);
  }
}

export function withFd<T>(fd: number, f: (fd: number) => T): T {
  try {
    return f(fd);
  } finally {
    closeSync(fd);
  }
}

/** What a pinned link of ours is attached to, or null if there is no such pin. */
export function pinnedLink(pinDir: string, prog: ProgramName): bpf.LinkInfo | null {
  const fd = bpf.objGet(linkPinPath(pinDir, prog));
  return fd === null ? null : withFd(fd, bpf.linkInfo);
}

/** Where pods' cgroups are for programs attached at `cgroup` (the kubepods cgroup). */
export function attachLevels(cgroup: string): PodLevels {
  const mount = parseMountinfo().find((m) => m.fsType === "cgroup2");
  return podLevels(mount ? cgroupLevel(mount, cgroup) : null);
}

export interface AttachOptions {
  cgroup: string;
  pinDir: string;
  objectPath?: string;
}

export interface AttachResult {
  cgroup: string;
  /** What happened to each program: newly attached, or its existing link now runs the new program. */
  programs: Record<ProgramName, "attached" | "replaced">;
}

/**
 * Loads the object (reusing pinned maps, so registrations and paired sockets
 * survive) and attaches every program. Running it again swaps the programs inside
 * meshlane's existing links instead of adding a second set; other tools'
 * programs on the cgroup are never touched.
 */
export function attach(opts: AttachOptions): AttachResult {
  ensureBpffs(dirname(opts.pinDir));
  const freshPinDir = !existsSync(opts.pinDir);
  mkdirSync(mapsDir(opts.pinDir), { recursive: true });
  mkdirSync(linksDir(opts.pinDir), { recursive: true });
  let targetId: bigint, sockhashExisted: boolean, loaded: ReturnType<typeof loadObject>;
  try {
    targetId = cgroupId(opts.cgroup);
    sockhashExisted = existsSync(mapPinPath(opts.pinDir, "mesh_socks"));
    loaded = loadObject(opts.pinDir, opts.objectPath);
  } catch (e) {
    // A kernel that rejects the object (or a wrong --cgroup) leaves the node as it was:
    // no pin directories made by this call. libbpf unpins what it pinned on a failed load.
    if (freshPinDir) rmSync(opts.pinDir, { recursive: true, force: true });
    throw e;
  }
  try {
    // Configuration first: the programs read it from their first run on, and a
    // re-attach clears a drain left by an interrupted detach.
    new MapHandle("mesh_config", loaded.mapFds.mesh_config).update(0, { flags: 0, ...attachLevels(opts.cgroup) });

    const programs = {} as AttachResult["programs"];
    withFd(openDir(opts.cgroup), (cgroupFd) => {
      for (const name of PROGRAM_NAMES) {
        const spec = PROGRAMS[name];
        const progFd = bpf.programFd(bpf.findProgram(loaded.obj, name));
        if (spec.attach === "sockhash") {
          // The sockhash holds its verdict program; attaching again replaces it in place.
          bpf.progAttach(progFd, loaded.mapFds.mesh_socks, spec.attachType);
          programs[name] = sockhashExisted ? "replaced" : "attached";
          continue;
        }
        const pin = linkPinPath(opts.pinDir, name);
        const linkFd = bpf.objGet(pin);
        if (linkFd !== null) {
          const sameCgroup = withFd(linkFd, (fd) => {
            if (bpf.linkInfo(fd).cgroupId === targetId) {
              bpf.linkUpdate(fd, progFd);
              return true;
            }
            bpf.linkDetach(fd); // attached to another cgroup before: move, never leave two copies
            return false;
          });
          if (sameCgroup) {
            programs[name] = "replaced";
            continue;
          }
          rmSync(pin);
        }
        const link = bpf.attachCgroup(bpf.findProgram(loaded.obj, name), cgroupFd);
        try {
          bpf.pinLink(link, pin);
        } finally {
          bpf.destroyLink(link);
        }
        programs[name] = "attached";
      }
    });
    return { cgroup: opts.cgroup, programs };
  } finally {
    loaded.close();
  }
}

export interface DetachOptions {
  pinDir: string;
  /** How long redirected bytes already queued at a receiver get to be read before the sockhash goes. */
  drainMs?: number;
}

export interface DetachResult {
  wasAttached: boolean;
  removed: string[];
}

/**
 * Takes meshlane off without losing a byte:
 *  1. sk_msg stops redirecting (drain flag): new bytes take the TCP stack, which a
 *     receiver reads only after what was already redirected to it;
 *  2. connect programs go, so no new connection is steered;
 *  3. after the drain period, getsockopt, the getpeername/getsockname views and
 *     sockops go (connections accepted meanwhile still get their original
 *     destination), then the maps, which releases every socket from the sockhash.
 */
export async function detach(opts: DetachOptions): Promise<DetachResult> {
  const removed: string[] = [];
  if (!existsSync(opts.pinDir)) return { wasAttached: false, removed };
  const configFd = bpf.objGet(mapPinPath(opts.pinDir, "mesh_config"));
  if (configFd !== null) {
    withFd(configFd, (fd) => {
      const config = new MapHandle("mesh_config", fd);
      const cur = config.lookup(0)!;
      config.update(0, { ...cur, flags: cur.flags | MESH_CFG_DRAINING });
    });
  }
  const unpin = (path: string) => {
    if (!existsSync(path)) return;
    rmSync(path);
    removed.push(path);
  };
  // Detach explicitly before unpinning: the kernel frees an unreferenced link from
  // a work queue, so without this the program would run on for a moment after
  // detach returned.
  const detachLinks = (progs: ProgramName[]) => {
    for (const p of progs) {
      const path = linkPinPath(opts.pinDir, p);
      const fd = bpf.objGet(path);
      if (fd !== null) withFd(fd, bpf.linkDetach);
      unpin(path);
    }
  };
  detachLinks(["mesh_connect4", "mesh_connect6"]);
  await sleep(opts.drainMs ?? 2000);
  detachLinks(["mesh_getsockopt", "mesh_getpeername4", "mesh_getpeername6", "mesh_getsockname4", "mesh_getsockname6", "mesh_sockops"]);
  for (const name of Object.keys(MAPS) as (keyof typeof MAPS)[]) unpin(mapPinPath(opts.pinDir, name));
  for (const dir of [linksDir(opts.pinDir), mapsDir(opts.pinDir), opts.pinDir]) {
    try {
      rmdirSync(dir);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "ENOENT") throw new Error(`cannot remove ${dir}: ${(e as Error).message}`);
    }
  }
  return { wasAttached: removed.length > 0, removed };
}
