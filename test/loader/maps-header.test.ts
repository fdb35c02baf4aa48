// The loader's copies of C constants agree with their sources: bpf/maps.h for
// meshlane's own, the installed linux/bpf.h for the kernel's numbers.

import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import * as codecs from "../../loader/maps/codecs.js";
import { HELPERS, MAP_TYPES, PROG_TYPES } from "../../loader/doctor.js";

const mapsH = readFileSync(new URL("../../bpf/maps.h", import.meta.url), "utf8");
const bpfH = readFileSync("/usr/include/linux/bpf.h", "utf8");

function define(name: string): number {
  const m = new RegExp(`#define ${name}\\s+\\(?([^/\\n]+?)\\)?\\s*(?:/\\*.*)?$`, "m").exec(mapsH);
  assert.ok(m, `#define ${name} not in bpf/maps.h`);
  return Function(`return (${m[1]!.replace(/u\b/g, "")})`)() as number;
}

/** Enumerators of a C enum in declaration order, with explicit values where given. */
function enumValues(source: string, name: string): Map<string, number> {
  const body = new RegExp(`enum ${name} \\{([\\s\\S]*?)\\};`).exec(source);
  assert.ok(body, `enum ${name} not found`);
  const out = new Map<string, number>();
  let next = 0;
  for (const raw of body[1]!.replace(/\/\*[\s\S]*?\*\//g, "").split(",")) {
    const m = /^\s*([A-Z0-9_]+)\s*(?:=\s*(\d+))?\s*$/.exec(raw);
    if (!m) continue;
    const v = m[2] !== undefined ? Number(m[2]) : next;
    out.set(m[1]!, v);
    next = v + 1;
  }
  return out;
}

test("meshlane's constants match bpf/maps.h", () => {
  assert.equal(codecs.MESH_CFG_DRAINING, define("MESH_CFG_DRAINING"));
  assert.equal(codecs.POD_OUTBOUND_ALL_CIDRS, define("POD_OUTBOUND_ALL_CIDRS"));
  assert.equal(codecs.POD_INBOUND_ALL_PORTS, define("POD_INBOUND_ALL_PORTS"));
  assert.equal(codecs.CIDR_KEY_FIXED_BITS, define("CIDR_KEY_FIXED_BITS"));
  assert.deepEqual(Object.fromEntries(enumValues(mapsH, "port_list")), codecs.PortList);
  assert.deepEqual(Object.fromEntries(enumValues(mapsH, "cidr_list")), codecs.CidrList);
  assert.deepEqual(
    Object.fromEntries(enumValues(mapsH, "redirect_mode")),
    Object.fromEntries(Object.entries(codecs.RedirectMode).map(([mode, n]) => [`REDIRECT_${mode.toUpperCase()}`, n])),
  );
  const counters = enumValues(mapsH, "mesh_counter");
  assert.deepEqual([...counters.keys()].filter((k) => k !== "CNT_MAX"), [...codecs.COUNTERS]);
  codecs.COUNTERS.forEach((name, i) => assert.equal(counters.get(name), i, name));
});

test("every map of bpf/maps.h has a codec, and no codec lacks a map", () => {
  const declared = [...mapsH.matchAll(/\}\s*(\w+)\s+SEC\("\.maps"\)/g)].map((m) => m[1]);
  assert.deepEqual(declared.sort(), [...codecs.MAP_NAMES].sort());
});

test("kernel numbers match the installed linux/bpf.h", () => {
  const attach = enumValues(bpfH, "bpf_attach_type");
  const names: Record<string, string> = {
    mesh_connect4: "BPF_CGROUP_INET4_CONNECT",
    mesh_connect6: "BPF_CGROUP_INET6_CONNECT",
    mesh_getpeername4: "BPF_CGROUP_INET4_GETPEERNAME",
    mesh_getpeername6: "BPF_CGROUP_INET6_GETPEERNAME",
    mesh_getsockname4: "BPF_CGROUP_INET4_GETSOCKNAME",
    mesh_getsockname6: "BPF_CGROUP_INET6_GETSOCKNAME",
    mesh_sockops: "BPF_CGROUP_SOCK_OPS",
    mesh_getsockopt: "BPF_CGROUP_GETSOCKOPT",
    mesh_sk_msg: "BPF_SK_MSG_VERDICT",
  };
  for (const [prog, spec] of Object.entries(codecs.PROGRAMS)) assert.equal(spec.attachType, attach.get(names[prog]!), prog);
  const progTypes = enumValues(bpfH, "bpf_prog_type");
  for (const [name, n] of Object.entries(PROG_TYPES)) assert.equal(n, progTypes.get(`BPF_PROG_TYPE_${name.toUpperCase()}`), name);
  const mapTypes = enumValues(bpfH, "bpf_map_type");
  for (const [name, n] of Object.entries(MAP_TYPES)) assert.equal(n, mapTypes.get(`BPF_MAP_TYPE_${name.toUpperCase()}`), name);
  // Older headers list FN(name), newer ones FN(name, id, ...): the position is the id in both.
  const mapper = /#define _{2,3}BPF_FUNC_MAPPER\(FN[^)]*\)([\s\S]*?)\n\s*\n/.exec(bpfH);
  assert.ok(mapper, "helper list not found in linux/bpf.h");
  const helpers = [...mapper[1]!.matchAll(/FN\((\w+)[,)]/g)].map((m) => m[1]);
  for (const [name, id] of Object.entries(HELPERS)) assert.equal(helpers.indexOf(name), id, `bpf_${name}`);
});
