// A C struct described once in TypeScript: offsets follow C's alignment rules, and
// the same description encodes, decodes and is checked against the BTF the
// compiler wrote for bpf/maps.h (see checkAgainstBtf).

import { endianness } from "node:os";
import type { BtfMember } from "../libbpf.js";

const LE = endianness() === "LE";

interface Field<V> {
  size: number;
  align: number;
  read(buf: Buffer, off: number): V;
  write(buf: Buffer, off: number, v: V): void;
}

export const u8: Field<number> = {
  size: 1, align: 1,
  read: (b, o) => b.readUInt8(o),
  write: (b, o, v) => void b.writeUInt8(v, o),
};
export const u16: Field<number> = {
  size: 2, align: 2,
  read: (b, o) => (LE ? b.readUInt16LE(o) : b.readUInt16BE(o)),
  write: (b, o, v) => void (LE ? b.writeUInt16LE(v, o) : b.writeUInt16BE(v, o)),
};
export const u32: Field<number> = {
  size: 4, align: 4,
  read: (b, o) => (LE ? b.readUInt32LE(o) : b.readUInt32BE(o)),
  write: (b, o, v) => void (LE ? b.writeUInt32LE(v, o) : b.writeUInt32BE(v, o)),
};
export const u64: Field<bigint> = {
  size: 8, align: 8,
  read: (b, o) => (LE ? b.readBigUInt64LE(o) : b.readBigUInt64BE(o)),
  write: (b, o, v) => void (LE ? b.writeBigUInt64LE(v, o) : b.writeBigUInt64BE(v, o)),
};

/** Bytes copied as they are, e.g. a __u32[4] address in network order. */
export function bytes(size: number, align: number): Field<Uint8Array> {
  return {
    size, align,
    read: (b, o) => Uint8Array.from(b.subarray(o, o + size)),
    write: (b, o, v) => {
      if (v.length > size) throw new RangeError(`${v.length} bytes do not fit a ${size}-byte field`);
      b.set(v, o);
    },
  };
}

export function array<V>(of: Field<V>, length: number): Field<V[]> {
  return {
    size: of.size * length, align: of.align,
    read: (b, o) => Array.from({ length }, (_, i) => of.read(b, o + i * of.size)),
    write: (b, o, v) => {
      if (v.length > length) throw new RangeError(`${v.length} elements do not fit an array of ${length}`);
      v.forEach((x, i) => of.write(b, o + i * of.size, x));
    },
  };
}

type Fields = Record<string, Field<any>>;
export type ValueOf<F extends Fields> = { [K in keyof F]: F[K] extends Field<infer V> ? V : never };

export interface Codec<T> {
  /** The struct's name in bpf/maps.h. */
  readonly cName: string;
  readonly size: number;
  readonly layout: ReadonlyArray<{ name: string; offset: number; size: number }>;
  /** Missing fields (padding, unused slots) are written as zeros. */
  encode(value: Partial<T>): Buffer;
  decode(buf: Buffer): T;
}

export function struct<F extends Fields>(cName: string, fields: F): Codec<ValueOf<F>> {
  let offset = 0, maxAlign = 1;
  const placed = Object.entries(fields).map(([name, f]) => {
    offset = Math.ceil(offset / f.align) * f.align;
    const at = { name, offset, field: f };
    offset += f.size;
    maxAlign = Math.max(maxAlign, f.align);
    return at;
  });
  const size = Math.ceil(offset / maxAlign) * maxAlign;
  return {
    cName,
    size,
    layout: placed.map(({ name, offset, field }) => ({ name, offset, size: field.size })),
    encode(value) {
      const buf = Buffer.alloc(size);
      for (const { name, offset, field } of placed) {
        const v = value[name as keyof F];
        if (v !== undefined) field.write(buf, offset, v);
      }
      return buf;
    },
    decode(buf) {
      if (buf.length < size) throw new RangeError(`${cName}: ${buf.length} bytes, expected ${size}`);
      const out = {} as ValueOf<F>;
      for (const { name, offset, field } of placed) out[name as keyof F] = field.read(buf, offset);
      return out;
    },
  };
}

/** Scalar map keys/values (e.g. __u64) described the same way, for the same check. */
export function scalar<V>(cName: string, field: Field<V>): Codec<V> {
  return {
    cName,
    size: field.size,
    layout: [],
    encode(value) {
      const buf = Buffer.alloc(field.size);
      field.write(buf, 0, value as V);
      return buf;
    },
    decode: (buf) => field.read(buf, 0),
  };
}

/** Differences between a codec and the compiler's layout of the same struct; empty when they agree. */
export function layoutDifferences(codec: Codec<unknown>, btf: { size: number; members: BtfMember[] } | null): string[] {
  if (!btf) return [`struct ${codec.cName} is not in the object's BTF`];
  const problems: string[] = [];
  if (btf.size !== codec.size) problems.push(`struct ${codec.cName}: BTF size ${btf.size}, codec size ${codec.size}`);
  const names = new Set([...btf.members.map((m) => m.name), ...codec.layout.map((m) => m.name)]);
  for (const name of names) {
    const a = btf.members.find((m) => m.name === name);
    const b = codec.layout.find((m) => m.name === name);
    if (!a) problems.push(`${codec.cName}.${name}: in the codec, not in bpf/maps.h`);
    else if (!b) problems.push(`${codec.cName}.${name}: in bpf/maps.h, not in the codec`);
    else if (a.offset !== b.offset || a.size !== b.size) {
      problems.push(`${codec.cName}.${name}: BTF offset ${a.offset} size ${a.size}, codec offset ${b.offset} size ${b.size}`);
    }
  }
  return problems;
}
