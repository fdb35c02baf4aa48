// Standalone mode's registry: a JSON file holding the same key → document map
// as a node's registry objects. Watched through its directory, so editors and
// `mv new old` (which replace the inode) are seen as well as in-place writes. A
// change names no keys (the agent compares the documents) and read() always answers
// with the whole file.

import { readFileSync, watch, type FSWatcher } from "node:fs";
import { basename, dirname } from "node:path";
import type { RegistrySource } from "./agent.js";

export function readRegistryFile(path: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (e) {
    throw new Error(`cannot read registry file ${path}: ${(e as Error).message}`);
  }
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (e) {
    throw new Error(`registry file ${path} is not JSON: ${(e as Error).message}`);
  }
  if (typeof doc !== "object" || doc === null || Array.isArray(doc)) {
    throw new Error(`registry file ${path} must hold a JSON object of pod UID → registration`);
  }
  return doc as Record<string, unknown>;
}

export function fileRegistrySource(path: string): RegistrySource {
  let watcher: FSWatcher | undefined;
  return {
    describe: () => `file ${path}`,
    read: () => readRegistryFile(path),
    start(onChange) {
      watcher = watch(dirname(path), (_event, name) => {
        if (name === null || name === basename(path)) onChange();
      });
    },
    stop() {
      watcher?.close();
    },
  };
}
