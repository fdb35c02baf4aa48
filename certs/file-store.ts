// Certificates as files in one directory. Each file is replaced by rename, so a reader
// never sees half a PEM; keys are written 0600.

import { mkdir, readFile, rename, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { CertificateSet } from "./certificate-set.js";
import { CA_KEY_KEY, STORE_KEYS, TLS_KEY_KEY, setEntries, setFromEntries, type CertificateStore } from "./store.js";

const SECRET_FILES = new Set([CA_KEY_KEY, TLS_KEY_KEY]);

export class FileCertificateStore implements CertificateStore {
  constructor(private readonly dir: string) {}

  get where(): string {
    return `directory ${this.dir}`;
  }

  async load(): Promise<CertificateSet | undefined> {
    const files = new Map<string, string>();
    for (const name of STORE_KEYS) {
      try {
        files.set(name, await readFile(join(this.dir, name), "utf8"));
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== "ENOENT") throw new Error(`${this.where}: reading ${name}: ${(e as Error).message}`);
      }
    }
    return setFromEntries((k) => files.get(k));
  }

  async save(set: CertificateSet): Promise<void> {
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    for (const [name, pem] of Object.entries(setEntries(set))) {
      const path = join(this.dir, name);
      const tmp = `${path}.${process.pid}.tmp`;
      await writeFile(tmp, pem, { mode: SECRET_FILES.has(name) ? 0o600 : 0o644 });
      await rename(tmp, path);
    }
  }
}
