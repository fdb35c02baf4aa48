// Istio's comma-separated port and CIDR lists, read the way Istio reads them
// (strconv.ParseUint per port, netip.ParsePrefix per CIDR), with every bad token kept
// as a problem that names where it came from.

import { formatCidr } from "../registry/document.js";
import { parseCidr } from "../registry/ip.js";

/** Shown tokens are cut short: the reason lands in an annotation and a log line. */
function shown(token: string): string {
  return JSON.stringify(token.length > 64 ? `${token.slice(0, 64)}…` : token);
}

export class Problems {
  readonly list: string[] = [];
  add(source: string, token: string, why: string): void {
    this.list.push(`${source}: ${shown(token)} ${why}`);
  }
}

export function parsePort(token: string): number | undefined {
  if (!/^\d{1,5}$/.test(token)) return undefined;
  const n = Number(token);
  return n >= 1 && n <= 65535 ? n : undefined;
}

function parseCidrToken(token: string): string | undefined {
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
export function parseList<T>(source: string, value: string, kind: TokenKind<T>, wildcard: boolean, problems: Problems): T[] | "*" {
  const trimmed = value.trim();
  if (trimmed === "") return [];
  if (trimmed === "*" && wildcard) return "*";
  const out: T[] = [];
  for (const raw of trimmed.split(",")) {
    const token = raw.trim();
    const parsed = kind.parse(token);
    if (parsed !== undefined) {
      if (!out.includes(parsed)) out.push(parsed);
    } else if (token === "*") {
      problems.add(source, token, wildcard ? "must stand alone, not in a list" : "is not allowed here (only in includeOutboundIPRanges and includeInboundPorts)");
    } else {
      problems.add(source, token, token === "" ? "is an empty list element" : kind.what);
    }
  }
  return out;
}

export function sortedPorts(ports: Iterable<number>): number[] {
  return [...new Set(ports)].sort((a, b) => a - b);
}

