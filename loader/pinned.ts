// Opens the maps that `attach` pinned, for the commands that work on a live
// data path without loading anything (`run`, `status`, `detach`).

import { closeSync } from "node:fs";
import * as bpf from "./libbpf.js";
import { MAP_NAMES, type MapName } from "./maps/codecs.js";
import { mapHandles, type MapHandles } from "./map-handle.js";
import { mapPinPath } from "./pins.js";

export class NotAttachedError extends Error {
  constructor(pinDir: string, missing: string[]) {
    super(`meshlane is not attached (no pinned ${missing.join(", ")} under ${pinDir}): run "meshlane-loader attach" first`);
    this.name = "NotAttachedError";
  }
}

export interface PinnedMaps {
  fds: Record<MapName, number>;
  maps: MapHandles;
  close(): void;
}

export function openPinnedMaps(pinDir: string): PinnedMaps {
  const fds = {} as Record<MapName, number>;
  const missing: string[] = [];
  for (const name of MAP_NAMES) {
    const fd = bpf.objGet(mapPinPath(pinDir, name));
    if (fd === null) missing.push(name);
    else fds[name] = fd;
  }
  const close = () => Object.values(fds).forEach((fd) => closeSync(fd));
  if (missing.length) {
    close();
    throw new NotAttachedError(pinDir, missing);
  }
  return { fds, maps: mapHandles(fds), close };
}
