// The registry document (docs/registry.md): what the registrar writes for a pod and
// what the loader turns into BPF map entries. One definition, one parser, one
// encoder, used by both sides, so a document one side writes is always one the other
// side reads the same way. registry/configmap.ts holds the object it travels in.
//
// The versioning rule, enforced by parseRegistration (tested in
// test/registry/document.test.ts):
//  - Every field a document may carry is listed in REGISTRATION_FIELDS or
//    INTERCEPTION_FIELDS with the version that introduced it.
//  - A field the reader does not list, or lists only from a later version than the
//    document's, is an error: nothing a writer says is silently dropped.
//  - So a writer that adds a field must list it here with `since` one above the last
//    version, which bumps REGISTRATION_VERSION (the largest `since`). A reader built
//    before that meets a version it does not know and refuses the whole document with
//    reason "newer-version": the loader counts it, logs it and leaves the pod on
//    iptables, where it is steered exactly as Istio set it up.
//  - A document of an older version is read with the current defaults of the fields
//    it predates (FIELD_DEFAULTS), so upgrading the registrar and the loaders in either
//    order never loses a pod that an older registrar registered.

import { ISTIO_CONTROL_PORTS, ISTIO_LISTENERS, ISTIO_PROXY } from "../mesh/istio/names.js";
import { parseCidr, parseIp, type Cidr, type Ip } from "./ip.js";


/**
 * What sk_msg may redirect into (the app-safety rule, docs/design.md "Only into a reader we know"):
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

/**
 * Effective interception settings of one pod in their JSON form: the
 * `meshlane.io/interception` annotation and the `interception` field of a document.
 * CIDRs are canonical text here; ParsedInterception holds them parsed.
 */
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

