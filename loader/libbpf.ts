// The only module that talks to libbpf (libbpf.so.1, through koffi). Everything
// above it deals in file descriptors, Buffers and thrown BpfErrors that say which
// call failed on what, never in raw pointers or negative return codes.

import koffi from "koffi";
import { constants as osConstants } from "node:os";

const errnoNames = new Map<number, string>(Object.entries(osConstants.errno).map(([name, n]) => [n, name]));

export class BpfError extends Error {
  constructor(readonly op: string, readonly errno: number, detail = "") {
    super(`${op} failed: ${errnoNames.get(errno) ?? `errno ${errno}`}${detail ? ` (${detail})` : ""}`);
    this.name = "BpfError";
  }
}

let lib: koffi.IKoffiLib | undefined;
let api: ReturnType<typeof bind> | undefined;

function bind(l: koffi.IKoffiLib) {
  koffi.opaque("bpf_object");
  koffi.opaque("bpf_map");
  koffi.opaque("bpf_program");
  koffi.opaque("bpf_link");
  koffi.opaque("btf");
  return {
    open: l.func("bpf_object *bpf_object__open_file(const char *path, void *opts)"),
    load: l.func("int bpf_object__load(bpf_object *obj)"),
    close: l.func("void bpf_object__close(bpf_object *obj)"),
    findMap: l.func("bpf_map *bpf_object__find_map_by_name(bpf_object *obj, const char *name)"),
    setPinPath: l.func("int bpf_map__set_pin_path(bpf_map *map, const char *path)"),
    mapFd: l.func("int bpf_map__fd(bpf_map *map)"),
    mapKeySize: l.func("uint32_t bpf_map__key_size(bpf_map *map)"),
    mapValueSize: l.func("uint32_t bpf_map__value_size(bpf_map *map)"),
    mapMaxEntries: l.func("uint32_t bpf_map__max_entries(bpf_map *map)"),
    findProgram: l.func("bpf_program *bpf_object__find_program_by_name(bpf_object *obj, const char *name)"),
    programFd: l.func("int bpf_program__fd(bpf_program *prog)"),
    attachCgroup: l.func("bpf_link *bpf_program__attach_cgroup(bpf_program *prog, int cgroup_fd)"),
    linkPin: l.func("int bpf_link__pin(bpf_link *link, const char *path)"),
    linkDestroy: l.func("int bpf_link__destroy(bpf_link *link)"),
    linkUpdate: l.func("int bpf_link_update(int link_fd, int new_prog_fd, void *opts)"),
    objGet: l.func("int bpf_obj_get(const char *path)"),
    progAttach: l.func("int bpf_prog_attach(int prog_fd, int target_fd, int type, unsigned int flags)"),
    progDetach2: l.func("int bpf_prog_detach2(int prog_fd, int target_fd, int type)"),
    progQuery: l.func(
      "int bpf_prog_query(int target_fd, int type, uint32_t query_flags, _Out_ uint32_t *attach_flags, _Out_ uint32_t *prog_ids, _Inout_ uint32_t *prog_cnt)",
    ),
    progGetFdById: l.func("int bpf_prog_get_fd_by_id(uint32_t id)"),
    linkDetach: l.func("int bpf_link_detach(int link_fd)"),
    mapUpdate: l.func("int bpf_map_update_elem(int fd, const void *key, const void *value, uint64_t flags)"),
    mapLookup: l.func("int bpf_map_lookup_elem(int fd, const void *key, _Out_ void *value)"),
    mapDelete: l.func("int bpf_map_delete_elem(int fd, const void *key)"),
    mapNextKey: l.func("int bpf_map_get_next_key(int fd, const void *key, _Out_ void *next_key)"),
    objInfo: l.func("int bpf_obj_get_info_by_fd(int fd, _Inout_ void *info, _Inout_ uint32_t *info_len)"),
    numCpus: l.func("int libbpf_num_possible_cpus()"),
    objectBtf: l.func("btf *bpf_object__btf(bpf_object *obj)"),
    btfFindByNameKind: l.func("int32_t btf__find_by_name_kind(btf *btf, const char *name, uint32_t kind)"),
    btfTypeById: l.func("const void *btf__type_by_id(btf *btf, uint32_t id)"),
    btfNameByOffset: l.func("const char *btf__name_by_offset(btf *btf, uint32_t offset)"),
    btfResolveSize: l.func("int64_t btf__resolve_size(btf *btf, uint32_t id)"),
    probeProgType: l.func("int libbpf_probe_bpf_prog_type(int prog_type, void *opts)"),
    probeMapType: l.func("int libbpf_probe_bpf_map_type(int map_type, void *opts)"),
    probeHelper: l.func("int libbpf_probe_bpf_helper(int prog_type, int helper_id, void *opts)"),
  };
}

