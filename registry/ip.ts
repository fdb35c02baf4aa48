// IP and CIDR parsing shared by the webhook (annotation validation) and the loader
// (map keys). Addresses come out canonical, with their bytes in network order.

import { isIPv4, isIPv6 } from "node:net";

export interface Ip {
  family: 4 | 6;
  /** Canonical text form: dotted quad, or RFC 5952 compressed IPv6. */
  address: string;
  /** 4 or 16 bytes, network order. */
  bytes: Uint8Array;
}

export interface Cidr extends Ip {
  prefix: number;
}

function v4Bytes(text: string): Uint8Array {
  return Uint8Array.from(text.split(".").map(Number));
}

function v6Bytes(text: string): Uint8Array {
  let s = text;
  // An embedded IPv4 tail (::ffff:1.2.3.4) becomes two hextets.
  const v4tail = /(\d+\.\d+\.\d+\.\d+)$/.exec(s);
  if (v4tail?.[1]) {
    const b = v4Bytes(v4tail[1]);
    s = s.slice(0, -v4tail[1].length) + `${((b[0]! << 8) | b[1]!).toString(16)}:${((b[2]! << 8) | b[3]!).toString(16)}`;
  }
  const [head, tail] = s.includes("::") ? s.split("::") : [s, undefined];
  const h = head ? head.split(":") : [];
  const t = tail === undefined ? [] : tail ? tail.split(":") : [];
  const groups = tail === undefined ? h : [...h, ...Array<string>(8 - h.length - t.length).fill("0"), ...t];
  const out = new Uint8Array(16);
  groups.forEach((g, i) => {
    const n = parseInt(g, 16);
    out[i * 2] = n >> 8;
    out[i * 2 + 1] = n & 0xff;
  });
  return out;
}

export function formatIp(bytes: Uint8Array): string {
  if (bytes.length === 4) return Array.from(bytes).join(".");
  const groups: number[] = [];
  for (let i = 0; i < 16; i += 2) groups.push((bytes[i]! << 8) | bytes[i + 1]!);
  // RFC 5952: compress the longest run (≥ 2) of zero groups, the first one on ties.
  let best = -1, bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) { i++; continue; }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) { best = i; bestLen = j - i; }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (best < 0) return hex.join(":");
  return `${hex.slice(0, best).join(":")}::${hex.slice(best + bestLen).join(":")}`;
}

export function parseIp(text: string): Ip {
  const s = text.trim();
  if (isIPv4(s)) {
    const bytes = v4Bytes(s);
    return { family: 4, address: formatIp(bytes), bytes };
  }
  if (isIPv6(s) && !s.includes("%")) {
    const bytes = v6Bytes(s);
    return { family: 6, address: formatIp(bytes), bytes };
  }
  throw new Error(`"${text}" is not an IPv4 or IPv6 address`);
}

/** Parses "addr/prefix" (or a bare address, as a host route). Host bits are cleared. */
export function parseCidr(text: string): Cidr {
  const s = text.trim();
  const slash = s.indexOf("/");
  const ip = parseIp(slash < 0 ? s : s.slice(0, slash));
  const max = ip.family === 4 ? 32 : 128;
  const prefixText = slash < 0 ? String(max) : s.slice(slash + 1);
  if (!/^\d{1,3}$/.test(prefixText) || Number(prefixText) > max) {
    throw new Error(`"${text}" has an invalid prefix length (0-${max})`);
  }
  const prefix = Number(prefixText);
  const bytes = ip.bytes.slice();
  for (let bit = prefix; bit < max; bit++) bytes[bit >> 3]! &= ~(0x80 >> (bit & 7));
  return { family: ip.family, address: formatIp(bytes), bytes, prefix };
}

export function isLoopback(ip: Ip): boolean {
  return ip.family === 4 ? ip.bytes[0] === 127 : ip.bytes.every((b, i) => b === (i === 15 ? 1 : 0));
}
