// bench/README.md, generated from one run: header (date, machine, conditions),
// the Envoy note, the issue's targets, one section per series (sidecar ×
// placement) with its charts and tables, what the programs cost according to
// the kernel, the per-connection breakdown, the path switches, the per-hop
// micro-benchmark, the method and what falls short.

import { existsSync, readFileSync } from "node:fs";
import type { HopSummary } from "./hop.js";
import { PROGRAM_NAMES } from "../loader/maps/codecs.js";
import { DEFAULT_MESHLANE_MODE, MESHLANE_MODES, seriesName, type Mode, type Series } from "./plan.js";
import type { BenchResults } from "./results.js";
import { DISTURBED_SHARE, type ModeFigures, type PointSummary, type ProgramCost, type TargetCheck } from "./summary.js";
import { stallTotal, switchFigure, windowP99Us } from "./switch.js";

export function formatUs(us: number): string {
  if (!Number.isFinite(us)) return "–";
  if (us < 1000) return `${Math.round(us)} µs`;
  if (us < 1e6) return `${(us / 1000).toFixed(us < 10_000 ? 2 : 1)} ms`;
  return `${(us / 1e6).toFixed(2)} s`;
}

export function formatRatio(r: number | null | undefined): string {
  return r === null || r === undefined || !Number.isFinite(r) ? "–" : `${r.toFixed(2)}×`;
}

/** Axis labels: round values, shortest unit ("500 µs", "2 ms", "1 s"). */
export function formatUsShort(us: number): string {
  if (us < 1000) return `${us} µs`;
  if (us < 1e6) return `${us / 1000} ms`;
  return `${us / 1e6} s`;
}

const formatRate = (v: number) => Math.round(v).toLocaleString("en-US");
const formatCpu = (v: number) => (Number.isFinite(v) ? v.toFixed(3) : "–");
const pct = (x: number, digits = 2) => `${(x * 100).toFixed(digits)}%`;
const short = (m: Mode) => m.replace("meshlane-", "");

function table(head: string[], rows: string[][]): string {
  return [`| ${head.join(" | ")} |`, `|${head.map(() => "---").join("|")}|`, ...rows.map((r) => `| ${r.join(" | ")} |`)].join("\n");
}

const SHOWN: Mode[] = ["no-mesh", "iptables", ...MESHLANE_MODES];

function slashed(p: PointSummary, modes: Mode[], f: (m: ModeFigures) => string): string {
  return modes.map((mode) => (p.modes[mode] ? f(p.modes[mode]!) : "–")).join(" / ");
}

function pointTable(rows: PointSummary[]): string {
  const d = DEFAULT_MESHLANE_MODE;
  return table(
    [
      "conns",
      `req/s ${SHOWN.map(short).join(" / ")}`,
      ...MESHLANE_MODES.map((m) => `${short(m)}÷iptables req/s`),
      `p99 ${SHOWN.map(short).join(" / ")}`,
      `${short(d)}÷iptables p99`,
      `CPU s per 1k req iptables / ${short(d)}`,
      "errors",
    ],
    rows.map((p) => [
      String(p.connections),
      slashed(p, SHOWN, (m) => `${formatRate(m.requestsPerSec)}${m.disturbed ? "†" : ""}`),
      ...MESHLANE_MODES.map((m) => (m === d ? `**${formatRatio(p.vsIptables[m]?.qps)}**` : formatRatio(p.vsIptables[m]?.qps))),
      slashed(p, SHOWN, (m) => formatUs(m.p99Us)),
      `**${formatRatio(p.vsIptables[d]?.p99)}**`,
      slashed(p, ["iptables", d], (m) => formatCpu(m.cpuSecPer1kRequests)),
      slashed(p, SHOWN, (m) => String(m.errors)),
    ]),
  );
}

