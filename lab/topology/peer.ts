// The "app" of a test pod: a TCP echo server, and a client that pushes payloads
// through it and checks every byte came back in order. Runs as its own process
// inside a pod's network namespace and cgroup (lab/topology/node.ts starts it).
//
//   peer.ts serve <port>                 echo each connection; close when the client half-closes
//   peer.ts send <host> <port> <json>    run transfers, print one JSON report on stdout
//
// The JSON of `send`: { sizes: number[], concurrency: number, holdMs?: number,
//   readDelayMs?: number, localAddress?: string, localPort?: number }
// `serve` prints "accepted <address>:<port>" for every connection.
// holdMs pauses between chunks so that a transfer is still running when a test
// disturbs the data path (SIGKILL of the loader, detach); readDelayMs leaves the
// echo unread for a while, so bytes wait in the client's receive queue meanwhile.
//
// The client half-closes only once the whole echo is back. HAProxy, the sidecar
// stand-in, loses a client's last bytes when the client's FIN arrives while HAProxy
// has stopped reading that socket (its buffer full) but still writes to it (the
// echo): it takes the poller's hang-up without a read event for end of data
// (raw_sock's FD_POLL_HUP shortcut), shuts the server side and closes the socket
// over unread bytes (TcpExtTCPAbortOnClose; the app reads ECONNRESET or a short
// echo). Seen on Istio's iptables path with nothing of meshlane loaded, in HAProxy
// 2.6.12 and 3.0.11 alike (docs/kernels.md). Envoy is not HAProxy; a half-close
// with bytes still in flight is covered by the socket-API matrix, whose
// request-then-reply pattern leaves the sidecar nothing to write meanwhile.

import { createHash, randomBytes } from "node:crypto";
import { connect, createServer, type Socket } from "node:net";

export interface Transfer {
  size: number;
  /** Epoch milliseconds when the connection was opened. */
  start: number;
  ok: boolean;
  received: number;
  error?: string;
  ms: number;
  /** The app's view of its socket once connected: getsockname and getpeername, as "address port". */
  local?: string;
  remote?: string;
}

function serve(port: number): void {
  const server = createServer((sock) => {
    process.stdout.write(`accepted ${sock.remoteAddress}:${sock.remotePort}\n`);
    // Echo as bytes arrive (full duplex); when the client half-closes, pipe ends our side: server-side close.
    sock.pipe(sock);
    sock.on("error", () => sock.destroy());
  });
  server.listen(port, "::", () => process.stdout.write(`listening ${port}\n`)); // dual-stack
  process.on("SIGTERM", () => process.exit(0));
}

export interface Spec {
  sizes: number[];
  concurrency: number;
  holdMs?: number;
  readDelayMs?: number;
  localAddress?: string;
  localPort?: number;
}

function transfer(host: string, port: number, size: number, spec: Spec): Promise<Transfer> {
  const { holdMs = 0, readDelayMs = 0 } = spec;
  const started = Date.now();
  const payload = randomBytes(size);
  const want = createHash("sha256").update(payload).digest("hex");
  return new Promise((resolve) => {
    const got = createHash("sha256");
    let received = 0;
    let allEchoed = () => {};
    const echoed = new Promise<void>((r) => (allEchoed = r));
    if (size === 0) allEchoed();
    let done = false;
    let view: { local?: string; remote?: string } = {};
    const finish = (error?: string) => {
      if (done) return;
      done = true;
      allEchoed();
      const ok = !error && received === size && got.digest("hex") === want;
      resolve({ size, start: started, ok, received, ms: Date.now() - started, ...view, ...(error ? { error } : ok ? {} : { error: `checksum or length mismatch (${received}/${size} bytes)` }) });
    };
    const local = { ...(spec.localAddress ? { localAddress: spec.localAddress } : {}), ...(spec.localPort ? { localPort: spec.localPort } : {}) };
    const sock: Socket = connect({ host, port, ...local }, async () => {
      view = { local: `${sock.localAddress} ${sock.localPort}`, remote: `${sock.remoteAddress} ${sock.remotePort}` };
      if (readDelayMs) {
        sock.pause();
        setTimeout(() => sock.resume(), readDelayMs);
      }
      const chunk = Math.max(1, Math.ceil(size / 8));
      for (let off = 0; off < size; off += chunk) {
        if (!sock.write(payload.subarray(off, off + chunk))) await new Promise((r) => sock.once("drain", r));
        if (holdMs) await new Promise((r) => setTimeout(r, holdMs));
      }
      await echoed;
      if (!done) sock.end(); // the server's close follows
    });
    sock.on("data", (d: Buffer) => {
      received += d.length;
      got.update(d);
      if (received >= size) allEchoed();
    });
    sock.on("end", () => finish());
    sock.on("error", (e) => finish(e.message));
    sock.setTimeout(60_000, () => {
      finish("timed out after 60 s");
      sock.destroy();
    });
  });
}

async function send(host: string, port: number, spec: Spec) {
  const queue = [...spec.sizes];
  const results: Transfer[] = [];
  await Promise.all(
    Array.from({ length: spec.concurrency }, async () => {
      for (let size = queue.shift(); size !== undefined; size = queue.shift()) {
        results.push(await transfer(host, port, size, spec));
      }
    }),
  );
  process.stdout.write(JSON.stringify(results) + "\n");
}

const [mode, ...args] = process.argv.slice(2);
if (mode === "serve") serve(Number(args[0]));
else if (mode === "send") await send(args[0]!, Number(args[1]), JSON.parse(args[2]!));
else {
  process.stderr.write("usage: peer.ts serve <port> | send <host> <port> <json>\n");
  process.exit(2);
}