/** Loads libbpf on first use, so commands that do not need it (and tests of pure modules) never do. */
function libbpf(): NonNullable<typeof api> {
  if (!api) {
    try {
      lib = koffi.load("libbpf.so.1");
    } catch (e) {
      throw new Error(`cannot load libbpf.so.1 (install Debian's libbpf1): ${(e as Error).message}`);
    }
    api = bind(lib);
  }
  return api;
}

/** libbpf ≥ 1.0 returns -errno from int functions. */
function check(op: string, ret: number, detail = ""): number {
  if (ret < 0) throw new BpfError(op, -ret, detail);
  return ret;
}

/** libbpf ≥ 1.0 returns NULL and sets errno from pointer functions. */
function checkPtr<T>(op: string, ptr: T | null, detail = ""): T {
  if (ptr === null) throw new BpfError(op, koffi.errno(), detail);
  return ptr;
}

export type BpfObject = { readonly __brand: "bpf_object" };
export type BpfMap = { readonly __brand: "bpf_map" };
export type BpfProgram = { readonly __brand: "bpf_program" };
export type BpfLink = { readonly __brand: "bpf_link" };
export type Btf = { readonly __brand: "btf" };

export function openObject(path: string): BpfObject {
  return checkPtr("bpf_object__open_file", libbpf().open(path, null), path);
}
export function loadObject(obj: BpfObject): void {
  check("bpf_object__load", libbpf().load(obj), "the kernel log above says why");
}
export function closeObject(obj: BpfObject): void {
  libbpf().close(obj);
}
export function findMap(obj: BpfObject, name: string): BpfMap {
  return checkPtr("bpf_object__find_map_by_name", libbpf().findMap(obj, name), name);
}
export function setMapPinPath(map: BpfMap, path: string): void {
  check("bpf_map__set_pin_path", libbpf().setPinPath(map, path), path);
}
export function mapFd(map: BpfMap): number {
  return check("bpf_map__fd", libbpf().mapFd(map));
}
export function mapSizes(map: BpfMap): { keySize: number; valueSize: number; maxEntries: number } {
  const l = libbpf();
  return { keySize: l.mapKeySize(map), valueSize: l.mapValueSize(map), maxEntries: l.mapMaxEntries(map) };
}
export function findProgram(obj: BpfObject, name: string): BpfProgram {
  return checkPtr("bpf_object__find_program_by_name", libbpf().findProgram(obj, name), name);
}
export function programFd(prog: BpfProgram): number {
  return check("bpf_program__fd", libbpf().programFd(prog));
}
/** Attaches through a bpf_link. The link detaches when destroyed, unless it was pinned first. */
export function attachCgroup(prog: BpfProgram, cgroupFd: number): BpfLink {
  return checkPtr<BpfLink>("bpf_program__attach_cgroup", libbpf().attachCgroup(prog, cgroupFd));
}
export function pinLink(link: BpfLink, pinPath: string): void {
  check("bpf_link__pin", libbpf().linkPin(link, pinPath), pinPath);
}
/** Releases the process's handle; a pinned link stays attached through its pin. */
export function destroyLink(link: BpfLink): void {
  libbpf().linkDestroy(link);
}
export function linkUpdate(linkFd: number, progFd: number): void {
  check("bpf_link_update", libbpf().linkUpdate(linkFd, progFd, null));
}
/** Opens a pinned object; null if nothing is pinned there. */
export function objGet(path: string): number | null {
  const ret = libbpf().objGet(path);
  if (ret === -osConstants.errno.ENOENT) return null;
  return check("bpf_obj_get", ret, path);
}
export function progAttach(progFd: number, targetFd: number, type: number): void {
  check("bpf_prog_attach", libbpf().progAttach(progFd, targetFd, type, 0));
}
export function progDetach(progFd: number, targetFd: number, type: number): void {
  check("bpf_prog_detach2", libbpf().progDetach2(progFd, targetFd, type));
}
/** Ids of the programs attached to a cgroup (effective ones too when `effective`). */
export function progQuery(targetFd: number, type: number, effective = false): number[] {
  const ids = new Uint32Array(64);
  const cnt = [ids.length];
  check("bpf_prog_query", libbpf().progQuery(targetFd, type, effective ? 1 : 0, [0], ids, cnt));
  return Array.from(ids.subarray(0, cnt[0]));
}
/** Detaches a link's program now; the link object lives on (defunct) until its last reference goes. */
export function linkDetach(linkFd: number): void {
  check("bpf_link_detach", libbpf().linkDetach(linkFd));
}

const BPF_ANY = 0n;

