import { test } from "node:test";
import assert from "node:assert/strict";
import { cniSettings } from "../../mesh/istio/annotations.js";
import type { ContainerView } from "../../mesh/pod.js";
import { validateInterception } from "../../registry/document.js";

const T = "traffic.sidecar.istio.io/";
const proxy = (over: Partial<ContainerView> = {}): ContainerView => ({
  name: "istio-proxy", args: [], restartPolicy: undefined, runAsUser: 1337, runAsGroup: 1337, env: new Map(), ...over,
});
const parse = (a: Record<string, string>, p: ContainerView | undefined = proxy()) => cniSettings(new Map(Object.entries(a)), p);
function ok(a: Record<string, string>, p: ContainerView | undefined = proxy()) {
  const r = parse(a, p);
  if (!r.ok) assert.fail(`expected ok, got ${r.detail}`);
  assert.deepEqual(validateInterception(r.interception), r.interception, "the registry's validator returns it unchanged");
  return r.interception;
}
function problems(a: Record<string, string>): string[] {
  const r = parse(a);
  if (r.ok) assert.fail("expected problems");
  return r.detail.split("; ");
}

test("no annotations: istio-cni's defaults, with the proxy's own ports and the tunnel port excluded inbound", () => {
  assert.deepEqual(ok({}), {
    mode: "REDIRECT", proxyUid: 1337, proxyGid: 1337, outboundPort: 15001, inboundPort: 15006,
    includeOutboundIPRanges: "*", excludeOutboundIPRanges: ["::/0"], includeOutboundPorts: [], excludeOutboundPorts: [15020],
    includeInboundPorts: "*", excludeInboundPorts: [15008, 15020, 15021, 15090],
    controlPorts: [15000, 15004, 15020, 15021, 15090], redirect: "proxy",
  });
});

test("lists accept spaces around commas, IPv6, canonicalise and deduplicate", () => {
  const i = ok({
    [`${T}includeOutboundIPRanges`]: " 10.1.2.3/8 , 2001:DB8::1/32,10.0.0.0/8 ",
    [`${T}excludeOutboundIPRanges`]: "fd00::/8, 192.168.1.7/32",
    [`${T}includeOutboundPorts`]: "443 , 80",
    [`${T}excludeOutboundPorts`]: "9000,9000, 22",
    [`${T}includeInboundPorts`]: "8080, 8443",
    [`${T}excludeInboundPorts`]: "9901",
  });
  assert.deepEqual(i.includeOutboundIPRanges, ["10.0.0.0/8", "2001:db8::/32"]);
  assert.deepEqual(i.excludeOutboundIPRanges, ["fd00::/8", "192.168.1.7/32", "::/0"]);
  const dual = ok({ [`${T}excludeOutboundIPRanges`]: "fd00::/8" }, proxy({ env: new Map([["ISTIO_DUAL_STACK", "true"]]) }));
  assert.deepEqual(dual.excludeOutboundIPRanges, ["fd00::/8"]);
  assert.deepEqual(i.includeOutboundPorts, [80, 443]);
  assert.deepEqual(i.excludeOutboundPorts, [22, 9000]);
  assert.deepEqual(i.includeInboundPorts, [8080, 8443]);
  assert.deepEqual(i.excludeInboundPorts, [9901, 15008, 15020, 15021, 15090]);
});

test("'*' is a whole value of the include lists; empty values are empty lists", () => {
  const star = ok({ [`${T}includeOutboundIPRanges`]: " * ", [`${T}includeInboundPorts`]: "*" });
  assert.equal(star.includeOutboundIPRanges, "*");
  assert.equal(star.includeInboundPorts, "*");
  // istio-cni with includeOutboundIPRanges "" captures no outbound address, includeInboundPorts "" no inbound port.
  const none = ok({ [`${T}includeOutboundIPRanges`]: "", [`${T}includeInboundPorts`]: " " });
  assert.deepEqual(none.includeOutboundIPRanges, []);
  assert.deepEqual(none.includeInboundPorts, []);
});

