// Opening bpf/meshlane.bpf.o: finds the object, points every map at its pin so a
// second load reuses the live maps, checks the codecs against the object's BTF
// before anything reaches the kernel, and loads.

import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import * as bpf from "./libbpf.js";
import { layoutDifferences } from "./maps/layout.js";
import { MAPS, MAP_NAMES, type MapName } from "./maps/codecs.js";
import { mapPinPath } from "./pins.js";

/** bpf/meshlane.bpf.o next to the sources, from both `loader/` (tsx) and `dist/loader/` (built). */
export function defaultObjectPath(): string {
  const here = dirname(fileURLToPath(import.meta.url));
  for (const up of ["..", "../.."]) {
    const p = join(here, up, "bpf", "meshlane.bpf.o");
    if (existsSync(p)) return p;
  }
  throw new Error(`bpf/meshlane.bpf.o not found near ${here}: run "npm run build" first`);
}

export class LayoutMismatchError extends Error {
  constructor(readonly problems: string[]) {
    super(`the loader's map codecs do not match bpf/maps.h in the BPF object:\n  ${problems.join("\n  ")}`);
    this.name = "LayoutMismatchError";
  }
}

/** Every difference between loader/maps/codecs.ts and the object's BTF and map definitions. */
export function checkLayouts(obj: bpf.BpfObject): string[] {
  const btf = bpf.objectBtf(obj);
  const problems: string[] = [];
  const checkedStructs = new Set<string>();
  for (const name of MAP_NAMES) {
    const spec = MAPS[name];
    const sizes = bpf.mapSizes(bpf.findMap(obj, name));
    if (sizes.keySize !== spec.key.size) problems.push(`${name}: key size ${sizes.keySize} in the object, ${spec.key.size} in the codec`);
    if (sizes.valueSize !== spec.value.size) problems.push(`${name}: value size ${sizes.valueSize} in the object, ${spec.value.size} in the codec`);
    for (const codec of [spec.key, spec.value]) {
      if (codec.layout.length === 0 || checkedStructs.has(codec.cName)) continue;
      checkedStructs.add(codec.cName);
      problems.push(...layoutDifferences(codec, bpf.btfStruct(btf, codec.cName)));
    }
  }
  return problems;
}

export interface LoadedObject {
  obj: bpf.BpfObject;
  mapFds: Record<MapName, number>;
  close(): void;
}

/**
 * Opens, checks and loads the object with its maps pinned under pinDir (reusing
 * pinned maps), or with private maps when pinDir is null (doctor's trial load).
 */
export function loadObject(pinDir: string | null, objectPath = defaultObjectPath()): LoadedObject {
  const obj = bpf.openObject(objectPath);
  try {
    const problems = checkLayouts(obj);
    if (problems.length) throw new LayoutMismatchError(problems);
    if (pinDir !== null) for (const name of MAP_NAMES) bpf.setMapPinPath(bpf.findMap(obj, name), mapPinPath(pinDir, name));
    try {
      bpf.loadObject(obj);
    } catch (e) {
      throw new Error(
        `loading ${objectPath} failed: ${(e as Error).message}` +
          (pinDir === null ? "" : `. If pinned maps from an older meshlane are incompatible, run "meshlane-loader detach --pin-dir ${pinDir}" first`),
        { cause: e },
      );
    }
    const mapFds = Object.fromEntries(MAP_NAMES.map((n) => [n, bpf.mapFd(bpf.findMap(obj, n))])) as Record<MapName, number>;
    return { obj, mapFds, close: () => bpf.closeObject(obj) };
  } catch (e) {
    bpf.closeObject(obj);
    throw e;
  }
}
