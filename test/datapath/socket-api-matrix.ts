// The socket-API matrix as data: its rows (which end is the application under test
// and which socket API it uses), what of a report is "what the application sees",
// the comparison with the iptables run, and the hazards declared for redirect mode
// `all`. Pure: socket-api.test.ts runs the rows and asserts with these functions.

import type { EndOptions, RecvApi, Report, SendApi } from "../../lab/apps/sockapp.js";

export const SIZES = [1000, 200_000] as const;

export interface Row {
  /** Unique, stable: "<app end> <what it does> <size>"; the hazard list names rows by it. */
  id: string;
  /** Which end is the application under test; the other end (and the forwarder's peers) read and write plainly. */
  app: "server" | "client" | "forwarder";
  size: number;
  rep: number;
  client: EndOptions;
  server: EndOptions;
  /** Forwarder rows: the client reaches the server through a relay app in a third pod that copies this way. */
  forward?: "splice" | "read";
  /** Also compare the sockets' own names (getsockname/getpeername) as the applications see them. */
  names?: boolean;
}

/** How many times each row runs per mode: enough for a race to show, bounded for CI. */
const REP = 3;
/** Rows about a blocking read while the peer closes run this often: the EAGAIN of issue 9 was seen once in four runs. */
const RACE_REP = 12;
/** The peer's pause before it closes, so that the application is blocked in its read when the close comes. */
const SLOW_CLOSE_MS = 150;

const RECV_ROWS: RecvApi[] = ["read", "readv", "recv", "recvmsg", "recvmmsg", "peek", "waitall", "splice", "fionread", "rcvlowat", "uring", "epoll"];
const SEND_ROWS: SendApi[] = ["writev", "sendfile", "splice", "zerocopy"];

/**
 * The end that is not under test reads as event loops do (non-blocking, woken by epoll), which is
 * also how the sidecars read: so a row shows the API of its application end and nothing else.
 */
const PLAIN: EndOptions = { recv: "epoll" };

function endRows(app: "server" | "client", size: number): Row[] {
  const other = app === "server" ? "client" : "server";
  const row = (what: string, mine: EndOptions, theirs: EndOptions = {}, rep = REP): Row => ({
    id: `${app} ${what} ${size}`,
    app,
    size,
    rep,
    client: app === "client" ? mine : { ...PLAIN, ...theirs },
    server: app === "server" ? mine : { ...PLAIN, ...theirs },
  });
  // The application reads while the peer is slow to close: end-of-file must be 0, never EAGAIN.
  const slow = { delay: SLOW_CLOSE_MS };
  // Sending second lets the application be the end that closes last (shutdown, reset) in either role.
  const second = app === "server" ? { first: "client" as const } : { first: "server" as const };
  // Rows about sending and closing read with epoll at both ends, so that they show only what they are about.
  return [
    ...RECV_ROWS.map((recv) => row(`recv=${recv}`, { recv })),
    ...SEND_ROWS.map((send) => row(`send=${send}`, { ...PLAIN, send })),
    row("blocking read, peer closes late", { recv: "read" }, slow, RACE_REP),
    row("blocking read with SO_RCVTIMEO, peer closes late", { recv: "read", rcvtimeo: 5000 }, slow, RACE_REP),
    row(`half-close by the ${other}, then reply`, { ...PLAIN, ...second }, second),
    row(`half-close by the ${app} first`, { ...PLAIN, first: app }, { first: app }),
    row("shutdown(SHUT_RDWR) then close", { ...PLAIN, ...second, end: "rdwr" }, second),
    row("SO_LINGER 0 reset after sending", { ...PLAIN, ...second, end: "linger0", delay: 100 }, second),
    ...(app === "client"
      ? [row("TFO sendto(MSG_FASTOPEN)", { ...PLAIN, conn: "tfo-sendto" }), row("TFO TCP_FASTOPEN_CONNECT", { ...PLAIN, conn: "tfo-connect" })]
      : []),
  ];
}

export function matrixRows(): Row[] {
  const rows: Row[] = [];
  for (const size of SIZES) {
    rows.push(...endRows("server", size), ...endRows("client", size));
    for (const forward of ["splice", "read"] as const) {
      rows.push({ id: `forwarder copy=${forward} ${size}`, app: "forwarder", size, rep: REP, client: PLAIN, server: PLAIN, forward });
    }
  }
  rows.push({ id: "both getsockname/getpeername 1000", app: "client", size: 1000, rep: REP, client: PLAIN, server: PLAIN, names: true });
  return rows;
}

/** Connections one run of the row opens: a forwarder row's relay opens its own to the server. */
export function connectionsOf(row: Row): number {
  return row.rep * (row.forward ? 2 : 1);
}

/** What the application of one end saw of one connection, as one comparable line. Times never count. */
export function observed(r: Report, names: boolean): string {
  if (r.end.startsWith("connect:")) return `connect failed ${r.end.slice(8)}`;
  const parts = [`rx=${r.rx}`, `hash=${r.hash ?? "-"}`, `intact=${r.intact ?? "-"}`];
  // Where the stream first went wrong tells a reordering (early offset, full length) from a loss.
  if (r.firstBad !== undefined && r.firstBad >= 0 && r.firstBad < (r.rx ?? 0)) parts.push(`firstBad=${r.firstBad}`);
  parts.push(`end=${r.end}`, `tx=${r.tx}`);
  if (r.txErr) parts.push(`txErr=${r.txErr}`);
  if (r.extra) parts.push(r.extra);
  // The well-known end of each name is compared; the ephemeral port the kernel picked is not.
  if (names && r.side === "client") parts.push(`local=${host(r.local)}`, `peer=${r.peer}`);
  if (names && r.side === "server") parts.push(`local=${r.local}`, `peer=${host(r.peer)}`);
  return parts.join(" ");
}

function host(addr: string | undefined): string {
  return addr ? addr.replace(/:\d+$/, "") : "-";
}

/** One row's observations per end, each the sorted lines of its connections. */
export type Observation = Record<Report["side"], string[]>;

export function observe(row: Row, reports: Report[]): Observation {
  const obs: Observation = { client: [], server: [], forwarder: [] };
  for (const r of reports) obs[r.side].push(observed(r, row.names === true));
  for (const side of Object.keys(obs) as Report["side"][]) obs[side].sort();
  return obs;
}

export interface Difference {
  row: string;
  side: Report["side"];
  iptables: string[];
  mode: string[];
}

/** Every end of every row whose observations differ from the iptables run's. */
export function differences(baseline: Map<string, Observation>, run: Map<string, Observation>): Difference[] {
  const out: Difference[] = [];
  for (const [row, base] of baseline) {
    const got = run.get(row) ?? { client: [], server: [], forwarder: [] };
    for (const side of ["client", "server", "forwarder"] as const) {
      if (JSON.stringify(base[side]) !== JSON.stringify(got[side])) out.push({ row, side, iptables: base[side], mode: got[side] });
    }
  }
  return out;
}

/** Rows whose observations are not the same in every repetition: the row itself is not deterministic. */
export function unsteadyRows(run: Map<string, Observation>): string[] {
  return [...run].filter(([, obs]) => Object.values(obs).some((lines) => new Set(lines).size > 1)).map(([row]) => row);
}
