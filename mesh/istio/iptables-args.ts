// The configuration istio-iptables runs with, read from the injected capture container
// (istio-init, or istio-validation under istio-cni) exactly as istio-iptables builds it
// (tools/istio-iptables/pkg/cmd/root.go and tools/common/config/config.go of the pinned
// Istio): every flag starts at config.DefaultConfig(), is then set from its environment
// variable (flag.BindEnv: the flag name upper-cased, '-' → '_'), then from the command
// line (pflag: the last occurrence wins). Absent flags keep Istio's defaults, which for
// the list flags are the empty string: istio-iptables without -i captures no outbound
// address, without -b no inbound port.

import type { ContainerView } from "../pod.js";

/** The flags that shape what is captured, by the field of istio's config.Config. */
export interface IptablesConfig {
  proxyPort: string;
  inboundCapturePort: string;
  inboundTunnelPort: string;
  proxyUid: string;
  proxyGid: string;
  inboundInterceptionMode: string;
  inboundPortsInclude: string;
  inboundPortsExclude: string;
  outboundIPRangesInclude: string;
  outboundIPRangesExclude: string;
  outboundPortsInclude: string;
  outboundPortsExclude: string;
  excludeInterfaces: string;
  rerouteVirtualInterfaces: string;
  dryRun: string;
  skipRuleApply: string;
  cleanupOnly: string;
  nativeNftables: string;
  dualStack: string;
}
type Field = keyof IptablesConfig;

interface FlagDef {
  field: Field;
  short?: string;
  bool?: true;
}

/** Long name → definition (constants.go); the env variable is derived from the long name. */
const FLAGS: Record<string, FlagDef> = {
  "envoy-port": { field: "proxyPort", short: "p" },
  "inbound-capture-port": { field: "inboundCapturePort", short: "z" },
  "inbound-tunnel-port": { field: "inboundTunnelPort", short: "e" },
  "proxy-uid": { field: "proxyUid", short: "u" },
  "proxy-gid": { field: "proxyGid", short: "g" },
  "istio-inbound-interception-mode": { field: "inboundInterceptionMode", short: "m" },
  "istio-inbound-ports": { field: "inboundPortsInclude", short: "b" },
  "istio-local-exclude-ports": { field: "inboundPortsExclude", short: "d" },
  "istio-exclude-interfaces": { field: "excludeInterfaces", short: "c" },
  "istio-service-cidr": { field: "outboundIPRangesInclude", short: "i" },
  "istio-service-exclude-cidr": { field: "outboundIPRangesExclude", short: "x" },
  "istio-outbound-ports": { field: "outboundPortsInclude", short: "q" },
  "istio-local-outbound-ports-exclude": { field: "outboundPortsExclude", short: "o" },
  "kube-virt-interfaces": { field: "rerouteVirtualInterfaces", short: "k" },
  "dry-run": { field: "dryRun", short: "n", bool: true },
  "skip-rule-apply": { field: "skipRuleApply", bool: true },
  "cleanup-only": { field: "cleanupOnly", bool: true },
  "native-nftables": { field: "nativeNftables", bool: true },
  "dual-stack": { field: "dualStack", bool: true },
};

/** Flags that do not change which connections are captured; those with a value take one. */
const OTHER_FLAGS: Record<string, { short?: string; bool?: true }> = {
  "istio-inbound-tproxy-mark": { short: "t" },
  "istio-inbound-tproxy-route-table": { short: "r" },
  "iptables-probe-port": {},
  "probe-timeout": {},
  "network-namespace": {},
  "force-iptables-binary": {},
  "run-validation": { bool: true },
  "redirect-dns": { bool: true }, // DNS goes to istio-agent's 15053; meshlane never steers port 53
  "drop-invalid": { bool: true },
  "capture-all-dns": { bool: true },
  "cni-mode": { bool: true },
  "reconcile": { bool: true },
  "force-apply": { bool: true },
  "iptables-trace-logging": { bool: true },
  // pilot-agent's logging flags (pkg/log), inherited by the subcommand
  "log_as_json": { bool: true },
  "log_output_level": {},
  "log_stacktrace_level": {},
  "log_caller": {},
  "log_target": {},
  "log_rotate": {},
  "log_rotate_max_age": {},
  "log_rotate_max_size": {},
  "log_rotate_max_backups": {},
};

/** Environment-only settings that would capture differently from what meshlane models. */
export const ENV_ONLY: Record<string, string> = {
  ISTIO_OUTBOUND_OWNER_GROUPS: "*",
  ISTIO_OUTBOUND_OWNER_GROUPS_EXCLUDE: "",
  ISTIO_OUTBOUND_IPV4_LOOPBACK_CIDR: "127.0.0.1/32",
};

