// Builds the guest's initramfs: busybox (Debian's busybox-static), lab/qemu/init.sh
// as /init, and the few modules the guest needs before it can mount the host's root
// (virtio PCI, 9p, overlay), uncompressed and listed in load order.

import { execFileSync } from "node:child_process";
import { copyFileSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import type { UnpackedKernel } from "./apt.js";

const INIT = join(dirname(fileURLToPath(import.meta.url)), "init.sh");
const BUSYBOX = "/bin/busybox";
/** What init.sh needs before the root is there; the rest comes from the kernel's tree on the host. */
export const EARLY_MODULES = ["virtio_pci", "9pnet_virtio", "9p", "overlay"];

/**
 * Load order for `wanted` from a modules.dep text: each module after everything it
 * depends on, each once. Built-in modules (absent from modules.dep) are skipped.
 * Returns paths relative to the release directory, as modules.dep names them.
 */
export function loadOrder(modulesDep: string, wanted: string[]): string[] {
  const deps = new Map<string, string[]>();
  const byName = new Map<string, string>();
  for (const line of modulesDep.split("\n")) {
    const i = line.indexOf(":");
    if (i < 0) continue;
    const path = line.slice(0, i);
    deps.set(path, line.slice(i + 1).trim().split(/\s+/).filter(Boolean));
    byName.set(moduleName(path), path);
  }
  const order: string[] = [];
  const visit = (path: string, chain: string[]) => {
    if (order.includes(path)) return;
    if (chain.includes(path)) throw new Error(`modules.dep has a cycle: ${[...chain, path].join(" -> ")}`);
    // modules.dep lists a module's dependencies so that the last one loads first.
    for (const d of [...(deps.get(path) ?? [])].reverse()) visit(d, [...chain, path]);
    order.push(path);
  };
  for (const name of wanted) {
    const path = byName.get(name.replace(/-/g, "_"));
    if (path) visit(path, []);
  }
  return order;
}

/** kernel/fs/9p/9p.ko.xz -> 9p; dashes and underscores are the same to the kernel. */
export function moduleName(path: string): string {
  return path.slice(path.lastIndexOf("/") + 1).replace(/\.ko(\.(xz|zst|gz))?$/, "").replace(/-/g, "_");
}

function decompressed(path: string): Buffer {
  if (path.endsWith(".xz")) return execFileSync("xz", ["-dc", path], { maxBuffer: 1 << 28 });
  if (path.endsWith(".zst")) return execFileSync("zstd", ["-dc", path], { maxBuffer: 1 << 28 });
  if (path.endsWith(".gz")) return execFileSync("gzip", ["-dc", path], { maxBuffer: 1 << 28 });
  return readFileSync(path);
}

/** Writes `<out>` (a newc cpio) for this kernel; `<out>.d` is its staging directory. */
export function buildInitramfs(k: UnpackedKernel, out: string): string {
  // The guest has no libc until the host's root is mounted: busybox must be static.
  const busybox = readFileSync(BUSYBOX);
  if (busybox.subarray(0, 4).toString("latin1") !== "\x7fELF" || busybox.includes("/lib64/ld-linux")) {
    throw new Error(`${BUSYBOX} is not a static executable: the guest's initramfs needs Debian's busybox-static`);
  }
  const stage = `${out}.d`;
  rmSync(stage, { recursive: true, force: true });
  for (const d of ["bin", "modules", "proc", "sys", "dev"]) mkdirSync(join(stage, d), { recursive: true });
  writeFileSync(join(stage, "bin", "busybox"), busybox);
  copyFileSync(INIT, join(stage, "init"));
  const releaseDir = join(k.modulesRoot, k.release);
  const order = loadOrder(readFileSync(join(releaseDir, "modules.dep"), "utf8"), EARLY_MODULES);
  const names = order.map((p) => `${moduleName(p)}.ko`);
  order.forEach((p, i) => writeFileSync(join(stage, "modules", names[i]!), decompressed(join(releaseDir, p))));
  writeFileSync(join(stage, "modules", "order"), names.join("\n") + "\n");
  writeFileSync(join(stage, "modules", "tree"), k.modulesRoot + "\n");
  execFileSync("chmod", ["-R", "u+rwX,go+rX", stage]);
  execFileSync("chmod", ["755", join(stage, "init"), join(stage, "bin", "busybox")]);
  const list = execFileSync("find", ["."], { cwd: stage });
  writeFileSync(out, execFileSync("cpio", ["-o", "-H", "newc", "--quiet"], { cwd: stage, input: list, maxBuffer: 1 << 28 }));
  rmSync(stage, { recursive: true, force: true });
  return out;
}
