// The app of the benchmark's server pods: nginx-light serving one small static
// file, one worker, from a directory of its own. A C server that answers from
// the page cache keeps the app's share of each request small, so what differs
// between modes is the mesh.

import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import type { TestPod } from "../lab/topology/node.js";
import { run } from "../lab/topology/run.js";

export const APP_PORT = 8080;
export const BODY_BYTES = 1024;

export function nginxConfig(dir: string, port: number): string {
  // master_process off: one process, so taskset pins all of nginx and the pod's
  // cgroup holds nothing else of it. access_log off: no disk writes per request.
  return `daemon off;
master_process off;
worker_processes 1;
pid ${join(dir, "nginx.pid")};
error_log stderr warn;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 1000000;
  server {
    listen ${port} backlog=4096;
    root ${join(dir, "www")};
  }
}
`;
}

/** Starts nginx in `pod` pinned to `cpus`; resolves once it accepts connections. */
export async function startNginx(pod: TestPod, dir: string, cpus: string, port = APP_PORT): Promise<void> {
  mkdirSync(join(dir, "www"), { recursive: true });
  writeFileSync(join(dir, "www", "index.html"), "x".repeat(BODY_BYTES - 1) + "\n");
  const conf = join(dir, "nginx.conf");
  writeFileSync(conf, nginxConfig(dir, port));
  const child = pod.spawn(["taskset", "-c", cpus, "nginx", "-p", dir, "-c", conf, "-e", "stderr"]);
  let err = "";
  child.stderr!.on("data", (d) => (err += d));
  for (let i = 0; i < 100; i++) {
    const r = await run("ip", ["netns", "exec", pod.netns, "ss", "-Htln", `sport = :${port}`]);
    if (r.stdout.trim()) return;
    if (child.exitCode !== null) throw new Error(`nginx in pod ${pod.name} exited with ${child.exitCode}: ${err.trim()}`);
    await sleep(50);
  }
  throw new Error(`nginx in pod ${pod.name} did not listen on port ${port}: ${err.trim()}`);
}
