import { test } from "node:test";
import assert from "node:assert/strict";
import { desiredContents } from "../../loader/plan.js";
import { defaultInterception, parseRegistration, REGISTRATION_VERSION, type ParsedRegistration, type Registration } from "../../registry/document.js";
import { MAPS, PortList, POD_INBOUND_ALL_PORTS, POD_OUTBOUND_ALL_CIDRS, RedirectMode } from "../../loader/maps/codecs.js";

/** A registration; no control ports unless a test gives some, so rule counts stay small. */
function reg(uid: string, ips: string[], ic: Partial<Registration["interception"]> = {}): ParsedRegistration {
  return parseRegistration({ version: REGISTRATION_VERSION, namespace: "ns", name: uid, uid, ips, interception: { ...defaultInterception(), controlPorts: [], ...ic } }, uid);
}

test("the pod entry carries the redirect mode, the pod's own addresses and, as rules, its control ports", () => {
  for (const mode of ["proxy", "all", "none"] as const) {
    const { contents } = desiredContents([{ registration: reg("a", ["fd00::1", "10.0.0.1", "10.0.0.2"], { redirect: mode, controlPorts: [15020, 15021] }), cgroupId: 9n }]);
    const pod = MAPS.mesh_pods.value.decode(Buffer.from([...contents.mesh_pods.values()][0]!, "hex"));
    assert.equal(pod.redirect, RedirectMode[mode]);
    assert.deepEqual(Array.from(pod.ip4), [10, 0, 0, 1], "the first IPv4 address");
    assert.deepEqual(Array.from(pod.ip6), [0xfd, ...new Array(14).fill(0), 1]);
    const ports = [...contents.mesh_ports.keys()].map((k) => MAPS.mesh_ports.key.decode(Buffer.from(k, "hex")));
    assert.deepEqual(ports.map((p) => [p.list, p.port]).sort(), [[PortList.PORTS_CONTROL, 15020], [PortList.PORTS_CONTROL, 15021]]);
  }
  const v4only = desiredContents([{ registration: reg("b", ["10.0.0.3"]), cgroupId: 1n }]).contents;
  const pod = MAPS.mesh_pods.value.decode(Buffer.from([...v4only.mesh_pods.values()][0]!, "hex"));
  assert.equal(pod.redirect, RedirectMode.proxy, "the default mode");
  assert.deepEqual(Array.from(pod.ip6), new Array(16).fill(0), "no IPv6 address: zeros, nothing to bind to");
});

test("a pod becomes a pod entry, one IP entry per address and one rule per listed port or CIDR", () => {
  const { contents, problems } = desiredContents([
    { registration: reg("a", ["10.0.0.1", "fd00::1"], { excludeOutboundPorts: [22, 23], includeInboundPorts: [80], excludeOutboundIPRanges: ["10.9.0.0/16"], includeOutboundIPRanges: ["10.0.0.0/8", "fd00::/8"] }), cgroupId: 42n },
  ]);
  assert.deepEqual(problems, []);
  assert.equal(contents.mesh_pods.size, 1);
  assert.equal(contents.mesh_pod_ips.size, 2);
  assert.equal(contents.mesh_ports.size, 3);
  assert.equal(contents.mesh_cidrs.size, 3);
  const pod = MAPS.mesh_pods.value.decode(Buffer.from([...contents.mesh_pods.values()][0]!, "hex"));
  assert.equal(pod.flags & POD_INBOUND_ALL_PORTS, 0, "includeInboundPorts is a list");
  assert.equal(pod.flags & POD_OUTBOUND_ALL_CIDRS, 0, "includeOutboundIPRanges is a list");
  const ports = [...contents.mesh_ports.keys()].map((k) => MAPS.mesh_ports.key.decode(Buffer.from(k, "hex")));
  assert.deepEqual(ports.map((p) => [p.list, p.port, p.cgroup_id]).sort(), [
    [PortList.PORTS_EXCLUDE_OUTBOUND, 22, 42n],
    [PortList.PORTS_EXCLUDE_OUTBOUND, 23, 42n],
    [PortList.PORTS_INCLUDE_INBOUND, 80, 42n],
  ].sort());
  const cidr = [...contents.mesh_cidrs.keys()].map((k) => MAPS.mesh_cidrs.key.decode(Buffer.from(k, "hex"))).find((c) => c.family === 10)!;
  assert.equal(cidr.prefixlen, 128 + 8);
});

test("wildcards are flags, not entries", () => {
  const { contents } = desiredContents([{ registration: reg("a", ["10.0.0.1"]), cgroupId: 1n }]);
  const pod = MAPS.mesh_pods.value.decode(Buffer.from([...contents.mesh_pods.values()][0]!, "hex"));
  assert.equal(pod.flags, POD_INBOUND_ALL_PORTS | POD_OUTBOUND_ALL_CIDRS);
  assert.equal(contents.mesh_cidrs.size + contents.mesh_ports.size, 0);
});

test("a pod claiming another pod's IP is left out whole, whatever the input order", () => {
  for (const order of [["a", "b"], ["b", "a"]]) {
    const regs = { a: reg("a", ["10.0.0.1"]), b: reg("b", ["10.0.0.2", "10.0.0.1"]) };
    const { contents, problems } = desiredContents(order.map((u, i) => ({ registration: regs[u as "a" | "b"], cgroupId: BigInt(i + 1) })));
    assert.deepEqual(problems, [{ uid: "b", problem: "IP 10.0.0.1 is already registered by pod a" }]);
    assert.equal(contents.mesh_pods.size, 1);
    assert.equal(contents.mesh_pod_ips.size, 1);
  }
});
