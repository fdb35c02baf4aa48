// A classic pod's settings are what its istio-init arguments make istio-iptables do
// (issue 11's "Why" list), with istio-iptables' own defaults for absent flags.
import { test } from "node:test";
import assert from "node:assert/strict";
import { istioSettings } from "../../mesh/istio/index.js";
import { detectInjection } from "../../mesh/istio/detect.js";
import { readIptablesConfig } from "../../mesh/istio/iptables-args.js";
import { readPod } from "../../mesh/pod.js";
import type { SettingsResult } from "../../mesh/mesh.js";
import { validateInterception } from "../../registry/document.js";

/** What the pinned template writes for a pod with default values. */
const TEMPLATE_ARGS = ["istio-iptables", "-p", "15001", "-z", "15006", "-u", "1337", "-m", "REDIRECT", "-i", "*", "-x", "", "-b", "*", "-d", "15090,15021,15020", "--log_output_level=default:info"];

function pod(initArgs: string[] | undefined, annotations: Record<string, string> = {}, over: { proxySecurity?: object; initEnv?: object[] } = {}) {
  return readPod({
    metadata: { annotations: { "sidecar.istio.io/status": '{"revision":"default"}', ...annotations } },
    spec: {
      initContainers: initArgs ? [{ name: "istio-init", args: initArgs, env: over.initEnv ?? [] }] : [],
      containers: [{ name: "app" }, { name: "istio-proxy", securityContext: over.proxySecurity ?? { runAsUser: 1337, runAsGroup: 1337 } }],
    },
  });
}
function settings(initArgs: string[] | undefined, annotations: Record<string, string> = {}, over = {}): SettingsResult {
  const p = pod(initArgs, annotations, over);
  return istioSettings(p, detectInjection(p));
}
function ok(initArgs: string[], annotations: Record<string, string> = {}, over = {}) {
  const r = settings(initArgs, annotations, over);
  if (!r.ok) assert.fail(`expected settings, got ${r.code}: ${r.detail}`);
  assert.deepEqual(validateInterception(r.interception), r.interception, "the registry's validator returns it unchanged");
  return r.interception;
}

test("the template's arguments give Istio's defaults", () => {
  assert.deepEqual(ok(TEMPLATE_ARGS), {
    mode: "REDIRECT", proxyUid: 1337, proxyGid: 1337, outboundPort: 15001, inboundPort: 15006,
    includeOutboundIPRanges: "*", excludeOutboundIPRanges: ["::/0"], includeOutboundPorts: [], excludeOutboundPorts: [],
    includeInboundPorts: "*", excludeInboundPorts: [15008, 15020, 15021, 15090],
    controlPorts: [15000, 15004, 15020, 15021, 15090], redirect: "proxy",
  });
});

test("without ISTIO_DUAL_STACK istio-iptables may leave IPv6 alone, so meshlane excludes it; with it, nothing is added", () => {
  assert.deepEqual(ok([...TEMPLATE_ARGS, "-x", "10.0.0.0/8"]).excludeOutboundIPRanges, ["10.0.0.0/8", "::/0"]);
  assert.deepEqual(ok(TEMPLATE_ARGS, {}, { initEnv: [{ name: "ISTIO_DUAL_STACK", value: "true" }] }).excludeOutboundIPRanges, []);
  assert.deepEqual(ok([...TEMPLATE_ARGS, "--dual-stack"]).excludeOutboundIPRanges, []);
});

test("arguments and annotations disagree: the arguments are followed", () => {
  const args = [...TEMPLATE_ARGS, "-i", "10.0.0.0/8", "-o", "3306"];
  const i = ok(args, { "traffic.sidecar.istio.io/includeOutboundIPRanges": "*", "traffic.sidecar.istio.io/excludeInboundPorts": "9000" });
  assert.deepEqual(i.includeOutboundIPRanges, ["10.0.0.0/8"]);
  assert.deepEqual(i.excludeOutboundPorts, [3306]);
  assert.deepEqual(i.excludeInboundPorts, [15008, 15020, 15021, 15090]);
  // An annotation meshlane does not model does not matter either: the arguments are what runs.
  assert.ok(settings(TEMPLATE_ARGS, { "traffic.sidecar.istio.io/excludeInterfaces": "eth1" }).ok);
});

