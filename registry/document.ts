// The registry contract (design.md): what the webhook computes for a pod and what
// the loader turns into BPF map entries. One definition, one validator, used by
// both sides so a document one side writes is always one the other side accepts.

import { ISTIO_CONTROL_PORTS, ISTIO_LISTENERS, ISTIO_PROXY } from "../mesh/istio/names.js";
import { parseCidr, parseIp, type Cidr } from "./ip.js";

export const REGISTRATION_VERSION = 2;


/**
 * What sk_msg may redirect into (the app-safety rule, design.md "Only into a reader we know"):
 * - proxy: only into the proxy's own sockets; bytes towards application sockets take the TCP stack
 * - all:   into application sockets too (the app must read with recv or read calls only, never splice)
 * - none:  connect-time steering only; nothing of the pod enters the sockhash
 */
export const REDIRECT_MODES = ["proxy", "all", "none"] as const;
export type RedirectMode = (typeof REDIRECT_MODES)[number];
export const DEFAULT_REDIRECT_MODE: RedirectMode = "proxy";

/** "*" means every port / every address, as in Istio's annotations. */
export type PortList = "*" | number[];
export type CidrList = "*" | string[];

/** Effective interception settings of one pod: the `meshlane.io/interception` annotation. */
export interface Interception {
  mode: "REDIRECT";
  proxyUid: number;
  proxyGid: number;
  outboundPort: number;
  inboundPort: number;
  includeOutboundIPRanges: CidrList;
  excludeOutboundIPRanges: string[];
  includeOutboundPorts: number[];
  excludeOutboundPorts: number[];
  includeInboundPorts: PortList;
  excludeInboundPorts: number[];
  /** The proxy's own ports (admin, health, metrics): never steered, in either direction. */
  controlPorts: number[];
  redirect: RedirectMode;
}

/** One data key of ConfigMap meshlane-node-<node> (key = pod UID), or of the standalone file. */
export interface Registration {
  version: typeof REGISTRATION_VERSION;
  namespace: string;
  name: string;
  uid: string;
  ips: string[];
  interception: Interception;
}

/** The settings of a pod injected with Istio's defaults (mesh/istio/names.ts). */
export function defaultInterception(): Interception {
  return {
    mode: "REDIRECT",
    proxyUid: ISTIO_PROXY.uid,
    proxyGid: ISTIO_PROXY.gid,
    outboundPort: ISTIO_LISTENERS.outbound,
    inboundPort: ISTIO_LISTENERS.inbound,
    includeOutboundIPRanges: "*",
    excludeOutboundIPRanges: [],
    includeOutboundPorts: [],
    excludeOutboundPorts: [],
    includeInboundPorts: "*",
    excludeInboundPorts: [],
    controlPorts: [...ISTIO_CONTROL_PORTS],
    redirect: DEFAULT_REDIRECT_MODE,
  };
}

export class RegistrationError extends Error {
  constructor(where: string, problem: string) {
    super(`${where}: ${problem}`);
    this.name = "RegistrationError";
  }
}

type Json = unknown;

export function isRecord(v: Json): v is Record<string, Json> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function port(v: Json, where: string): number {
  if (typeof v !== "number" || !Number.isInteger(v) || v < 1 || v > 65535) {
    throw new RegistrationError(where, `port ${JSON.stringify(v)} is not an integer in 1-65535`);
  }
  return v;
}

function id(v: Json, where: string): number {
  if (typeof v !== "number" || !Number.isInteger(v) || v < 0 || v > 0xffffffff) {
    throw new RegistrationError(where, `${JSON.stringify(v)} is not a uid/gid`);
  }
  return v;
}

function ports(v: Json, where: string): number[] {
  if (!Array.isArray(v)) throw new RegistrationError(where, "expected an array of ports");
  return v.map((p, i) => port(p, `${where}[${i}]`));
}

function portList(v: Json, where: string): PortList {
  return v === "*" ? "*" : ports(v, where);
}