export function mapUpdate(fd: number, key: Buffer, value: Buffer, flags = BPF_ANY): void {
  check("bpf_map_update_elem", libbpf().mapUpdate(fd, key, value, flags));
}
/** The value, or null when the key is absent. */
export function mapLookup(fd: number, key: Buffer, valueSize: number): Buffer | null {
  const value = Buffer.alloc(valueSize);
  const ret = libbpf().mapLookup(fd, key, value);
  if (ret === -osConstants.errno.ENOENT) return null;
  check("bpf_map_lookup_elem", ret);
  return value;
}
/** true if the key was there. */
export function mapDelete(fd: number, key: Buffer): boolean {
  const ret = libbpf().mapDelete(fd, key);
  if (ret === -osConstants.errno.ENOENT) return false;
  check("bpf_map_delete_elem", ret);
  return true;
}
export function* mapKeys(fd: number, keySize: number): Generator<Buffer> {
  let prev: Buffer | null = null;
  for (;;) {
    const next = Buffer.alloc(keySize);
    const ret = libbpf().mapNextKey(fd, prev, next);
    if (ret === -osConstants.errno.ENOENT) return;
    check("bpf_map_get_next_key", ret);
    yield next;
    prev = next;
  }
}
/** Per-CPU maps: one value per possible CPU, each padded to 8 bytes (the kernel's layout for user space). */
export function mapLookupPerCpu(fd: number, key: Buffer, valueSize: number): Buffer[] | null {
  const stride = Math.ceil(valueSize / 8) * 8;
  const all = mapLookup(fd, key, stride * possibleCpus());
  return all && Array.from({ length: all.length / stride }, (_, c) => all.subarray(c * stride, c * stride + valueSize));
}
function objInfo(fd: number, size: number): Buffer {
  const info = Buffer.alloc(size);
  check("bpf_obj_get_info_by_fd", libbpf().objInfo(fd, info, [size]));
  return info;
}
export interface MapInfo {
  type: number;
  id: number;
  keySize: number;
  valueSize: number;
  maxEntries: number;
}
/** struct bpf_map_info: type, id, key_size, value_size, max_entries, ... */
export function mapInfo(mapFd: number): MapInfo {
  const b = objInfo(mapFd, 80);
  return { type: b.readUInt32LE(0), id: b.readUInt32LE(4), keySize: b.readUInt32LE(8), valueSize: b.readUInt32LE(12), maxEntries: b.readUInt32LE(16) };
}
export interface LinkInfo {
  progId: number;
  cgroupId: bigint;
  attachType: number;
}
/** struct bpf_link_info of a cgroup link: type, id, prog_id, then (8-aligned) the union's cgroup member { cgroup_id, attach_type }. */
export function linkInfo(linkFd: number): LinkInfo {
  const b = objInfo(linkFd, 64);
  return { progId: b.readUInt32LE(8), cgroupId: b.readBigUInt64LE(16), attachType: b.readUInt32LE(24) };
}
let cpus: number | undefined;
export function possibleCpus(): number {
  return (cpus ??= check("libbpf_num_possible_cpus", libbpf().numCpus()));
}

/** Support probes for `doctor`: 1 supported, 0 not, negative errors thrown. */
export function probeProgType(progType: number): boolean {
  return check("libbpf_probe_bpf_prog_type", libbpf().probeProgType(progType, null)) === 1;
}
export function probeMapType(mapType: number): boolean {
  return check("libbpf_probe_bpf_map_type", libbpf().probeMapType(mapType, null)) === 1;
}
export function probeHelper(progType: number, helperId: number): boolean {
  return check("libbpf_probe_bpf_helper", libbpf().probeHelper(progType, helperId, null)) === 1;
}

// ---- BTF: just enough to read struct layouts back out of an object ----

export interface BtfMember {
  name: string;
  /** Byte offset in the struct. */
  offset: number;
  size: number;
}

const BTF_KIND_STRUCT = 4;

export function objectBtf(obj: BpfObject): Btf {
  return checkPtr("bpf_object__btf", libbpf().objectBtf(obj), "the object has no BTF");
}

/** Size and members of a struct as the compiler laid it out, or null if the BTF has no such struct. */
export function btfStruct(btf: Btf, name: string): { size: number; members: BtfMember[] } | null {
  const l = libbpf();
  const id = l.btfFindByNameKind(btf, name, BTF_KIND_STRUCT);
  if (id < 0) return null;
  const type = l.btfTypeById(btf, id);
  // struct btf_type { u32 name_off; u32 info; u32 size; } then vlen × struct btf_member { u32 name_off; u32 type; u32 offset; }
  const [, info, size] = koffi.decode(type, "uint32_t", 3) as number[];
  const vlen = info! & 0xffff;
  const raw = koffi.decode(type, 12, "uint32_t", vlen * 3) as number[];
  const members: BtfMember[] = [];
  for (let i = 0; i < vlen; i++) {
    const [nameOff, typeId, bitOffset] = raw.slice(i * 3, i * 3 + 3) as [number, number, number];
    members.push({
      name: l.btfNameByOffset(btf, nameOff) as string,
      offset: (bitOffset & 0xffffff) / 8,
      size: Number(l.btfResolveSize(btf, typeId)),
    });
  }
  return { size: size!, members };
}