test("missing -i or -b: istio-iptables captures nothing there, and neither does meshlane", () => {
  const noI = ok(TEMPLATE_ARGS.filter((_, k) => k !== 9 && k !== 10));
  assert.deepEqual(noI.includeOutboundIPRanges, []);
  const noB = ok(TEMPLATE_ARGS.filter((_, k) => k !== 13 && k !== 14));
  assert.deepEqual(noB.includeInboundPorts, []);
  // -d only applies with -b "*"; the tunnel port always returns first.
  assert.deepEqual(noB.excludeInboundPorts, [15008]);
  const bare = ok(["istio-iptables"]);
  assert.deepEqual([bare.includeOutboundIPRanges, bare.includeInboundPorts, bare.proxyUid, bare.proxyGid, bare.outboundPort, bare.inboundPort], [[], [], 1337, 1337, 15001, 15006]);
});

test("proxy gid is -g, defaulting to -u; runAsGroup does not change what iptables excludes", () => {
  const args = TEMPLATE_ARGS.map((a) => (a === "1337" ? "2000" : a));
  const i = ok(args, {}, { proxySecurity: { runAsUser: 2000, runAsGroup: 3000 } });
  assert.equal(i.proxyUid, 2000);
  assert.equal(i.proxyGid, 2000);
  assert.equal(ok([...args, "-g", "4000"]).proxyGid, 4000);
  assert.match((settings([...TEMPLATE_ARGS, "-u", "1337,1338"]) as { detail: string }).detail, /not one uid\/gid/);
});

test("flags: long and short spellings, --x=v and -xv, the last one wins, env below the command line", () => {
  const i = ok(["istio-iptables", "--envoy-port=15101", "-z15106", "--istio-service-cidr", "10.0.0.0/8", "-i", "192.168.0.0/16", "--run-validation", "-q=80,443"]);
  assert.deepEqual([i.outboundPort, i.inboundPort, i.includeOutboundIPRanges, i.includeOutboundPorts], [15101, 15106, ["192.168.0.0/16"], [80, 443]]);
  const env = [{ name: "ISTIO_SERVICE_CIDR", value: "172.16.0.0/12" }, { name: "ISTIO_INBOUND_PORTS", value: "8080" }];
  const e = ok(["istio-iptables", "-b", "9090"], {}, { initEnv: env });
  assert.deepEqual([e.includeOutboundIPRanges, e.includeInboundPorts], [["172.16.0.0/12"], [9090]]);
});

test("what meshlane cannot model or fall back on is not accelerated, with a reason", () => {
  const code = (args: string[], over = {}) => {
    const r = settings(args, {}, over);
    return r.ok ? "ok" : r.code;
  };
  assert.equal(code([...TEMPLATE_ARGS, "-m", "TPROXY"]), "interception-mode");
  assert.equal(code([...TEMPLATE_ARGS, "-c", "eth1"]), "unsupported-argument");
  assert.equal(code([...TEMPLATE_ARGS, "-k", "net1"]), "unsupported-argument");
  assert.equal(code([...TEMPLATE_ARGS, "--skip-rule-apply"]), "no-capture");
  assert.equal(code([...TEMPLATE_ARGS, "-n"]), "no-capture");
  assert.equal(code([...TEMPLATE_ARGS, "--no-such-flag"]), "bad-argument");
  assert.equal(code([...TEMPLATE_ARGS, "-x", "*"]), "bad-argument");
  assert.equal(code([...TEMPLATE_ARGS, "-p"]), "bad-argument");
  assert.equal(code(TEMPLATE_ARGS, { initEnv: [{ name: "ISTIO_OUTBOUND_OWNER_GROUPS", value: "1000" }] }), "bad-argument");
  assert.equal(code(["pilot-agent", "wait"]), "bad-argument");
});

test("interceptionMode NONE: the injector adds no istio-init, and the reason is interception-mode", () => {
  const r = settings(undefined, { "sidecar.istio.io/interceptionMode": "NONE" });
  assert.equal(!r.ok && r.code, "interception-mode");
  const none = settings(undefined);
  assert.equal(!none.ok && none.code, "no-capture");
});

test("readIptablesConfig keeps istio-iptables' defaults for absent flags", () => {
  const r = readIptablesConfig({ name: "istio-init", args: ["istio-iptables"], env: new Map(), restartPolicy: undefined, runAsUser: 0, runAsGroup: 0 });
  assert.ok(r.ok);
  assert.equal(r.config.outboundIPRangesInclude, "");
  assert.equal(r.config.inboundPortsInclude, "");
  assert.equal(r.config.inboundTunnelPort, "15008");
});