/** One pod's document in its JSON form: the value of a registry object, or of a key of the standalone file. */
export interface Registration {
  version: number;
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


/** Interception settings as the loader uses them: CIDRs parsed once, here. */
export interface ParsedInterception extends Omit<Interception, "includeOutboundIPRanges" | "excludeOutboundIPRanges"> {
  includeOutboundIPRanges: "*" | Cidr[];
  excludeOutboundIPRanges: Cidr[];
}

/** A document as parsed and checked: what the loader plans map entries from. */
export interface ParsedRegistration {
  /** The version the document was written at (≤ REGISTRATION_VERSION). */
  version: number;
  namespace: string;
  name: string;
  uid: string;
  ips: Ip[];
  interception: ParsedInterception;
}

/** The version each field first appeared in. Adding a field means adding it here, with a new version. */
const REGISTRATION_FIELDS = { version: 1, namespace: 1, name: 1, uid: 1, ips: 1, interception: 1 } as const satisfies Record<keyof Registration, number>;
const INTERCEPTION_FIELDS = {
  mode: 1,
  proxyUid: 1,
  proxyGid: 1,
  outboundPort: 1,
  inboundPort: 1,
  includeOutboundIPRanges: 1,
  excludeOutboundIPRanges: 1,
  includeOutboundPorts: 1,
  excludeOutboundPorts: 1,
  includeInboundPorts: 1,
  excludeInboundPorts: 1,
  controlPorts: 2,
  redirect: 2,
} as const satisfies Record<keyof Interception, number>;

/** The version this build writes and the newest it reads: the largest `since` above. */
export const REGISTRATION_VERSION = Math.max(...Object.values(REGISTRATION_FIELDS), ...Object.values(INTERCEPTION_FIELDS));

/** What a document of an older version gets for each field it predates. */
const FIELD_DEFAULTS: { [K in keyof Interception as (typeof INTERCEPTION_FIELDS)[K] extends 1 ? never : K]: () => Interception[K] } = {
  controlPorts: () => defaultInterception().controlPorts,
  redirect: () => DEFAULT_REDIRECT_MODE,
};

/** Why a document was refused: `newer-version` is the one a loader upgrade fixes. */
export type RegistrationProblem = "newer-version" | "invalid";

export class RegistrationError extends Error {
  constructor(
    where: string,
    problem: string,
    readonly reason: RegistrationProblem = "invalid",
  ) {
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

/** Each string of `items` through `parse`; a bad one is an error at its index, naming what it should be. */
function eachParsed<T>(items: Json[], where: string, what: string, parse: (text: string) => T): T[] {
  return items.map((item, i) => {
    if (typeof item !== "string") throw new RegistrationError(`${where}[${i}]`, `${what} must be a string`);
    try {
      return parse(item);
    } catch (e) {
      throw new RegistrationError(`${where}[${i}]`, (e as Error).message);
    }
  });
}

function cidrs(v: Json, where: string): Cidr[] {
  if (!Array.isArray(v)) throw new RegistrationError(where, "expected an array of CIDRs");
  return eachParsed(v, where, "CIDR", parseCidr);
}

function cidrList(v: Json, where: string): "*" | Cidr[] {
  return v === "*" ? "*" : cidrs(v, where);
}

function ips(v: Json, where: string): Ip[] {
  if (!Array.isArray(v) || v.length === 0) throw new RegistrationError(where, "expected at least one pod IP");
  return eachParsed(v, where, "IP", parseIp);
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

/** Refuses any field a document of `version` cannot carry (the versioning rule). */
function onlyKnownFields(v: Record<string, Json>, fields: Readonly<Record<string, number>>, version: number, where: string): void {
  for (const key of Object.keys(v)) {
    const since = Object.hasOwn(fields, key) ? fields[key]! : undefined;
    if (since === undefined) throw new RegistrationError(`${where}.${key}`, `unknown field (version ${version} has no such field)`);
    if (since > version) throw new RegistrationError(`${where}.${key}`, `field of version ${since} in a version ${version} document`);
  }
}

/** Parses interception settings written at `version` (the annotation is always at the current one). */
export function parseInterception(v: Json, where = "interception", version = REGISTRATION_VERSION): ParsedInterception {
  if (!isRecord(v)) throw new RegistrationError(where, "expected an object");
  onlyKnownFields(v, INTERCEPTION_FIELDS, version, where);
  if (v.mode !== "REDIRECT") {
    throw new RegistrationError(`${where}.mode`, `only REDIRECT is supported, got ${JSON.stringify(v.mode)}`);
  }
  const since = (field: keyof typeof FIELD_DEFAULTS) => INTERCEPTION_FIELDS[field] > version;
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
    controlPorts: since("controlPorts") ? FIELD_DEFAULTS.controlPorts() : ports(v.controlPorts, `${where}.controlPorts`),
    redirect: since("redirect") ? FIELD_DEFAULTS.redirect() : redirectMode(v.redirect, `${where}.redirect`),
  };
}

/** The JSON form of parsed settings: canonical addresses, fields in one order. */
export function formatInterception(p: ParsedInterception): Interception {
  return {
    ...p,
    includeOutboundIPRanges: p.includeOutboundIPRanges === "*" ? "*" : p.includeOutboundIPRanges.map(formatCidr),
    excludeOutboundIPRanges: p.excludeOutboundIPRanges.map(formatCidr),
  };
}

/** The canonical JSON form of settings (what the webhook writes): parsed, then formatted. */
export function validateInterception(v: Json, where = "interception"): Interception {
  return formatInterception(parseInterception(v, where));
}

/**
 * Parses one registry document under the rule above. `key` is the pod UID it was
 * stored under; the document must name the same pod.
 */
export function parseRegistration(v: Json, key: string): ParsedRegistration {
  const where = `registration ${key}`;
  if (!isRecord(v)) throw new RegistrationError(where, "expected a JSON object");
  const version = v.version;
  if (typeof version !== "number" || !Number.isInteger(version) || version < 1) {
    throw new RegistrationError(`${where}.version`, `${JSON.stringify(version)} is not a version number`);
  }
  if (version > REGISTRATION_VERSION) {
    throw new RegistrationError(`${where}.version`, `written at version ${version}, newer than the ${REGISTRATION_VERSION} this build reads: upgrade the loader`, "newer-version");
  }
  onlyKnownFields(v, REGISTRATION_FIELDS, version, where);
  const uid = text(v.uid, `${where}.uid`);
  if (uid !== key) throw new RegistrationError(`${where}.uid`, `uid ${uid} does not match its key`);
  return {
    version,
    namespace: text(v.namespace, `${where}.namespace`),
    name: text(v.name, `${where}.name`),
    uid,
    ips: ips(v.ips, `${where}.ips`),
    interception: parseInterception(v.interception, `${where}.interception`, version),
  };
}

/** The document for a pod at the current version, as JSON text: the same pod always gives the same text. */
export function encodeRegistration(pod: { namespace: string; name: string; uid: string; ips: readonly Ip[] }, interception: ParsedInterception): string {
  const doc: Registration = {
    version: REGISTRATION_VERSION,
    namespace: pod.namespace,
    name: pod.name,
    uid: pod.uid,
    ips: pod.ips.map((ip) => ip.address),
    interception: formatInterception(interception),
  };
  return JSON.stringify(doc);
}