const SERIES_TITLES: Record<string, string> = {
  "tcp-one-cpu": "HAProxy in TCP mode, every process on one CPU",
  "http-one-cpu": "HAProxy in HTTP mode (Envoy-like), every process on one CPU",
  "tcp-two-cpus": "HAProxy in TCP mode, client pod and server pod on different CPUs",
  "http-two-cpus": "HAProxy in HTTP mode (Envoy-like), client pod and server pod on different CPUs",
};

function seriesSection(r: BenchResults, s: Series, chartDir: string): string {
  const name = seriesName(s);
  const rows = r.summary.filter((p) => p.sidecar === s.sidecar && p.placement === s.placement);
  const cpus = r.conditions.placements[s.placement]!;
  return `## ${SERIES_TITLES[name] ?? name}

Client pod on CPU ${cpus.client}, server pod on CPU ${cpus.server}.

![QPS, ${name}](${chartDir}qps-${name}.svg)
![Latency, ${name}](${chartDir}latency-${name}.svg)

### Keep-alive connections

${pointTable(rows.filter((p) => p.connMode === "keep-alive"))}

### A new connection per request (\`Connection: close\`)

${pointTable(rows.filter((p) => p.connMode === "close"))}

† at least one repetition ran while other work took more than ${pct(DISTURBED_SHARE, 0)} of the measurement's CPUs, after every retry the run's budget allowed.
`;
}

function unregisteredSection(r: BenchResults): string {
  const costs = r.costs.filter((c) => c.mode === "unregistered");
  const qps = (c: ProgramCost) => r.summary.find((p) => p.sidecar === c.sidecar && p.placement === c.placement && p.connMode === c.connMode && p.connections === c.connections);
  return table(
    ["point", "programs' run time per request", "pods' CPU time per request", "share: median (lowest–highest)", `runs × ns per request: ${programsRun(costs).map(bare).join(" / ")}`, "req/s iptables / attached-unregistered", "req/s ratio", "req/s spread (iptables / unregistered)"],
    costs.map((c) => {
      const p = qps(c);
      const runs = (n: string) => (c.programs[n] ? `${c.programs[n]!.runsPerRequest.toFixed(2)} × ${Math.round(c.programs[n]!.nsPerRun)}` : "–");
      return [
        `${c.sidecar} ${c.placement} ${c.connMode} ×${c.connections}`,
        `${Math.round(c.bpfNsPerRequest)} ns`,
        `${(c.cpuNsPerRequest / 1000).toFixed(1)} µs`,
        `**${pct(c.share.median)}** (${pct(c.share.min)}–${pct(c.share.max)})`,
        programsRun(costs).map(runs).join(" / "),
        p?.modes.iptables && p.modes.unregistered ? `${formatRate(p.modes.iptables.requestsPerSec)} / ${formatRate(p.modes.unregistered.requestsPerSec)}` : "–",
        formatRatio(p?.vsIptables.unregistered?.qps),
        p?.modes.iptables && p.modes.unregistered ? `${pct(p.modes.iptables.qpsSpread, 0)} / ${pct(p.modes.unregistered.qpsSpread, 0)}` : "–",
      ];
    }),
  );
}

/** The programs that ran at all in these costs, in the loader's order. */
function programsRun(costs: ProgramCost[]): string[] {
  return PROGRAM_NAMES.filter((n) => costs.some((c) => (c.programs[n]?.runsPerRequest ?? 0) > 0));
}
const bare = (n: string) => n.replace("mesh_", "");

