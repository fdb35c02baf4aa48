// The istio-iptables command line of istio-init (or istio-validation): what iptables
// was actually told. The injector fills it from the pod's annotations *and* mesh-wide
// values (global.proxy.includeIPRanges, excludeInboundPorts, ...), which leave no
// annotation behind. When the two disagree, the annotations do not describe the
// capture, and the pod must not be accelerated from them.

import type { Interception } from "../registry/document.js";
import { ISTIO_ALWAYS_EXCLUDED_INBOUND, ISTIO_STATUS_PORT } from "./istio-names.js";
import { CIDR, parseList, PORT, Problems, sortedPorts, type TokenKind } from "./istio-lists.js";

type Field =
  | "outboundPort" | "inboundPort" | "proxyUid" | "proxyGid" | "mode"
  | "includeOutboundIPRanges" | "excludeOutboundIPRanges" | "includeOutboundPorts" | "excludeOutboundPorts"
  | "includeInboundPorts" | "excludeInboundPorts" | "excludeInterfaces" | "kubeVirtInterfaces";

/** Short and long spellings of the flags that shape capture (tools/istio-iptables). */
const FLAGS: Record<string, Field> = {
  "-p": "outboundPort", "--envoy-port": "outboundPort",
  "-z": "inboundPort", "--inbound-capture-port": "inboundPort",
  "-u": "proxyUid", "--proxy-uid": "proxyUid",
  "-g": "proxyGid", "--proxy-gid": "proxyGid",
  "-m": "mode", "--istio-inbound-interception-mode": "mode",
  "-i": "includeOutboundIPRanges", "--istio-service-cidr": "includeOutboundIPRanges",
  "-x": "excludeOutboundIPRanges", "--istio-service-exclude-cidr": "excludeOutboundIPRanges",
  "-q": "includeOutboundPorts", "--istio-outbound-ports": "includeOutboundPorts",
  "-o": "excludeOutboundPorts", "--istio-local-outbound-ports-exclude": "excludeOutboundPorts",
  "-b": "includeInboundPorts", "--istio-inbound-ports": "includeInboundPorts",
  "-d": "excludeInboundPorts", "--istio-local-exclude-ports": "excludeInboundPorts",
  "-c": "excludeInterfaces", "--exclude-interfaces": "excludeInterfaces",
  "-k": "kubeVirtInterfaces", "--kube-virt-interfaces": "kubeVirtInterfaces",
};

export interface IptablesFlag {
  flag: string;
  value: string;
}

/** Flags that shape capture, by field (the last one wins, as with Go's flag parsing); undefined without istio-iptables. */
export function readIptablesArgs(args: readonly string[]): Map<Field, IptablesFlag> | undefined {
  const start = args.indexOf("istio-iptables");
  if (start < 0) return undefined;
  const out = new Map<Field, IptablesFlag>();
  for (let i = start + 1; i < args.length; i++) {
    const arg = args[i]!;
    const eq = arg.indexOf("=");
    const flag = eq > 0 ? arg.slice(0, eq) : arg;
    const field = FLAGS[flag];
    if (!field) continue; // other flags (logging, --run-validation, ...) do not change what is captured
    const value = eq > 0 ? arg.slice(eq + 1) : args[++i];
    if (value !== undefined) out.set(field, { flag, value });
  }
  return out;
}

function listJson<T>(source: string, value: string, kind: TokenKind<T>, wildcard: boolean, problems: Problems, sort: boolean): string {
  const v = parseList(source, value, kind, wildcard, problems);
  if (v === "*") return '"*"';
  return JSON.stringify(sort ? [...v].sort() : v);
}

/** Each way in which the command line captures differently from `interception`; [] when they agree. */
export function disagreements(interception: Interception, flags: ReadonlyMap<Field, IptablesFlag>): string[] {
  const problems = new Problems();
  const out: string[] = [];
  const differ = (f: IptablesFlag, field: string, ours: unknown) =>
    out.push(`istio-init ${f.flag} ${JSON.stringify(f.value)} but the annotations give ${field} ${JSON.stringify(ours)}`);
  // Order-free comparison: both sides canonical, sorted.
  const sortedJson = (v: unknown) => (Array.isArray(v) ? JSON.stringify([...v].sort()) : JSON.stringify(v));
  const portSet = (ports: number[]) => JSON.stringify(sortedPorts(ports));

  for (const [field, f] of flags) {
    const source = `istio-init ${f.flag}`;
    switch (field) {
      case "outboundPort":
      case "inboundPort":
      case "proxyUid":
      case "proxyGid": {
        const n = /^\d+$/.test(f.value.trim()) ? Number(f.value.trim()) : undefined;
        if (n !== interception[field]) differ(f, field, interception[field]);
        break;
      }
      case "mode":
        if (f.value.trim() !== interception.mode) differ(f, field, interception.mode);
        break;
      case "includeOutboundIPRanges":
      case "excludeOutboundIPRanges":
        if (listJson(source, f.value, CIDR, field === "includeOutboundIPRanges", problems, true) !== sortedJson(interception[field])) {
          differ(f, field, interception[field]);
        }
        break;
      case "includeOutboundPorts":
      case "excludeOutboundPorts":
      case "includeInboundPorts": {
        const parsed = parseList(source, f.value, PORT, field === "includeInboundPorts", problems);
        const theirs = parsed === "*" ? '"*"' : portSet(parsed);
        const ours = interception[field] === "*" ? '"*"' : portSet(interception[field] as number[]);
        if (theirs !== ours) differ(f, field, interception[field]);
        break;
      }
      case "excludeInboundPorts": {
        // The annotations side always holds the proxy's own ports; so does Istio's -d, give or take 15020.
        const parsed = parseList(source, f.value, PORT, false, problems);
        const theirs = portSet([...(parsed === "*" ? [] : parsed), ...ISTIO_ALWAYS_EXCLUDED_INBOUND, ISTIO_STATUS_PORT]);
        if (theirs !== portSet(interception.excludeInboundPorts)) differ(f, field, interception.excludeInboundPorts);
        break;
      }
      case "excludeInterfaces":
      case "kubeVirtInterfaces":
        if (f.value.trim() !== "") out.push(`istio-init ${f.flag} ${JSON.stringify(f.value)}: interface-based capture is not modelled by meshlane`);
        break;
    }
  }
  return [...problems.list, ...out];
}
