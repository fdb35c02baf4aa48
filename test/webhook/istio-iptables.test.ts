import { test } from "node:test";
import assert from "node:assert/strict";
import { defaultInterception, type Interception } from "../../registry/document.js";
import { disagreements, readIptablesArgs } from "../../webhook/istio-iptables.js";

// The arguments Istio's injection template gives istio-init for a pod without annotations.
const DEFAULT_ARGS = ["istio-iptables", "-p", "15001", "-z", "15006", "-u", "1337", "-m", "REDIRECT", "-i", "*", "-x", "", "-b", "*", "-d", "15090,15021,15020", "--log_output_level=default:info"];
const ours: Interception = { ...defaultInterception(), excludeInboundPorts: [15020, 15021, 15090] };
const check = (args: string[], i: Interception = ours) => disagreements(i, readIptablesArgs(args)!);

test("flags are read in short and long form, = or separate, ignoring others", () => {
  const flags = readIptablesArgs(["istio-iptables", "--envoy-port=15001", "-i", "10.0.0.0/8", "--run-validation", "--skip-rule-apply", "-x", ""])!;
  assert.deepEqual(Object.fromEntries(flags), {
    outboundPort: { flag: "--envoy-port", value: "15001" },
    includeOutboundIPRanges: { flag: "-i", value: "10.0.0.0/8" },
    excludeOutboundIPRanges: { flag: "-x", value: "" },
  });
  assert.equal(readIptablesArgs(["proxy", "sidecar"]), undefined);
});

test("the template's default arguments agree with the default annotations", () => {
  assert.deepEqual(check(DEFAULT_ARGS), []);
  // Order and spelling do not matter, only what is captured.
  assert.deepEqual(check([...DEFAULT_ARGS, "-d", "15020, 15090,15021"]), []);
});

test("mesh-wide values that left no annotation are caught", () => {
  const found = check([...DEFAULT_ARGS, "-i", "10.0.0.0/8", "-o", "3306", "-u", "2000"]);
  assert.equal(found.length, 3, found.join("\n"));
  assert.match(found.join("\n"), /istio-init -i "10.0.0.0\/8" but the annotations give includeOutboundIPRanges "\*"/);
  assert.match(found.join("\n"), /istio-init -o "3306" but the annotations give excludeOutboundPorts \[\]/);
  assert.match(found.join("\n"), /istio-init -u "2000" but the annotations give proxyUid 1337/);
});

test("interface capture and unparseable values disagree", () => {
  assert.match(check([...DEFAULT_ARGS, "-c", "eth1"])[0]!, /interface-based capture is not modelled/);
  assert.match(check([...DEFAULT_ARGS, "-d", "15020,x"]).join("\n"), /istio-init -d: "x" is not a port/);
});
