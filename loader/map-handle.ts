// Typed handles on meshlane's maps, built from the one map table
// (loader/maps/codecs.ts): every lookup, walk and update in the loader goes through
// them, keys and values are encoded and decoded by the map's codecs, and a failure
// names the map and the key as well as the call and the errno.

import * as bpf from "./libbpf.js";
import { MAPS, type MapName } from "./maps/codecs.js";
import type { Codec } from "./maps/layout.js";

type CodecOf<C> = C extends Codec<infer T> ? T : never;
export type KeyOf<N extends MapName> = CodecOf<(typeof MAPS)[N]["key"]>;
export type ValueOf<N extends MapName> = CodecOf<(typeof MAPS)[N]["value"]>;

export class MapError extends Error {
  readonly errno: number;
  constructor(readonly map: MapName, readonly key: string, override readonly cause: bpf.BpfError) {
    super(`map ${map}, key ${key}: ${cause.message}`);
    this.name = "MapError";
    this.errno = cause.errno;
  }
}

/** A decoded key as text for messages: numbers as they are, byte fields in hex, padding left out. */
export function describeKey(value: unknown): string {
  if (typeof value === "bigint" || typeof value === "number") return String(value);
  if (value instanceof Uint8Array) return Buffer.from(value).toString("hex");
  if (typeof value === "object" && value !== null) {
    const fields = Object.entries(value).filter(([k]) => !/^pad\d*$/.test(k));
    return `{${fields.map(([k, v]) => `${k}: ${describeKey(v)}`).join(", ")}}`;
  }
  return String(value);
}

export class MapHandle<N extends MapName> {
  private info: bpf.MapInfo | undefined;

  constructor(readonly name: N, readonly fd: number) {}

  private get codecs(): { key: Codec<KeyOf<N>>; value: Codec<ValueOf<N>> } {
    return MAPS[this.name] as unknown as { key: Codec<KeyOf<N>>; value: Codec<ValueOf<N>> };
  }

  private guard<T>(key: Buffer, f: () => T): T {
    try {
      return f();
    } catch (e) {
      if (e instanceof bpf.BpfError) throw new MapError(this.name, describeKey(this.codecs.key.decode(key)), e);
      throw e;
    }
  }

  encodeKey(key: KeyOf<N>): Buffer {
    return this.codecs.key.encode(key as Partial<KeyOf<N>>);
  }

  lookup(key: KeyOf<N>): ValueOf<N> | null {
    const raw = this.lookupRaw(this.encodeKey(key));
    return raw && this.codecs.value.decode(raw);
  }

  /** One value per possible CPU, for per-CPU maps. */
  lookupPerCpu(key: KeyOf<N>): ValueOf<N>[] | null {
    const k = this.encodeKey(key);
    return this.guard(k, () => bpf.mapLookupPerCpu(this.fd, k, this.codecs.value.size))?.map((v) => this.codecs.value.decode(v)) ?? null;
  }

  update(key: KeyOf<N>, value: Partial<ValueOf<N>>): void {
    this.updateRaw(this.encodeKey(key), this.codecs.value.encode(value));
  }

  /** true if the key was there. */
  delete(key: KeyOf<N>): boolean {
    return this.deleteRaw(this.encodeKey(key));
  }

  /** Raw access for the reconcile, which compares encoded entries byte for byte. */
  lookupRaw(key: Buffer): Buffer | null {
    return this.guard(key, () => bpf.mapLookup(this.fd, key, this.codecs.value.size));
  }
  updateRaw(key: Buffer, value: Buffer): void {
    this.guard(key, () => bpf.mapUpdate(this.fd, key, value));
  }
  deleteRaw(key: Buffer): boolean {
    return this.guard(key, () => bpf.mapDelete(this.fd, key));
  }

  /** Every entry as encoded, skipping keys deleted while walking. */
  *rawEntries(): Generator<[Buffer, Buffer]> {
    for (const k of bpf.mapKeys(this.fd, this.codecs.key.size)) {
      const v = this.lookupRaw(k);
      if (v) yield [k, v];
    }
  }

  *entries(): Generator<[KeyOf<N>, ValueOf<N>]> {
    for (const [k, v] of this.rawEntries()) yield [this.codecs.key.decode(k), this.codecs.value.decode(v)];
  }

  *keys(): Generator<KeyOf<N>> {
    for (const k of bpf.mapKeys(this.fd, this.codecs.key.size)) yield this.codecs.key.decode(k);
  }

  count(): number {
    let n = 0;
    for (const _ of bpf.mapKeys(this.fd, this.codecs.key.size)) n++;
    return n;
  }

  /** max_entries as the kernel holds it (the object may have been built with other sizes than this loader's). */
  capacity(): number {
    this.info ??= bpf.mapInfo(this.fd);
    return this.info.maxEntries;
  }
}

export type MapHandles<M extends MapName = MapName> = { [N in M]: MapHandle<N> };

export function mapHandles<M extends MapName>(fds: Record<M, number>): MapHandles<M> {
  return Object.fromEntries(Object.entries(fds).map(([name, fd]) => [name, new MapHandle(name as M, fd as number)])) as MapHandles<M>;
}
