// Where meshlane keeps its pins on bpffs. The pins are what keeps programs
// attached and maps alive when no loader process runs (a crashed or upgraded
// loader changes nothing for traffic), so this layout is a contract between
// `attach`, `run`, `status` and `detach`.

import { join } from "node:path";
import type { MapName, ProgramName } from "./maps/codecs.js";

export const DEFAULT_BPFFS = "/sys/fs/bpf";
export const DEFAULT_PIN_DIR = join(DEFAULT_BPFFS, "meshlane");

export const mapsDir = (pinDir: string) => join(pinDir, "maps");
export const linksDir = (pinDir: string) => join(pinDir, "links");
export const mapPinPath = (pinDir: string, map: MapName) => join(mapsDir(pinDir), map);
export const linkPinPath = (pinDir: string, prog: ProgramName) => join(linksDir(pinDir), prog);