function breakdownTable(r: BenchResults): string {
  const rows = r.costs.filter((c) => c.connMode === "close" && c.placement === "one-cpu" && c.mode !== "unregistered");
  const programs = programsRun(rows);
  return table(
    ["point", "mode", ...programs.map((n) => `${bare(n)}: runs × ns`), "programs per request", "sockets paired per request", "sk_msg redirects per request", "inbound REDIRECT hits per request", "pods' CPU per request"],
    rows.map((c) => [
      `${c.sidecar} ×${c.connections}`,
      short(c.mode),
      ...programs.map((n) => (c.programs[n] ? `${c.programs[n]!.runsPerRequest.toFixed(2)} × ${Math.round(c.programs[n]!.nsPerRun)}` : "–")),
      `${Math.round(c.bpfNsPerRequest)} ns`,
      c.pairedPerRequest.toFixed(2),
      c.redirectedPerRequest.toFixed(2),
      c.inboundRedirectsPerRequest.toFixed(2),
      `${(c.cpuNsPerRequest / 1000).toFixed(1)} µs`,
    ]),
  );
}

function cpuDeltaTable(r: BenchResults): string {
  const rows = r.summary.filter((p) => p.connMode === "close" && p.placement === "one-cpu");
  return table(
    ["point", "pods' CPU per request: iptables", ...MESHLANE_MODES.map((m) => `${short(m)} (Δ vs iptables)`)],
    rows.map((p) => {
      const ipt = p.modes.iptables?.cpuSecPer1kRequests;
      return [
        `${p.sidecar} ×${p.connections}`,
        ipt === undefined ? "–" : `${(ipt * 1000).toFixed(1)} µs`,
        ...MESHLANE_MODES.map((m) => {
          const v = p.modes[m]?.cpuSecPer1kRequests;
          return v === undefined || ipt === undefined ? "–" : `${(v * 1000).toFixed(1)} µs (${v >= ipt ? "+" : ""}${((v - ipt) * 1000).toFixed(1)})`;
        }),
      ];
    }),
  );
}

function switchTable(r: BenchResults): string {
  return table(
    ["switch", "steady p99 before", "window p99 (≤ worst segment)", "window ÷ steady", "segment p99s", "req/s in the window", "SYN retransmissions client / server (steady before)", "SYNs dropped by PAWS in TIME_WAIT client / server", "other PAWS drops", "conntrack insert failed / drop", "fallbacks"],
    r.switches.map((m) => {
      const f = switchFigure(m);
      const reqs = m.segments.reduce((n, s) => n + s.requests, 0), secs = m.segments.reduce((n, s) => n + s.seconds, 0);
      const fallbacks = Object.entries(m.counters ?? {}).filter(([k]) => k.startsWith("CNT_FALLBACK_") && m.counters![k]).map(([k, v]) => `${k.replace("CNT_FALLBACK_", "").toLowerCase()} ${v}`);
      return [
        m.kind,
        formatUs(m.steadyBefore.latencyUs.p99),
        formatUs(windowP99Us(m)),
        `**${formatRatio(f.windowOverSteadyP99)}**`,
        m.segments.map((s) => formatUs(s.latencyUs.p99)).join(", "),
        formatRate(secs ? reqs / secs : 0),
        `${formatRate(m.stalls.client.synRetrans)} / ${formatRate(m.stalls.server.synRetrans)} (${formatRate(stallTotal(m.steadyStalls, "synRetrans"))})`,
        `${formatRate(m.stalls.client.pawsTimewait)} / ${formatRate(m.stalls.server.pawsTimewait)}`,
        formatRate(stallTotal(m.stalls, "pawsOther")),
        `${stallTotal(m.stalls, "conntrackInsertFailed")} / ${stallTotal(m.stalls, "conntrackDrop")}`,
        fallbacks.join(", ") || "0",
      ];
    }),
  );
}

function evidenceTable(r: BenchResults): string {
  return table(
    ["mode", "requests", "REDIRECT hits outbound / inbound", "connects steered by meshlane", "sockets paired", "sendmsg redirected per request", "fallbacks"],
    r.evidence.map((e) => [
      e.mode,
      formatRate(e.requests),
      `${formatRate(e.iptablesOutbound)} / ${formatRate(e.iptablesInbound)}`,
      formatRate(e.connectsSteered),
      formatRate(e.socketsPaired),
      e.msgRedirectedPerRequest.toFixed(2),
      formatRate(e.fallbacks),
    ]),
  );
}