test("every bad token is named with its annotation", () => {
  const p = problems({
    [`${T}excludeOutboundPorts`]: "80,70000, abc",
    [`${T}includeInboundPorts`]: "0",
    [`${T}excludeInboundPorts`]: "1,,2",
    [`${T}includeOutboundIPRanges`]: "10.0.0.0/33, *",
    [`${T}excludeOutboundIPRanges`]: "*",
    [`${T}includeOutboundPorts`]: "10.0.0.1",
  });
  const text = p.join("\n");
  assert.match(text, /excludeOutboundPorts: "70000" is not a port in 1-65535/);
  assert.match(text, /excludeOutboundPorts: "abc" is not a port/);
  assert.match(text, /includeInboundPorts: "0" is not a port/);
  assert.match(text, /excludeInboundPorts: "" is an empty list element/);
  assert.match(text, /includeOutboundIPRanges: "10.0.0.0\/33" is not an IPv4 or IPv6 CIDR/);
  assert.match(text, /includeOutboundIPRanges: "\*" must stand alone/);
  assert.match(text, /excludeOutboundIPRanges: "\*" is not allowed here/);
  assert.match(text, /includeOutboundPorts: "10.0.0.1" is not a port/);
  assert.equal(p.length, 8);
});

test("a CIDR needs its prefix length, as Istio's netip.ParsePrefix does", () => {
  assert.match(problems({ [`${T}excludeOutboundIPRanges`]: "10.0.0.1" })[0]!, /"10.0.0.1" is not an IPv4 or IPv6 CIDR/);
});

test("long bad tokens are cut short in the reason", () => {
  const [p] = problems({ [`${T}excludeInboundPorts`]: "9".repeat(500) });
  assert.ok(p!.length < 200, p);
});

test("unmodelled traffic annotations skip the pod; empty ones are harmless", () => {
  const r = parse({ [`${T}excludeInterfaces`]: "eth1" });
  assert.equal(r.ok, false);
  assert.equal(!r.ok && r.code, "unsupported-annotation");
  assert.ok(parse({ [`${T}excludeInterfaces`]: "" }).ok);
});

test("status port: a control port of the pod; 0 or the default adds nothing; junk is a problem", () => {
  assert.deepEqual(ok({ "status.sidecar.istio.io/port": "15999" }).controlPorts, [15000, 15004, 15020, 15021, 15090, 15999]);
  assert.deepEqual(ok({ "status.sidecar.istio.io/port": "0" }).controlPorts, [15000, 15004, 15020, 15021, 15090]);
  assert.match(problems({ "status.sidecar.istio.io/port": "x" })[0]!, /status.sidecar.istio.io\/port: "x"/);
});

test("istio-cni excludes outbound 15020 unless excludeOutboundPorts says otherwise", () => {
  assert.deepEqual(ok({}).excludeOutboundPorts, [15020]);
  assert.deepEqual(ok({ [`${T}excludeOutboundPorts`]: "7" }).excludeOutboundPorts, [7]);
});

test("istio.io/reroute-virtual-interfaces is interface-based capture: not accelerated", () => {
  const r = parse({ "istio.io/reroute-virtual-interfaces": "eth1" });
  assert.equal(!r.ok && r.code, "unsupported-annotation");
});
test("proxy uid/gid come from istio-proxy's securityContext; unset or 0 means 1337", () => {
  const custom = ok({}, proxy({ runAsUser: 2000, runAsGroup: 3000 }));
  assert.equal(custom.proxyUid, 2000);
  assert.equal(custom.proxyGid, 3000);
  const unset = ok({}, proxy({ runAsUser: undefined, runAsGroup: 0 }));
  assert.equal(unset.proxyUid, 1337);
  assert.equal(unset.proxyGid, 1337);
  assert.equal(ok({}, undefined).proxyUid, 1337);
});

