// The socket-API test application (lab/apps/sockapp.c): built with clang once per
// directory the caller names (a node's work directory), its command lines written
// from typed options, and its one-line JSON reports parsed.

import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { REPO } from "../repo.js";

const SOURCE = join(REPO, "lab", "apps", "sockapp.c");

export const RECV_APIS = ["read", "readv", "recv", "recvmsg", "recvmmsg", "peek", "waitall", "splice", "fionread", "rcvlowat", "uring", "epoll"] as const;
export const SEND_APIS = ["write", "writev", "sendfile", "splice", "zerocopy"] as const;
export type RecvApi = (typeof RECV_APIS)[number];
export type SendApi = (typeof SEND_APIS)[number];

/** One end's behaviour; absent fields take sockapp's defaults (read, write, connect, close). */
export interface EndOptions {
  recv?: RecvApi;
  send?: SendApi;
  conn?: "connect" | "tfo-sendto" | "tfo-connect";
  end?: "close" | "rdwr" | "linger0";
  first?: "client" | "server";
  delay?: number;
  rcvtimeo?: number;
}

/** What one end reported for one connection (forwarder: rx = bytes copied client→server, tx = back). */
export interface Report {
  side: "client" | "server" | "forwarder";
  id: string;
  rx?: number;
  hash?: string;
  intact?: boolean;
  firstBad?: number;
  end: string;
  tx?: number;
  txErr?: string;
  local?: string;
  peer?: string;
  extra?: string;
  ms?: number;
}

/** Compiles sockapp into dir unless it is there already; returns its path. */
export function buildSockapp(dir: string): string {
  const out = join(dir, "sockapp");
  if (existsSync(out)) return out;
  const r = spawnSync("clang", ["-O2", "-Wall", "-Werror", "-o", out, SOURCE, "-luring", "-pthread"], { encoding: "utf8" });
  if (r.status !== 0) throw new Error(`building ${SOURCE} failed (clang and liburing-dev are needed): ${r.stderr}`);
  return out;
}

/** One SPEC argument: key=value pairs, in a stable order. */
export function specArg(fields: Record<string, string | number | undefined>): string {
  return Object.entries(fields)
    .filter(([, v]) => v !== undefined)
    .map(([k, v]) => {
      if (/[,=]/.test(String(v))) throw new Error(`sockapp option ${k}=${v}: values may not contain ',' or '='`);
      return `${k}=${v}`;
    })
    .join(",");
}

/** Reports in sockapp's stdout; any other line is an error (sockapp prints nothing else but "ready"). */
export function parseReports(stdout: string): Report[] {
  return stdout
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l && l !== "ready")
    .map((l) => {
      try {
        return JSON.parse(l) as Report;
      } catch {
        throw new Error(`sockapp printed a line that is not a report: ${l}`);
      }
    });
}