function hopTable(hops: HopSummary[]): string {
  const keys = [...new Set(hops.map((h) => `${h.placement}|${h.bytes}`))];
  return table(
    ["placement", "message", "round trip p50 / p99, TCP stack", "round trip p50 / p99, sockmap", "sockmap÷stack p50", "round trips/s stack / sockmap", "redirected sendmsg per round trip (stack / sockmap)"],
    keys.flatMap((k) => {
      const stack = hops.find((h) => `${h.placement}|${h.bytes}` === k && h.path === "tcp-stack");
      const sockmap = hops.find((h) => `${h.placement}|${h.bytes}` === k && h.path === "sockmap");
      if (!stack || !sockmap) return [];
      return [[
        stack.placement,
        `${stack.bytes} B`,
        `${stack.p50Us.toFixed(1)} / ${stack.p99Us.toFixed(1)} µs`,
        `${sockmap.p50Us.toFixed(1)} / ${sockmap.p99Us.toFixed(1)} µs`,
        `**${formatRatio(sockmap.p50Us / stack.p50Us)}**`,
        `${formatRate(stack.roundTripsPerSec)} / ${formatRate(sockmap.roundTripsPerSec)}`,
        `${stack.redirectedPerRoundTrip.toFixed(2)} / ${sockmap.redirectedPerRoundTrip.toFixed(2)}`,
      ]];
    }),
  );
}

function disturbance(r: BenchResults): string {
  const n = r.measurements.length;
  const retried = r.measurements.filter((m) => m.attempts > 1).length;
  const still = r.measurements.filter((m) => m.foreignCpuShare > r.conditions.maxForeignCpuShare).length;
  return `other processes took more than ${pct(r.conditions.maxForeignCpuShare, 0)} of the measurement's CPUs during ${retried} of ${n} measurements, which were taken again; ${still} stayed above it after ${r.conditions.maxAttempts} attempts (the least disturbed attempt is kept)`;
}

/** Other benchmarks' result files, when their owners' runs left them in bench/results/. */
function otherBenchmarks(files: { name: string; path: string; command: string }[]): string {
  const lines = files.map((f) => {
    if (!existsSync(f.path)) return `- ${f.name} (\`${f.command}\`): no results file in this checkout.`;
    let summary = "";
    try {
      const j = JSON.parse(readFileSync(f.path, "utf8")) as Record<string, unknown>;
      const s = (j.summary ?? j.headline) as Record<string, unknown> | undefined;
      if (s && typeof s === "object") summary = `: ${Object.entries(s).filter(([, v]) => typeof v === "number" || typeof v === "string").map(([k, v]) => `${k} ${v}`).join(", ")}`;
    } catch {
      summary = " (unreadable)";
    }
    return `- ${f.name} (\`${f.command}\`): [${f.path.split("/").pop()}](results/${f.path.split("/").pop()})${summary}`;
  });
  return lines.join("\n");
}

/** A partial run of a data-path variant (bench --object … --label exp-…), shown beside this run's figures. */
export interface Variant {
  label: string;
  results: BenchResults;
}

