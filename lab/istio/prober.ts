// The differential test's client, one long-running process per pod: reads a JSON array
// of [host, port] per line on stdin, connects to each (16 at a time), and answers one JSON
// line with what each reached: the first line the listener wrote ("<tag> <how> <address>"),
// "refused", "timeout" or "error <code>".
import { connect } from "node:net";
import { createInterface } from "node:readline";

const TIMEOUT_MS = 2000;
const CONCURRENCY = 16;

function probe(host: string, port: number): Promise<string> {
  return new Promise((resolve) => {
    const s = connect({ host, port });
    let buf = "";
    const done = (r: string) => {
      s.destroy();
      resolve(r);
    };
    s.setTimeout(TIMEOUT_MS, () => done("timeout"));
    s.on("data", (d) => {
      buf += d.toString();
      const nl = buf.indexOf("\n");
      if (nl >= 0) done(buf.slice(0, nl));
    });
    s.on("end", () => done(buf === "" ? "closed" : buf));
    s.on("error", (e: NodeJS.ErrnoException) => done(e.code === "ECONNREFUSED" ? "refused" : `error ${e.code}`));
  });
}

for await (const line of createInterface({ input: process.stdin })) {
  const targets = JSON.parse(line) as [string, number][];
  const out: string[] = new Array(targets.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (next < targets.length) {
        const i = next++;
        out[i] = await probe(targets[i]![0], targets[i]![1]);
      }
    }),
  );
  process.stdout.write(`${JSON.stringify(out)}\n`);
}
