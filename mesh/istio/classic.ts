// Effective interception settings of a classic sidecar pod: what the istio-iptables
// configuration of its istio-init container installs (tools/istio-iptables/pkg/capture/run.go
// of the pinned Istio), nothing taken from the annotations.
//  - -i "*" captures every outbound address; a list, only those; "" (or no -i) none.
//  - -x excludes addresses; "*" there makes istio-iptables fail.
//  - -b "*" captures every inbound port except -d; a list, exactly those (-d is then
//    ignored, as istio-iptables does); "" (or no -b) none. The tunnel port (-e, 15008)
//    always returns first.
//  - -u/-g are lists in istio-iptables; meshlane models one proxy uid and one gid.
//  - Without --dual-stack (ISTIO_DUAL_STACK) istio-iptables installs ip6tables rules only
//    when the pod's first address is IPv6, which admission cannot know: meshlane then
//    excludes all of IPv6 outbound (::/0), so it never steers what ip6tables may leave alone.
//  - TPROXY, excluded or virtual interfaces, and dry-run/skip-apply runs are not
//    accelerated: meshlane would steer what iptables leaves alone, or nothing is there
//    to fall back on.

import type { Interception } from "../../registry/document.js";
import { goBool, type IptablesConfig } from "./iptables-args.js";
import { CIDR, parseList, parsePort, PORT, Problems, sortedPorts, Steps } from "./lists.js";
import { controlPorts } from "./names.js";
import type { SettingsResult } from "../mesh.js";

function port(source: string, v: string, problems: Problems): number {
  const p = parsePort(v.trim());
  if (p === undefined) problems.add(source, v, PORT.what);
  return p ?? 1;
}

function id(source: string, v: string, problems: Problems): number {
  const ids = v.split(",").filter((s) => s !== "");
  if (ids.length !== 1 || !/^\d{1,10}$/.test(ids[0]!) || Number(ids[0]) > 0xffffffff) {
    problems.add(source, v, "is not one uid/gid (meshlane models a single proxy uid and gid)");
    return 0;
  }
  return Number(ids[0]);
}

export function classicSettings(c: IptablesConfig, statusPort: number | undefined, steps = new Steps()): SettingsResult {
  for (const [flag, v] of [["--dry-run", c.dryRun], ["--skip-rule-apply", c.skipRuleApply], ["--cleanup-only", c.cleanupOnly]] as const) {
    if (goBool(v) !== false) return { ok: false, code: "no-capture", detail: `istio-init runs istio-iptables with ${flag}=${v}: it installs no rules to fall back on` };
  }
  const mode = c.inboundInterceptionMode.trim();
  if (mode !== "" && mode !== "REDIRECT") {
    return { ok: false, code: "interception-mode", detail: `istio-init -m ${JSON.stringify(mode)}; only REDIRECT is accelerated` };
  }
  const unsupported: string[] = [];
  if (c.excludeInterfaces !== "") unsupported.push(`istio-init -c ${JSON.stringify(c.excludeInterfaces)}: interface-based capture is not modelled by meshlane`);
  if (c.rerouteVirtualInterfaces !== "") unsupported.push(`istio-init -k ${JSON.stringify(c.rerouteVirtualInterfaces)}: interface-based capture is not modelled by meshlane`);
  if (goBool(c.nativeNftables) !== false) unsupported.push("istio-init --native-nftables: only the iptables backend is modelled by meshlane");
  if (unsupported.length > 0) return { ok: false, code: "unsupported-argument", detail: unsupported.join("; ") };

  const problems = new Problems();
  const list = <T>(flag: string, v: string, kind: typeof PORT | typeof CIDR, wildcard: boolean) =>
    parseList(`istio-init ${flag}`, v, kind as never, wildcard, problems, steps) as T[] | "*";
  const ports = (flag: string, v: string): number[] => {
    const l = list<number>(flag, v, PORT, false);
    return l === "*" ? [] : sortedPorts(l, steps);
  };
  const cidrs = (flag: string, v: string): string[] => {
    const l = list<string>(flag, v, CIDR, false);
    return l === "*" ? [] : l;
  };
  const tunnel = port("istio-init -e", c.inboundTunnelPort, problems);
  const inbound = list<number>("-b", c.inboundPortsInclude, PORT, true);
  const excludeInbound = inbound === "*" ? [...ports("-d", c.inboundPortsExclude), tunnel] : [tunnel];

  const interception: Interception = {
    mode: "REDIRECT",
    proxyUid: id("istio-init -u", c.proxyUid, problems),
    proxyGid: id("istio-init -g", c.proxyGid, problems),
    outboundPort: port("istio-init -p", c.proxyPort, problems),
    inboundPort: port("istio-init -z", c.inboundCapturePort, problems),
    includeOutboundIPRanges: list<string>("-i", c.outboundIPRangesInclude, CIDR, true),
    excludeOutboundIPRanges: goBool(c.dualStack) === true ? cidrs("-x", c.outboundIPRangesExclude) : [...new Set([...cidrs("-x", c.outboundIPRangesExclude), "::/0"])],
    includeOutboundPorts: ports("-q", c.outboundPortsInclude),
    excludeOutboundPorts: ports("-o", c.outboundPortsExclude),
    includeInboundPorts: inbound === "*" ? "*" : sortedPorts(inbound, steps),
    excludeInboundPorts: sortedPorts(excludeInbound, steps),
    controlPorts: controlPorts(statusPort),
    redirect: "proxy",
  };
  if (problems.list.length > 0) return { ok: false, code: "bad-argument", detail: problems.all().join("; ") };
  // Canonical already (the tests check that the registry's validator returns it unchanged):
  // parsing every CIDR twice would double the cost of a 256 KiB pod.
  return { ok: true, interception };
}