function variantsSection(variants: Variant[]): string {
  if (variants.length === 0) return "";
  const d = DEFAULT_MESHLANE_MODE;
  const rows = variants.flatMap((v) =>
    v.results.summary
      .filter((p) => p.connMode === "close" && p.placement === "one-cpu" && p.modes.iptables && p.modes[d])
      .map((p) => {
        const c = v.results.costs.find((x) => x.mode === d && x.sidecar === p.sidecar && x.placement === p.placement && x.connMode === p.connMode && x.connections === p.connections);
        const ipt = p.modes.iptables!.cpuSecPer1kRequests * 1000, ml = p.modes[d]!.cpuSecPer1kRequests * 1000;
        const ns = (n: string) => (c?.programs[n] ? String(Math.round(c.programs[n]!.nsPerRequest)) : "–");
        const programs = programsRun(v.results.costs);
        return [
          v.label,
          `${p.sidecar} ×${p.connections}`,
          formatRatio(p.vsIptables[d]?.qps),
          programs.map((n) => `${bare(n)} ${ns(n)}`).join(", "),
          c ? `${Math.round(c.bpfNsPerRequest)} ns` : "–",
          c ? c.pairedPerRequest.toFixed(2) : "–",
          `${ipt.toFixed(1)} → ${ml.toFixed(1)} µs (${ml >= ipt ? "+" : ""}${(ml - ipt).toFixed(1)})`,
        ];
      }),
  );
  const switches = variants.flatMap((v) =>
    v.results.switches.map((m) => [
      v.label,
      m.kind,
      formatUs(m.steadyBefore.latencyUs.p99),
      formatUs(windowP99Us(m)),
      `**${formatRatio(switchFigure(m).windowOverSteadyP99)}**`,
      formatRate(stallTotal(m.stalls, "synRetrans")),
      formatRate(stallTotal(m.stalls, "pawsTimewait")),
    ]),
  );
  return `## Data-path variants (before / after)

Partial runs (\`npm run bench -- --quick --object FILE --label exp-NAME …\`), each with its own
iptables baseline, results in \`bench/results/exp-NAME/\`; docs/benchmarks.md says what each
variant changes. Per connection, a new connection per request, one CPU, mode ${short(d)}:

${rows.length ? table(["variant", "point", `${short(d)}÷iptables req/s`, "ns per request, by program", "programs per request", "sockets paired per request", "pods' CPU per request, iptables → meshlane"], rows) : "(no variant measured short connections)"}

${switches.length ? `Path switches:

${table(["variant", "switch", "steady p99 before", "window p99", "window ÷ steady", "SYN retransmissions", "SYNs dropped by PAWS in TIME_WAIT"], switches)}
` : ""}`;
}

export interface ReportOptions {
  /** Where the charts are, relative to the report ("results/" for bench/README.md, "" beside them). */
  chartDir: string;
  /** Result files of the other benchmarks to mention. */
  others: { name: string; path: string; command: string }[];
  variants: Variant[];
}

