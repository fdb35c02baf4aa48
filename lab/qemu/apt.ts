// Fetches a pinned Debian kernel package with apt into meshlane's cache (outside the
// checkout) and unpacks it there. apt runs with a sources list and state directories
// of our own, passed as options, so the machine's apt setup is never changed.

import { execFile } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { run } from "../topology/run.js";
import type { Kernel } from "./kernels.js";
import { meshlaneCache } from "../cache.js";
export { meshlaneCache } from "../cache.js";

const execFileP = promisify(execFile);


export interface UnpackedKernel {
  kernel: Kernel;
  /** The kernel's release string (uname -r in the guest). */
  release: string;
  vmlinuz: string;
  /** Directory holding <release>/ with the modules and a depmod'ed modules.dep. */
  modulesRoot: string;
}

const KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg";

function aptOptions(dir: string): string[] {
  const o = (k: string, v: string) => ["-o", `${k}=${v}`];
  return [
    ...o("Dir::Etc::SourceList", join(dir, "sources.list")),
    ...o("Dir::Etc::SourceParts", join(dir, "sources.list.d")),
    ...o("Dir::Etc::Preferences", join(dir, "preferences")),
    ...o("Dir::Etc::PreferencesParts", join(dir, "preferences.d")),
    ...o("Dir::State", join(dir, "state")),
    ...o("Dir::State::status", join(dir, "status")),
    ...o("Dir::Cache", join(dir, "cache")),
    // The checkout may sit in a mode-0700 home: apt's _apt sandbox user could not write there.
    ...o("APT::Sandbox::User", "root"),
    ...o("Debug::NoLocking", "1"),
  ];
}

function aptDir(kernel: Kernel): string {
  const dir = join(meshlaneCache(), "kernels", "apt", kernel.suite);
  for (const d of ["sources.list.d", "preferences.d", "state/lists/partial", "cache/archives/partial"]) mkdirSync(join(dir, d), { recursive: true });
  writeFileSync(join(dir, "sources.list"), `deb [signed-by=${KEYRING}] http://deb.debian.org/debian ${kernel.suite} main\n`);
  if (!existsSync(join(dir, "status"))) writeFileSync(join(dir, "status"), "");
  return dir;
}

/** Downloads and unpacks the kernel once; later calls return the unpacked tree. */
export async function fetchKernel(kernel: Kernel): Promise<UnpackedKernel> {
  const tree = join(meshlaneCache(), "kernels", `${kernel.package}_${kernel.version}`);
  if (!existsSync(join(tree, ".complete"))) {
    if (!existsSync(KEYRING)) throw new Error(`kernel ${kernel.id}: ${KEYRING} is missing (Debian package debian-archive-keyring)`);
    const dir = aptDir(kernel);
    const opts = aptOptions(dir);
    await run("apt-get", [...opts, "-qq", "update"]).catch((e) => {
      throw new Error(`kernel ${kernel.id}: apt-get update of ${kernel.suite} failed: ${(e as Error).message}`);
    });
    const debs = join(dir, "debs");
    mkdirSync(debs, { recursive: true });
    // apt-get download writes into its working directory.
    await execFileP("apt-get", [...opts, "-qq", "download", `${kernel.package}=${kernel.version}`], { cwd: debs }).catch((e) => {
      throw new Error(`kernel ${kernel.id}: cannot download ${kernel.package}=${kernel.version} from ${kernel.suite} (a pin the archive dropped? move it in lab/qemu/kernels.ts): ${(e as { stderr?: string }).stderr?.trim() || (e as Error).message}`);
    });
    const deb = readdirSync(debs).find((f) => f.startsWith(`${kernel.package}_`) && f.endsWith(".deb"));
    if (!deb) throw new Error(`kernel ${kernel.id}: apt-get download left no ${kernel.package} .deb in ${debs}`);
    const partial = `${tree}.partial`;
    rmSync(partial, { recursive: true, force: true });
    mkdirSync(partial, { recursive: true });
    await run("dpkg-deb", ["-x", join(debs, deb), partial]);
    const { release } = locate(partial, kernel);
    // The package leaves modules.dep to its postinst; make it here (the guest's modprobe needs it).
    await run("depmod", ["-b", modulesBase(partial), release]);
    rmSync(join(debs, deb));
    writeFileSync(join(partial, ".complete"), `${kernel.package}=${kernel.version}\n`);
    rmSync(tree, { recursive: true, force: true });
    renameSync(partial, tree);
  }
  const { release, modulesRoot } = locate(tree, kernel);
  return { kernel, release, vmlinuz: join(tree, "boot", `vmlinuz-${release}`), modulesRoot };
}

/** Older packages put modules under /lib, merged-/usr ones under /usr/lib. */
function modulesBase(tree: string): string {
  return existsSync(join(tree, "usr", "lib", "modules")) ? join(tree, "usr") : tree;
}

function locate(tree: string, kernel: Kernel): { release: string; modulesRoot: string } {
  const modulesRoot = join(modulesBase(tree), "lib", "modules");
  const releases = existsSync(modulesRoot) ? readdirSync(modulesRoot) : [];
  if (releases.length !== 1) throw new Error(`kernel ${kernel.id}: expected one release under ${modulesRoot}, found ${releases.join(", ") || "none"}`);
  return { release: releases[0]!, modulesRoot };
}
