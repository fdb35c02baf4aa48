// Istio's comma-separated port and CIDR lists, read the way Istio reads them
// (strconv.ParseUint per port, netip.ParsePrefix per CIDR), with every bad token kept
// as a problem that names where it came from.
//
// Linear in the input: a pod's annotations reach 256 KiB, and the webhook answers
// nothing else while it reads them. Deduplication goes through a Set, ports are sorted
// through a bitmap; `Steps` counts the work (one step per token and per port sorted) so
// a test can hold it linear without a clock.

import { formatCidr } from "../../registry/document.js";
import { parseCidr } from "../../registry/ip.js";

/** Shown tokens are cut short: the reason lands in an annotation and a log line. */
function shown(token: string): string {
  return JSON.stringify(token.length > 64 ? `${token.slice(0, 64)}…` : token);
}

/** At most this many problems are kept: a 50,000-token list of garbage needs only the first few named. */
const MAX_PROBLEMS = 20;

export class Problems {
  readonly list: string[] = [];
  private dropped = 0;
  add(source: string, token: string, why: string): void {
    if (this.list.length < MAX_PROBLEMS) this.list.push(`${source}: ${shown(token)} ${why}`);
    else this.dropped += 1;
  }
  /** The kept problems, and how many more there were. */
  all(): string[] {
    return this.dropped === 0 ? this.list : [...this.list, `… and ${this.dropped} more`];
  }
}

/** Work done by the list readers: one step per token read and per port sorted. */
export class Steps {
  count = 0;
}

export function parsePort(token: string): number | undefined {
  if (!/^\d{1,5}$/.test(token)) return undefined;
  const n = Number(token);
  return n >= 1 && n <= 65535 ? n : undefined;
}

const V4_CIDR = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})\/(\d{1,2})$/;

/** The common case, an IPv4 CIDR, without the general parser's allocations: it is most of a 256 KiB list. */
function v4Cidr(m: RegExpExecArray): string | undefined {
  const prefix = Number(m[5]);
  let n = 0;
  for (let i = 1; i <= 4; i++) {
    const o = m[i]!;
    // netip.ParsePrefix rejects leading zeros ("010") and octets over 255.
    if ((o.length > 1 && o[0] === "0") || Number(o) > 255) return undefined;
    n = n * 256 + Number(o);
  }
  if (prefix > 32 || (m[5]!.length > 1 && m[5]![0] === "0")) return undefined;
  const masked = prefix === 0 ? 0 : (n - (n % 2 ** (32 - prefix)));
  return `${Math.floor(masked / 16777216)}.${Math.floor(masked / 65536) % 256}.${Math.floor(masked / 256) % 256}.${masked % 256}/${prefix}`;
}

function parseCidrToken(token: string): string | undefined {
  const v4 = V4_CIDR.exec(token);
  if (v4) return v4Cidr(v4);
  // Istio parses with netip.ParsePrefix, which wants an explicit prefix length.
  if (!token.includes("/")) return undefined;
  try {
    return formatCidr(parseCidr(token));
  } catch {
    return undefined;
  }
}

export interface TokenKind<T> {
  parse(token: string): T | undefined;
  what: string;
}
export const PORT: TokenKind<number> = { parse: parsePort, what: "is not a port in 1-65535" };
export const CIDR: TokenKind<string> = { parse: parseCidrToken, what: "is not an IPv4 or IPv6 CIDR (address/prefix)" };

/** Comma-separated list from `source` (an annotation or a flag), spaces around commas allowed; "*" only when `wildcard` and alone. */
export function parseList<T>(source: string, value: string, kind: TokenKind<T>, wildcard: boolean, problems: Problems, steps = new Steps()): T[] | "*" {
  const trimmed = value.trim();
  if (trimmed === "") return [];
  if (trimmed === "*" && wildcard) return "*";
  const out = new Set<T>();
  for (const raw of trimmed.split(",")) {
    steps.count += 1;
    const token = raw.trim();
    const parsed = kind.parse(token);
    if (parsed !== undefined) {
      out.add(parsed);
    } else if (token === "*") {
      problems.add(source, token, wildcard ? "must stand alone, not in a list" : "is not allowed here (only in the include lists)");
    } else {
      problems.add(source, token, token === "" ? "is an empty list element" : kind.what);
    }
  }
  return [...out];
}

/** Distinct ports in ascending order, by a bitmap over 1-65535: linear, where a comparison sort would not be. */
export function sortedPorts(ports: Iterable<number>, steps = new Steps()): number[] {
  const seen = new Uint8Array(65536);
  let min = 65536;
  let max = -1;
  for (const p of ports) {
    steps.count += 1;
    seen[p] = 1;
    if (p < min) min = p;
    if (p > max) max = p;
  }
  const out: number[] = [];
  for (let p = min; p <= max; p++) if (seen[p]) out.push(p);
  return out;
}
