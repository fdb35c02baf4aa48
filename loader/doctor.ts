// `meshlane-loader doctor`: checks, on this node, everything the data path needs,
// down to loading the real object and attaching each program to a scratch cgroup
// of its own (never to a cgroup it did not create). Each failed check says, in a
// sentence, what is missing.

import { accessSync, constants, existsSync, mkdirSync, rmdirSync } from "node:fs";
import { release } from "node:os";
import { join } from "node:path";
import { openDir, withFd } from "./attach.js";
import { findCgroup2Mount, findKubepods } from "./cgroup.js";
import * as bpf from "./libbpf.js";
import { PROGRAMS, PROGRAM_NAMES } from "./maps/codecs.js";
import { checkLayouts, defaultObjectPath, loadObject } from "./object.js";
import { fsTypeAt } from "./mounts.js";
import { DEFAULT_BPFFS } from "./pins.js";

export interface Check {
  name: string;
  ok: boolean;
  /** Informational checks never fail the doctor (e.g. no kubepods on a developer machine). */
  required: boolean;
  detail: string;
}

// The oldest kernel the data path is proven on (docs/kernels.md: Debian's 6.1 under
// qemu). 5.15 added bpf_get_netns_cookie to sockops and sk_msg, which the object needs;
// no Debian kernel between 5.10 and 6.1 exists to test it on.
const MIN_KERNEL: [number, number] = [6, 1];

// Numbers from linux/bpf.h (test/loader/maps-header.test.ts checks them against the installed header).
export const PROG_TYPES = { sock_ops: 13, sk_msg: 16, cgroup_sock_addr: 18, cgroup_sockopt: 25 } as const;
export const MAP_TYPES = { hash: 1, array: 2, percpu_array: 6, lru_hash: 9, lpm_trie: 11, sockhash: 18, sk_storage: 24 } as const;
export const HELPERS = {
  map_lookup_elem: 1,
  map_update_elem: 2,
  map_delete_elem: 3,
  get_current_uid_gid: 15,
  bind: 64,
  sock_hash_update: 70,
  msg_redirect_hash: 71,
  sk_storage_get: 107,
  get_netns_cookie: 122,
  get_current_ancestor_cgroup_id: 123,
} as const;

/** The helpers each program type uses in bpf/meshlane.bpf.c. */
const HELPERS_USED: Record<keyof typeof PROG_TYPES, (keyof typeof HELPERS)[]> = {
  cgroup_sock_addr: ["map_lookup_elem", "get_current_uid_gid", "get_current_ancestor_cgroup_id", "sk_storage_get", "bind"],
  sock_ops: ["map_lookup_elem", "map_update_elem", "map_delete_elem", "sock_hash_update", "sk_storage_get", "get_netns_cookie"],
  sk_msg: ["map_lookup_elem", "msg_redirect_hash", "sk_storage_get", "get_netns_cookie"],
  cgroup_sockopt: ["map_lookup_elem", "sk_storage_get", "get_current_ancestor_cgroup_id"],
};

function attempt(name: string, required: boolean, f: () => string): Check {
  try {
    return { name, ok: true, required, detail: f() };
  } catch (e) {
    return { name, ok: false, required, detail: (e as Error).message };
  }
}