export function markdownReport(r: BenchResults, opts: ReportOptions): string {
  const c = r.conditions;
  const m = r.machine;
  const reps = c.plan.repetitions;
  const d = DEFAULT_MESHLANE_MODE;
  const series = [...new Map(c.plan.points.map((p) => [seriesName(p.series), p.series])).values()];
  const shortfalls = r.targets.filter((t) => !t.met);
  return `# meshlane benchmark (${c.plan.name} run)

Generated by \`npm run bench${c.plan.name === "quick" ? " -- --quick" : ""}${c.plan.name === "quick" && reps > 1 ? ` --repetitions ${reps}` : ""}\` (bench/datapath.ts); render again from
\`results.json\` with \`node --import tsx bench/render.ts\`.

- Date: ${r.date}
- Machine: ${m.nproc} × ${m.cpuModel}, ${m.memoryGiB} GiB, kernel ${m.kernel}
- Tools: ${m.versions.nginx}; ${m.versions.haproxy.replace(/ - https?:\S+/, "")}; ${m.versions.wrk.replace(/ Copyright.*/, "")}
- Each point: ${reps} repetition${reps > 1 ? "s" : ""} (median shown) of ${c.plan.warmupSeconds ? `${c.plan.warmupSeconds} s warm-up + ` : ""}${c.plan.seconds} s of wrk, modes interleaved at every point; measured processes at nice ${c.benchNice}; nginx serves ${c.bodyBytes} B
- Load average (1 min) at start / end: ${c.loadAverage.start.toFixed(2)} / ${c.loadAverage.end.toFixed(2)}; run took ${Math.round(c.durationSec)} s
- Disturbance: ${disturbance(r)}
${c.object ? `- **Data path: ${c.object}**, not the build's bpf/meshlane.bpf.o\n` : ""}- Redirect modes: ${c.redirectModesHonoured ? "the data path honoured interception.redirect (mode none paired no socket)" : "**the data path of this build did not honour interception.redirect** (mode none still paired sockets), so the three meshlane modes measured the same data path"}

**HAProxy stands in for Envoy.** Envoy cannot be installed here. HAProxy in TCP mode
forwards bytes and does much less per request than Envoy, so the kernel work meshlane
removes is a large share of each request and its ratios are an upper bound. HAProxy in
HTTP mode parses every request and response and keeps upstream connections alive across
downstream ones, as Envoy's HTTP connection manager and connection pool do: **read the
HTTP-mode series for Istio**. Envoy does still more per request (filters, stats,
tracing headers), so even those ratios lean optimistic.

## Targets (issue 14)

${table(["target", "met", "figures"], r.targets.map((t) => [t.target, t.met ? "yes" : "**no**", t.values.map((v) => `${v.point}: ${formatTarget(t, v.value)}${v.disturbed ? "†" : ""}`).join(", ")]))}

† a mode at this point was measured while other work took more than ${pct(DISTURBED_SHARE, 0)} of its CPUs (after every retry): the figure says little.

${shortfalls.length ? `## What falls short, and why

${shortfallNotes(r)}
` : ""}
${series.map((s) => seriesSection(r, s, opts.chartDir)).join("\n")}
## What the programs cost, measured by the kernel

With \`kernel.bpf_stats_enabled=1\` for the run (restored after), the kernel adds each
program run's duration to the program's \`run_time_ns\` and counts it in \`run_cnt\`
(\`bpftool prog show\`). Read before and after every measurement of an attached mode,
their difference is the programs' exact run time in it; the share is that time over the
CPU time the client and server pods' cgroups used in the same run (wrk, sidecars, nginx,
and the kernel's work in their context).

### Pods that are not registered

Programs attached to the node's pods, no pod registered: every connect, sock_ops event
and getsockopt of these pods runs a program that finds no registered pod and returns.
Host processes sit outside the pods' cgroup the programs are attached to, so no program
ever runs for them (their cost is zero by construction, not by measurement).

${unregisteredSection(r)}

### Per connection, a new connection per request (one CPU)

Runs per request × ns per run, per program (one request = one application connection,
which is three TCP connections: app → own sidecar, sidecar → sidecar, sidecar → app).

${breakdownTable(r)}

The pods' CPU time per request against iptables (what the kernel and user space spent in
all, in the same runs):

${cpuDeltaTable(r)}

## Switching paths under load

One pod pair of its own (TCP sidecars, one CPU, the same pod sysctls as every pair),
${c.plan.switches.connections} wrk connections with a new connection per request. Before each switch,
${c.plan.switches.steadySeconds} s of steady state on the old path; after it, ${c.plan.switches.windowSeconds} s measured as wrk runs of
${c.plan.switches.segmentSeconds} s. register: attached, pods unregistered (the iptables path) → registered
(mode ${short(d)}); deregister: back to unregistered, programs attached; detach: \`detach\` with its
${2} s drain. SYN retransmissions and PAWS rejections are the pods' kernel counters (TcpExt)
over the window.

${switchTable(r)}

${variantsSection(opts.variants)}
## Which path the traffic took (counters summed over the measured runs)

${evidenceTable(r)}

## Per hop: request/response over one loopback TCP connection

${hopTable(r.hop)}

## Method

- **Topology** (docs/design.md, "Test topology"): pods are network namespaces on one bridge
  with kubelet-named cgroups. The server pod runs nginx-light (one process, a 1 KiB
  static file, no access log); the client pod runs wrk (one thread, \`--latency\`).
- **Modes**, in one run: *no-mesh* (a pair without sidecars or Istio rules), *iptables*
  (Istio's \`ISTIO_*\` nat chains and HAProxy sidecars as uid 1337 on 15001/15006, no
  meshlane program attached), *meshlane-proxy / -all / -none* (a pair configured exactly
  like the iptables one, programs attached, both pods registered with
  \`interception.redirect\` = proxy (the default), all, none), and *unregistered* (the
  iptables pair with the programs attached and no pod registered). iptables and meshlane
  use separate pod pairs, so that one path's conntrack and TIME_WAIT entries never meet
  the other's (that meeting is measured on its own, in the switch series).
- **Sidecars**: HAProxy 2.6 in TCP mode, and in HTTP mode (\`http-reuse always\`,
  keep-alive to the upstream), each on its own pod pairs; no-mesh is the same plain pair
  for both.
- **Placement**: one-cpu puts every process of a measurement (wrk, both sidecars, nginx)
  on CPU ${c.benchCpu}; two-cpus puts the client pod's processes on CPU ${c.placements["two-cpus"]?.client} and the server pod's
  on CPU ${c.placements["two-cpus"]?.server}. The orchestrator runs on CPU 0. One CPU gives the cost per request at
  saturation; two CPUs add the cross-CPU wakeups pods on a real node have.
- **A shared machine**: measured processes run at nice ${c.benchNice}; busy time of the
  measurement's CPUs beyond what the pods used is recorded for every measurement, and
  above ${pct(c.maxForeignCpuShare, 0)} the measurement is taken again (at most ${c.maxAttempts} times, within a
  ${c.plan.retryBudgetSec} s budget per run, the least disturbed attempt kept).
- **CPU s per 1k req**: CPU time of the client and server pods' cgroups (cgroup v2
  \`cpu.stat\`) per 1,000 requests. This kernel has no IRQ time accounting, so softirq
  work is charged to them; work deferred to kworkers (e.g. freeing a psock) is not.
- **Per pod, in every pod alike**: \`tcp_tw_reuse=1\`, ports 1024–65000 and a 1 s conntrack
  TIME_WAIT timeout, so that thousands of new connections a second exhaust neither
  ephemeral ports nor the machine-wide conntrack table.
- **Latency** is wrk's: from writing a request to reading its response; with a new
  connection per request it leaves out wrk's own \`connect()\`.
- **Per hop**: \`bench/pingpong.c\` ping-pongs messages over one TCP connection between a
  uid-1337 client and a server in one pod (the sidecar-to-app hop), paired into the
  sockhash (registered, mode all) or over the TCP stack (unregistered).

## Other benchmarks

${otherBenchmarks(opts.others)}
`;
}