function cidrs(v: Json, where: string): string[] {
  if (!Array.isArray(v)) throw new RegistrationError(where, "expected an array of CIDRs");
  return v.map((c, i) => {
    if (typeof c !== "string") throw new RegistrationError(`${where}[${i}]`, "CIDR must be a string");
    try {
      return formatCidr(parseCidr(c));
    } catch (e) {
      throw new RegistrationError(`${where}[${i}]`, (e as Error).message);
    }
  });
}

function cidrList(v: Json, where: string): CidrList {
  return v === "*" ? "*" : cidrs(v, where);
}

function redirectMode(v: Json, where: string): RedirectMode {
  if (typeof v !== "string" || !(REDIRECT_MODES as readonly string[]).includes(v)) {
    throw new RegistrationError(where, `redirect mode ${JSON.stringify(v)} is not one of ${REDIRECT_MODES.join(", ")}`);
  }
  return v as RedirectMode;
}

function text(v: Json, where: string): string {
  if (typeof v !== "string" || v.length === 0) throw new RegistrationError(where, "expected a non-empty string");
  return v;
}

export function formatCidr(c: Cidr): string {
  return `${c.address}/${c.prefix}`;
}

export function validateInterception(v: Json, where = "interception"): Interception {
  if (!isRecord(v)) throw new RegistrationError(where, "expected an object");
  if (v.mode !== "REDIRECT") {
    throw new RegistrationError(`${where}.mode`, `only REDIRECT is supported, got ${JSON.stringify(v.mode)}`);
  }
  return {
    mode: "REDIRECT",
    proxyUid: id(v.proxyUid, `${where}.proxyUid`),
    proxyGid: id(v.proxyGid, `${where}.proxyGid`),
    outboundPort: port(v.outboundPort, `${where}.outboundPort`),
    inboundPort: port(v.inboundPort, `${where}.inboundPort`),
    includeOutboundIPRanges: cidrList(v.includeOutboundIPRanges, `${where}.includeOutboundIPRanges`),
    excludeOutboundIPRanges: cidrs(v.excludeOutboundIPRanges, `${where}.excludeOutboundIPRanges`),
    includeOutboundPorts: ports(v.includeOutboundPorts, `${where}.includeOutboundPorts`),
    excludeOutboundPorts: ports(v.excludeOutboundPorts, `${where}.excludeOutboundPorts`),
    includeInboundPorts: portList(v.includeInboundPorts, `${where}.includeInboundPorts`),
    excludeInboundPorts: ports(v.excludeInboundPorts, `${where}.excludeInboundPorts`),
    controlPorts: ports(v.controlPorts, `${where}.controlPorts`),
    redirect: redirectMode(v.redirect, `${where}.redirect`),
  };
}

/** Validates one registry value. `key` is the data key it was stored under (the pod UID). */
export function validateRegistration(v: Json, key: string): Registration {
  const where = `registration ${key}`;
  if (!isRecord(v)) throw new RegistrationError(where, "expected a JSON object");
  if (v.version !== REGISTRATION_VERSION) {
    throw new RegistrationError(`${where}.version`, `unsupported version ${JSON.stringify(v.version)} (this build reads ${REGISTRATION_VERSION})`);
  }
  const uid = text(v.uid, `${where}.uid`);
  if (uid !== key) throw new RegistrationError(`${where}.uid`, `uid ${uid} does not match its key`);
  if (!Array.isArray(v.ips) || v.ips.length === 0) throw new RegistrationError(`${where}.ips`, "expected at least one pod IP");
  const ips = v.ips.map((ip, i) => {
    if (typeof ip !== "string") throw new RegistrationError(`${where}.ips[${i}]`, "IP must be a string");
    try {
      return parseIp(ip).address;
    } catch (e) {
      throw new RegistrationError(`${where}.ips[${i}]`, (e as Error).message);
    }
  });
  return {
    version: REGISTRATION_VERSION,
    namespace: text(v.namespace, `${where}.namespace`),
    name: text(v.name, `${where}.name`),
    uid,
    ips,
    interception: validateInterception(v.interception, `${where}.interception`),
  };
}
