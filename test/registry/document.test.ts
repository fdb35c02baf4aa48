// registry/document.ts: documents parse to typed values, encode back to one canonical
// text, and the versioning rule holds: unknown fields are errors, a newer version is
// refused as such, an older one is read with the defaults of what it predates.

import { test } from "node:test";
import assert from "node:assert/strict";
import {
  defaultInterception,
  encodeRegistration,
  formatInterception,
  parseInterception,
  parseRegistration,
  REGISTRATION_VERSION,
  RegistrationError,
  validateInterception,
  type Registration,
} from "../../registry/document.js";
import { parseIp } from "../../registry/ip.js";

const doc = (over: Record<string, unknown> = {}, interception: Record<string, unknown> = {}): Record<string, unknown> => ({
  version: REGISTRATION_VERSION,
  namespace: "shop",
  name: "web",
  uid: "u1",
  ips: ["10.0.0.5"],
  interception: { ...defaultInterception(), ...interception },
  ...over,
});

/** The problem parseRegistration reports, with its reason. */
function refusal(v: unknown, key = "u1"): { reason: string; message: string } {
  try {
    parseRegistration(v, key);
  } catch (e) {
    assert.ok(e instanceof RegistrationError, String(e));
    return { reason: e.reason, message: e.message };
  }
  assert.fail("the document was accepted");
}

test("parse: addresses and CIDRs come out parsed (bytes, prefix), canonical", () => {
  const r = parseRegistration(doc({ ips: ["10.0.0.5", "FD00:0::5"] }, { excludeOutboundIPRanges: ["10.1.2.3/16"], includeOutboundIPRanges: ["fd00::1/8"] }), "u1");
  assert.deepEqual(r.ips.map((ip) => [ip.family, ip.address]), [[4, "10.0.0.5"], [6, "fd00::5"]]);
  assert.deepEqual(r.ips[0]!.bytes, Uint8Array.from([10, 0, 0, 5]));
  const [exclude] = r.interception.excludeOutboundIPRanges;
  assert.deepEqual([exclude!.address, exclude!.prefix, [...exclude!.bytes]], ["10.1.0.0", 16, [10, 1, 0, 0]], "host bits cleared");
  assert.notEqual(r.interception.includeOutboundIPRanges, "*");
  assert.equal((r.interception.includeOutboundIPRanges as { address: string }[])[0]!.address, "fd00::");
});

test("encode ∘ parse is the identity on canonical documents, and canonicalises the others", () => {
  const r = parseRegistration(doc({ ips: ["FD00:0::5"] }, { excludeOutboundIPRanges: ["10.1.2.3/16"] }), "u1");
  const text = encodeRegistration(r, r.interception);
  const again = parseRegistration(JSON.parse(text), "u1");
  assert.equal(encodeRegistration(again, again.interception), text);
  const parsed = JSON.parse(text) as Registration;
  assert.deepEqual(parsed.ips, ["fd00::5"]);
  assert.deepEqual(parsed.interception.excludeOutboundIPRanges, ["10.1.0.0/16"]);
  assert.equal(parsed.version, REGISTRATION_VERSION, "always written at the current version");
  assert.deepEqual(validateInterception(defaultInterception()), defaultInterception(), "the default settings are canonical");
  assert.deepEqual(formatInterception(parseInterception(defaultInterception())), defaultInterception());
});

test("the same settings give the same text, whatever order their fields came in", () => {
  const reordered = Object.fromEntries(Object.entries(defaultInterception()).reverse());
  const pod = { namespace: "shop", name: "web", uid: "u1", ips: [parseIp("10.0.0.5")] };
  assert.equal(encodeRegistration(pod, parseInterception(reordered)), encodeRegistration(pod, parseInterception(defaultInterception())));
});

test("versioning rule: an unknown field is an error, at the top and inside the settings", () => {
  assert.match(refusal(doc({ node: "node-a" })).message, /registration u1\.node: unknown field/);
  assert.match(refusal(doc({}, { dnsCapture: true })).message, /registration u1\.interception\.dnsCapture: unknown field/);
  assert.equal(refusal(doc({ node: "node-a" })).reason, "invalid");
});

test("versioning rule: a newer version is refused as newer-version, whatever it holds", () => {
  for (const v of [doc({ version: REGISTRATION_VERSION + 1 }), doc({ version: REGISTRATION_VERSION + 1, node: "node-a" }), { version: REGISTRATION_VERSION + 7 }]) {
    const r = refusal(v);
    assert.equal(r.reason, "newer-version");
    assert.match(r.message, new RegExp(`version ${String((v as { version: number }).version)}, newer than the ${REGISTRATION_VERSION} this build reads: upgrade the loader`));
  }
  for (const bad of [0, -1, 1.5, "2", null]) assert.equal(refusal(doc({ version: bad })).reason, "invalid", `version ${JSON.stringify(bad)}`);
});

test("versioning rule: version 1 is read with today's defaults for the fields version 2 added, and cannot carry them", () => {
  const { controlPorts: _c, redirect: _r, ...v1Settings } = defaultInterception();
  const r = parseRegistration({ ...doc(), version: 1, interception: v1Settings }, "u1");
  assert.equal(r.version, 1);
  assert.equal(r.interception.redirect, "proxy");
  assert.deepEqual(r.interception.controlPorts, defaultInterception().controlPorts);
  assert.match(refusal({ ...doc(), version: 1 }).message, /interception\.controlPorts: field of version 2 in a version 1 document/);
});

test("version 2 is the current one, and its fields are required", () => {
  assert.equal(REGISTRATION_VERSION, 2, "redirect and controlPorts made version 2: a new field must make it 3");
  const { redirect: _r, ...noRedirect } = defaultInterception();
  assert.match(refusal(doc({ interception: noRedirect })).message, /interception\.redirect: redirect mode undefined/);
});

test("bad values are refused with the field's path", () => {
  const cases: [Record<string, unknown>, RegExp][] = [
    [doc({ uid: "u2" }), /u1\.uid: uid u2 does not match its key/],
    [doc({ ips: [] }), /\.ips: expected at least one pod IP/],
    [doc({ ips: ["10.0.0.300"] }), /\.ips\[0\]: "10\.0\.0\.300" is not an IPv4 or IPv6 address/],
    [doc({ namespace: "" }), /\.namespace: expected a non-empty string/],
    [doc({}, { outboundPort: 0 }), /\.interception\.outboundPort: port 0/],
    [doc({}, { proxyUid: -1 }), /\.interception\.proxyUid: -1 is not a uid/],
    [doc({}, { excludeOutboundIPRanges: ["10.0.0.0/33"] }), /excludeOutboundIPRanges\[0\]: .*prefix/],
    [doc({}, { redirect: "sometimes" }), /\.interception\.redirect: redirect mode "sometimes"/],
    [doc({}, { mode: "TPROXY" }), /\.interception\.mode: only REDIRECT/],
  ];
  for (const [v, why] of cases) assert.match(refusal(v).message, why);
  assert.match(refusal("{not json").message, /expected a JSON object/);
});