/** config.DefaultConfig() for the fields above (list flags default to ""). */
function defaults(): IptablesConfig {
  return {
    proxyPort: "15001", inboundCapturePort: "15006", inboundTunnelPort: "15008",
    proxyUid: "", proxyGid: "", inboundInterceptionMode: "",
    inboundPortsInclude: "", inboundPortsExclude: "",
    outboundIPRangesInclude: "", outboundIPRangesExclude: "",
    outboundPortsInclude: "", outboundPortsExclude: "",
    excludeInterfaces: "", rerouteVirtualInterfaces: "",
    dryRun: "false", skipRuleApply: "false", cleanupOnly: "false", nativeNftables: "false", dualStack: "false",
  };
}

const envName = (long: string) => long.toUpperCase().replaceAll("-", "_");
const SHORT = new Map<string, string>();
for (const [long, d] of [...Object.entries(FLAGS), ...Object.entries(OTHER_FLAGS)]) if (d.short) SHORT.set(d.short, long);

export type ArgsResult =
  | { ok: true; config: IptablesConfig }
  | { ok: false; problems: string[] };

/** What `pilot-agent istio-iptables ARGS` runs with, given the container's args and literal env. */
export function readIptablesConfig(container: ContainerView): ArgsResult {
  const args = container.args;
  const start = args.indexOf("istio-iptables");
  if (start < 0) return { ok: false, problems: [`${container.name}: no istio-iptables in its arguments`] };
  const config = defaults();
  const problems: string[] = [];
  for (const [long, d] of Object.entries(FLAGS)) {
    const v = container.env.get(envName(long));
    if (v !== undefined) config[d.field] = v;
  }
  // flag.AdditionalEnv: ISTIO_DUAL_STACK sets --dual-stack too (the others do not shape capture).
  const dual = container.env.get("ISTIO_DUAL_STACK");
  if (dual !== undefined) config.dualStack = dual;
  for (const [name, expected] of Object.entries(ENV_ONLY)) {
    const v = container.env.get(name);
    if (v !== undefined && v !== expected) problems.push(`${container.name}: env ${name}=${JSON.stringify(v)} is not modelled by meshlane`);
  }

  for (let i = start + 1; i < args.length; i++) {
    const arg = args[i]!;
    if (arg === "--") break; // pflag: the rest are positional arguments, which istio-iptables ignores
    let long: string | undefined;
    let inline: string | undefined;
    if (arg.startsWith("--")) {
      const eq = arg.indexOf("=");
      long = eq > 0 ? arg.slice(2, eq) : arg.slice(2);
      inline = eq > 0 ? arg.slice(eq + 1) : undefined;
    } else if (arg.startsWith("-") && arg.length > 1) {
      long = SHORT.get(arg[1]!);
      if (long === undefined) {
        problems.push(`${container.name}: istio-iptables has no flag ${JSON.stringify(arg)} (the init container would fail)`);
        continue;
      }
      // pflag: -p15001 and -p=15001 both give "15001"
      if (arg.length > 2) inline = arg[2] === "=" ? arg.slice(3) : arg.slice(2);
    } else {
      continue; // a positional argument
    }
    const def = FLAGS[long] ?? OTHER_FLAGS[long];
    if (!def) {
      problems.push(`${container.name}: istio-iptables has no flag ${JSON.stringify(arg)} (the init container would fail)`);
      continue;
    }
    let value: string;
    if (def.bool) value = inline ?? "true";
    else if (inline !== undefined) value = inline;
    else if (i + 1 < args.length) value = args[++i]!;
    else {
      problems.push(`${container.name}: flag ${arg} has no value (the init container would fail)`);
      continue;
    }
    const field = (FLAGS[long] as FlagDef | undefined)?.field;
    if (field) config[field] = value;
  }
  if (problems.length > 0) return { ok: false, problems };
  // config.FillConfigFromEnvironment: no -u → ENVOY_USER's uid (istio-proxy, 1337 in the
  // proxy image) else DefaultProxyUID 1337; no -g → the same as -u.
  if (config.proxyUid === "") config.proxyUid = "1337";
  if (config.proxyGid === "") config.proxyGid = config.proxyUid;
  return { ok: true, config };
}

/** Go's strconv.ParseBool, as pflag's bool flags use it. */
export function goBool(v: string): boolean | undefined {
  if (["1", "t", "T", "TRUE", "true", "True"].includes(v)) return true;
  if (["0", "f", "F", "FALSE", "false", "False"].includes(v)) return false;
  return undefined;
}
