import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { once } from "node:events";
import { parseServeArgs, USAGE, UsageError, type ServeOptions } from "../../webhook/options.js";
import { podReview } from "../../lab/istio-fixtures.js";
import { HttpsClient } from "./helpers/https.js";

const CLI = new URL("../../webhook/cli.ts", import.meta.url).pathname;
const serve = (args: string[]): ServeOptions => (parseServeArgs(["serve", ...args]) as { options: ServeOptions }).options;

test("defaults: port 9443, 6 MiB body limit, stdout audit, Service SANs, files issued elsewhere", () => {
  const o = serve([]);
  assert.equal(o.port, 9443);
  assert.equal(o.bodyLimit, 6 * 1024 * 1024);
  assert.equal(o.auditLog, "stdout");
  assert.equal(o.selfSigned, false);
  assert.deepEqual(o.names, ["meshlane-webhook.meshlane-system.svc", "meshlane-webhook.meshlane-system.svc.cluster.local"]);
  assert.equal(o.certValidityMs, 90 * 86_400_000);
  assert.equal(o.renewBeforeMs, 30 * 86_400_000);
});

test("flags are read and checked", () => {
  const o = serve(["--port", "8443", "--body-limit", "2048", "--audit-log", "/var/log/a.log", "--san", "127.0.0.1", "--san", "localhost", "--self-signed", "--cert-secret", "s"]);
  assert.equal(o.port, 8443);
  assert.equal(o.bodyLimit, 2048);
  assert.deepEqual(o.auditLog, { file: "/var/log/a.log" });
  assert.ok(o.names.includes("127.0.0.1") && o.names.includes("localhost"));
  assert.equal(o.certSecret, "s");
  assert.throws(() => serve(["--port", "70000"]), /--port: "70000" is not an integer in 0-65535/);
  assert.throws(() => serve(["--cert-validity", "soon"]), /--cert-validity: "soon" is not a duration/);
  assert.throws(() => serve(["--cert-validity", "1d", "--renew-before", "2d"]), /--renew-before must be shorter/);
  assert.throws(() => serve(["--cert-secret", "s"]), /needs --self-signed/);
  assert.throws(() => serve(["--nope"]), UsageError);
  assert.throws(() => parseServeArgs(["run"]), /unknown command "run"/);
  assert.deepEqual(parseServeArgs(["--help"]), { command: "help" });
  assert.deepEqual(parseServeArgs([]), { command: "help" });
});

function run(args: string[]) {
  const child = spawn(process.execPath, ["--import", "tsx", CLI, ...args], { stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (d) => (stdout += d));
  child.stderr.on("data", (d) => (stderr += d));
  return { child, out: () => stdout, err: () => stderr };
}

test("--help prints the usage and exits 0; a bad flag exits 2", async () => {
  const help = run(["--help"]);
  const [code] = await once(help.child, "exit");
  assert.equal(code, 0);
  assert.equal(help.out(), USAGE);
  const bad = run(["serve", "--body-limit", "tiny"]);
  assert.equal((await once(bad.child, "exit"))[0], 2);
  assert.match(bad.err(), /--body-limit: "tiny"/);
});

test("serve answers over HTTPS and stops cleanly on SIGTERM", { timeout: 30_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), "meshlane-cli-"));
  const audit = join(dir, "audit.log");
  const p = run(["serve", "--self-signed", "--cert-dir", dir, "--port", "0", "--host", "127.0.0.1", "--san", "localhost", "--audit-log", audit]);
  try {
    const port = await new Promise<number>((resolve, reject) => {
      const onData = () => {
        const m = /"port":(\d+).*listening/.exec(p.err());
        if (m) resolve(Number(m[1]));
      };
      p.child.stderr.on("data", onData);
      p.child.once("exit", (code) => reject(new Error(`exited ${code}: ${p.err()}`)));
    });
    const client = new HttpsClient(port, readFileSync(join(dir, "ca.crt"), "utf8"));
    const reply = await client.post(podReview({ metadata: { name: "p" }, spec: {} }));
    assert.equal(reply.status, 200);
    client.close();
    p.child.kill("SIGTERM");
    const [code] = await once(p.child, "exit");
    assert.equal(code, 0, p.err());
    assert.match(p.err(), /"msg":"stopped"/);
    assert.match(readFileSync(audit, "utf8"), /"decision":"skipped"/);
  } finally {
    p.child.kill("SIGKILL");
  }
});
