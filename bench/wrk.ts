// The HTTP load generator: wrk's command line and what its --latency report says.
// One wrk thread, since wrk is pinned to a single CPU; more threads would only
// take turns on it.

export type ConnectionMode = "keep-alive" | "close";

export interface WrkSpec {
  url: string;
  connections: number;
  seconds: number;
  mode: ConnectionMode;
}

export interface WrkResult {
  requests: number;
  seconds: number;
  requestsPerSec: number;
  latencyUs: { p50: number; p90: number; p99: number };
  /** Connect, read, write and timeout errors plus non-2xx/3xx answers: anything but a good response. */
  errors: number;
}

export function wrkArgv(spec: WrkSpec): string[] {
  // "Connection: close" makes nginx close after each response, so wrk opens a new
  // connection for every request: the handshake-heavy half of the benchmark.
  const close = spec.mode === "close" ? ["-H", "Connection: close"] : [];
  return ["wrk", "-t1", `-c${spec.connections}`, `-d${spec.seconds}s`, "--latency", ...close, spec.url];
}

const TIME_UNITS_US: Record<string, number> = { us: 1, ms: 1e3, s: 1e6, m: 60e6, h: 3600e6 };

/** wrk prints durations as "<number><unit>" with unit us, ms, s, m or h. */
export function parseDurationUs(text: string): number {
  const m = /^([\d.]+)(us|ms|s|m|h)$/.exec(text.trim());
  if (!m) throw new Error(`not a wrk duration: ${JSON.stringify(text)}`);
  return Number(m[1]) * TIME_UNITS_US[m[2]!]!;
}

function percentile(out: string, p: number): number {
  const m = new RegExp(`^\\s*${p}%\\s+(\\S+)\\s*$`, "m").exec(out);
  if (!m) throw new Error(`wrk output has no ${p}% latency line (was --latency given?)`);
  return parseDurationUs(m[1]!);
}

export function parseWrk(out: string): WrkResult {
  const total = /^\s*(\d+) requests in ([\d.]+\w+),/m.exec(out);
  const rate = /^Requests\/sec:\s+([\d.]+)/m.exec(out);
  if (!total || !rate) throw new Error(`wrk output has no request totals:\n${out}`);
  const sock = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  const non2xx = /Non-2xx or 3xx responses: (\d+)/.exec(out);
  const errors = (sock ? sock.slice(1, 5).reduce((s, n) => s + Number(n), 0) : 0) + (non2xx ? Number(non2xx[1]) : 0);
  return {
    requests: Number(total[1]),
    seconds: parseDurationUs(total[2]!) / 1e6,
    requestsPerSec: Number(rate[1]),
    latencyUs: { p50: percentile(out, 50), p90: percentile(out, 90), p99: percentile(out, 99) },
    errors,
  };
}