const formatTarget = (t: TargetCheck, v: number | null) => (t.unit === "share" ? (v === null ? "–" : pct(v)) : formatRatio(v));

function shortfallNotes(r: BenchResults): string {
  const notes: string[] = [];
  for (const t of r.targets.filter((x) => !x.met)) {
    const missed = t.values.filter((v) => v.value !== null).map((v) => `${v.point} ${formatTarget(t, v.value)}`);
    notes.push(`- ${t.target}: missed at ${missed.length ? missed.join(", ") : "every point (no figure)"}.`);
  }
  if (!r.conditions.redirectModesHonoured) {
    notes.push("- The redirect modes were measured on a data path that ignores them: the figures of all three meshlane modes are the `all` behaviour.");
  }
  notes.push("- Where the time goes and what would close each gap: [docs/benchmarks.md](../docs/benchmarks.md) (causes measured, data-path changes proposed and measured as variants).");
  const reps = r.conditions.plan.repetitions;
  if (r.conditions.plan.name === "quick")
    notes.push(
      reps > 1
        ? `- A quick run repeated: ${reps} short repetitions per point (the median is shown), so single figures can still be off by several percent; read the full run's where there is one.`
        : "- A quick run: one short repetition per point, so single figures can be off by tens of percent; read the full run's.",
    );
  return notes.join("\n");
}
