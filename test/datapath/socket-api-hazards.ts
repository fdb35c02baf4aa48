// The hazards of redirect mode `all` (bytes redirected into application sockets),
// as the matrix shows them on the kernels we run, and the matrix as a Markdown
// table for docs/socket-api.md. socket-api.test.ts asserts that in mode `all`
// exactly these rows differ from iptables.

import { differences, SIZES, type Difference, type Observation, type Row } from "./socket-api-matrix.js";

export interface Hazard {
  /** What an application sees, in a sentence for the docs. */
  what: string;
  rows: string[];
  /** Every line of `side` (default: the row's application end) that differs from iptables must match this. */
  shows: RegExp;
  side?: "client" | "server" | "forwarder";
  /** A race: seen in some runs only, so the test does not insist that it shows. */
  intermittent?: boolean;
}

/** Row ids of these application ends and row names, at both sizes. */
function rowsOf(ends: string[], whats: string[]): string[] {
  return SIZES.flatMap((size) => ends.flatMap((end) => whats.map((what) => `${end} ${what} ${size}`)));
}

const BLOCKING_READS = ["recv=read", "recv=readv", "recv=recv", "recv=recvmsg", "recv=recvmmsg", "recv=peek", "recv=waitall", "recv=rcvlowat", "blocking read, peer closes late", "blocking read with SO_RCVTIMEO, peer closes late"];

/** Observed on kernel 6.18 with bytes redirected into application sockets (mode all, and every pod before modes existed). */
export const HAZARDS_OF_ALL: Hazard[] = [
  {
    what: "splice(2) from the socket finds nothing: the application reads 0 bytes, then end-of-file; a splice relay (Go's io.Copy between TCP connections) passes on nothing",
    rows: [...rowsOf(["server", "client"], ["recv=splice"]), ...rowsOf(["forwarder"], ["copy=splice"])],
    shows: /rx=0 .*end=eof/,
  },
  {
    what: "MSG_ZEROCOPY sends never get their completion notifications, so an application that waits for them before reusing its buffers waits forever",
    rows: rowsOf(["server", "client"], ["send=zerocopy"]),
    shows: /zerocopy=completions-missing/,
  },
  {
    what: "a blocking read (read, readv, recv, recvmsg, recvmmsg, MSG_PEEK, MSG_WAITALL, with or without SO_RCVTIMEO) returns -1 EAGAIN instead of waiting for the data or end-of-file; a blocking relay stops half-way",
    rows: [...rowsOf(["server", "client"], BLOCKING_READS), ...rowsOf(["forwarder"], ["copy=read"])],
    shows: /end=err:EAGAIN|reply-leg=err:EAGAIN|end=err:EAGAIN|^rx=\d+ .*end=eof/,
    intermittent: true,
  },
  {
    what: "poll says readable but FIONREAD says 0 bytes, so an application that sizes its reads by FIONREAD takes the connection for closed and leaves the data unread",
    rows: rowsOf(["server", "client"], ["recv=fionread"]),
    shows: /fionread-0-with-data|fionread=more-than-readable/,
    intermittent: true,
  },
  {
    what: "MSG_WAITALL returns before the requested length has arrived",
    rows: rowsOf(["server", "client"], ["recv=waitall"]),
    shows: /waitall-first=/,
    intermittent: true,
  },
  {
    what: "SO_RCVLOWAT is not honoured: reads return fewer bytes than the low-water mark before end-of-file",
    rows: rowsOf(["server", "client"], ["recv=rcvlowat"]),
    shows: /lowat=under/,
    intermittent: true,
  },
  {
    what: "TCP Fast Open: bytes written after sendto(MSG_FASTOPEN) can overtake the SYN's data (when the listener does not accept it and the kernel sends it again after the handshake), so the peer receives the stream out of order",
    rows: rowsOf(["client"], ["TFO sendto(MSG_FASTOPEN)", "TFO TCP_FASTOPEN_CONNECT"]),
    shows: /intact=false firstBad=/,
    side: "server",
    intermittent: true,
  },
];

/**
 * What mode all's run shows that the hazard list does not explain: rows that differ without a
 * hazard, differing lines of a hazard row unlike its hazards, and steady hazards that did not show.
 */
export function unexplained(rows: Row[], diffs: Difference[], hazards: Hazard[]): string[] {
  const problems: string[] = [];
  for (const row of rows) {
    const mine = diffs.filter((d) => d.row === row.id);
    const declared = hazards.filter((h) => h.rows.includes(row.id));
    if (!mine.length) {
      for (const h of declared.filter((h) => !h.intermittent)) problems.push(`${row.id}: same as iptables, but declared: ${h.what}`);
      continue;
    }
    if (!declared.length) {
      for (const d of mine) problems.push(`${row.id}: ${d.side} differs, no hazard declared: ${JSON.stringify(d.mode)} (iptables ${JSON.stringify(d.iptables)})`);
      continue;
    }
    for (const d of mine) {
      const checks = declared.filter((h) => (h.side ?? row.app) === d.side);
      if (!checks.length) continue; // another end's consequence of the application's own difference
      for (const line of d.mode.filter((l) => !d.iptables.includes(l))) {
        if (!checks.some((h) => h.shows.test(line))) problems.push(`${row.id}: ${d.side} saw "${line}", which none of its hazards explains`);
      }
    }
  }
  return problems;
}

/** Cell text of one observation: its distinct lines without hashes, ends joined. */
function cell(obs: Observation, sides: (keyof Observation)[]): string {
  return sides
    .filter((s) => obs[s].length)
    .map((s) => `${s}: ${[...new Set(obs[s].map((l) => l.replace(/ hash=\S+/, "").replace(/ intact=true/, "")))].join(" / ")}`)
    .join("; ");
}

export function matrixMarkdown(rows: Row[], results: Map<string, Map<string, Observation>>): string {
  const base = results.get("iptables")!;
  const modes = [...results.keys()].filter((m) => m !== "iptables");
  const lines = [`| row | iptables | ${modes.join(" | ")} |`, `|---|---|${modes.map(() => "---|").join("")}`];
  for (const row of rows) {
    const b = base.get(row.id)!;
    const cells = modes.map((m) => {
      const d = differences(new Map([[row.id, b]]), new Map([[row.id, results.get(m)!.get(row.id)!]]));
      return d.length ? `**differs** — ${cell(results.get(m)!.get(row.id)!, d.map((x) => x.side))}` : "same";
    });
    lines.push(`| ${row.id} | ${cell(b, [row.app === "forwarder" ? "forwarder" : row.app])} | ${cells.join(" | ")} |`);
  }
  return lines.join("\n") + "\n";
}