export function runDoctor(objectPath?: string): Check[] {
  const checks: Check[] = [];
  const add = (c: Check) => (checks.push(c), c);

  add(attempt("kernel", true, () => {
    const [major = 0, minor = 0] = release().split(/[.-]/).map(Number);
    if (major < MIN_KERNEL[0] || (major === MIN_KERNEL[0] && minor < MIN_KERNEL[1])) {
      throw new Error(`kernel ${release()} is older than ${MIN_KERNEL.join(".")}, the oldest kernel meshlane is tested on (it needs at least netns cookies in sockops and sk_msg programs, from 5.15)`);
    }
    return release();
  }));
  add(attempt("root", true, () => {
    if (process.getuid?.() !== 0) throw new Error("not running as root: loading and attaching BPF programs needs root (CAP_BPF, CAP_NET_ADMIN, CAP_SYS_ADMIN)");
    return "uid 0";
  }));
  add(attempt("BTF", true, () => {
    accessSync("/sys/kernel/btf/vmlinux", constants.R_OK);
    return "/sys/kernel/btf/vmlinux";
  }));
  const cg2 = findCgroup2Mount();
  add({ name: "cgroup2", ok: cg2 !== null, required: true, detail: cg2 ? `mounted at ${cg2}` : "no cgroup2 filesystem is mounted: meshlane attaches to the cgroup v2 hierarchy" });
  const kubepods = cg2 ? findKubepods(cg2) : null;
  add({ name: "kubepods", ok: kubepods !== null, required: false, detail: kubepods ?? `no kubepods cgroup under ${cg2 ?? "cgroup2"}: not a Kubernetes node (attach needs --cgroup here)` });
  add(attempt("bpffs", true, () => {
    if (fsTypeAt(DEFAULT_BPFFS) === "bpf") return `mounted at ${DEFAULT_BPFFS}`;
    if (!existsSync(DEFAULT_BPFFS)) throw new Error(`${DEFAULT_BPFFS} does not exist, so bpffs cannot be mounted for the pins`);
    return `not mounted at ${DEFAULT_BPFFS} yet; attach mounts it`;
  }));
  const libbpf = add(attempt("libbpf", true, () => (bpf.possibleCpus(), "libbpf.so.1 loaded")));
  if (!libbpf.ok) return checks;

  for (const [type, id] of Object.entries(PROG_TYPES)) {
    add(attempt(`program type ${type}`, true, () => {
      if (!bpf.probeProgType(id)) throw new Error(`the kernel does not support BPF program type ${type}`);
      return "supported";
    }));
  }
  for (const [type, id] of Object.entries(MAP_TYPES)) {
    add(attempt(`map type ${type}`, true, () => {
      if (!bpf.probeMapType(id)) throw new Error(`the kernel does not support BPF map type ${type}`);
      return "supported";
    }));
  }
  for (const [type, helpers] of Object.entries(HELPERS_USED) as [keyof typeof PROG_TYPES, (keyof typeof HELPERS)[]][]) {
    add(attempt(`helpers for ${type}`, true, () => {
      const missing = helpers.filter((h) => !bpf.probeHelper(PROG_TYPES[type], HELPERS[h]));
      if (missing.length) throw new Error(`the kernel does not offer ${missing.map((h) => `bpf_${h}`).join(", ")} to ${type} programs`);
      return helpers.map((h) => `bpf_${h}`).join(", ");
    }));
  }

  const objectFound = add(attempt("BPF object", true, () => objectPath ?? defaultObjectPath()));
  if (!objectFound.ok) return checks;
  add(attempt("map layouts", true, () => {
    const obj = bpf.openObject(objectFound.detail);
    try {
      const problems = checkLayouts(obj);
      if (problems.length) throw new Error(`loader codecs and bpf/maps.h disagree: ${problems.join("; ")}`);
      return "loader codecs match the object's BTF";
    } finally {
      bpf.closeObject(obj);
    }
  }));
  if (!cg2 || process.getuid?.() !== 0) return checks;

  // The real thing: load (the verifier runs) and attach every program to a scratch cgroup, then undo it.
  let loaded: ReturnType<typeof loadObject> | null = null;
  add(attempt("verifier", true, () => {
    loaded = loadObject(null, objectFound.detail);
    return `${PROGRAM_NAMES.length} programs loaded`;
  }));
  if (loaded === null) return checks;
  const obj = loaded as ReturnType<typeof loadObject>;
  const scratch = join(cg2, `meshlane-doctor-${process.pid}`);
  try {
    const made = add(attempt("scratch cgroup", false, () => {
      mkdirSync(scratch);
      return `${scratch} (removed again)`;
    }));
    if (!made.ok) {
      // Inside the loader's pod the cgroup tree is mounted read-only: the attach checks
      // need a cgroup of our own, so they are skipped there rather than failed.
      made.detail = `cannot create a scratch cgroup (${made.detail}); attach checks skipped: run doctor on the node itself (kubectl debug node/...) to include them`;
      return checks;
    }
    withFd(openDir(scratch), (cgroupFd) => {
      for (const name of PROGRAM_NAMES) {
        const spec = PROGRAMS[name];
        add(attempt(`attach ${name}`, true, () => {
          const progFd = bpf.programFd(bpf.findProgram(obj.obj, name));
          if (spec.attach === "sockhash") {
            bpf.progAttach(progFd, obj.mapFds.mesh_socks, spec.attachType);
            bpf.progDetach(progFd, obj.mapFds.mesh_socks, spec.attachType);
            return "attaches to a sockhash";
          }
          bpf.destroyLink(bpf.attachCgroup(bpf.findProgram(obj.obj, name), cgroupFd));
          return "attaches to a cgroup through a bpf_link";
        }));
      }
    });
  } finally {
    obj.close();
    if (existsSync(scratch)) rmdirSync(scratch);
  }
  return checks;
}

export function formatChecks(checks: Check[]): string {
  const rows = checks.map((c) => `${(c.ok ? "ok" : c.required ? "FAIL" : "note").padEnd(5)} ${c.name.padEnd(30)} ${c.detail}`);
  const failed = checks.filter((c) => !c.ok && c.required);
  const verdict = failed.length
    ? `\nmeshlane cannot run on this node:\n${failed.map((c) => `- ${c.detail}`).join("\n")}`
    : "\nall checks passed: this node can run meshlane's data path";
  return [...rows, verdict].join("\n");
}
