// Rotation under load: the running webhook renews its serving certificate on its own
// timer and swaps the TLS context while clients keep connecting. No request may fail,
// and new connections must see the new certificate without a restart.

import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, mkdtempSync } from "node:fs";
import { request, Agent } from "node:https";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createSecureContext, type TLSSocket } from "node:tls";
import { X509Certificate } from "node:crypto";
import pino from "pino";
import { createCertificateAuthority, issueServingCertificate } from "../../certs/authority.js";
import { FileCertificateStore } from "../../certs/file-store.js";
import { parseServeArgs, type ServeOptions } from "../../webhook/options.js";
import { startWebhook } from "../../webhook/service.js";
import { podReview } from "../../lab/istio-fixtures.js";

function serveOptions(args: string[]): ServeOptions {
  const parsed = parseServeArgs(["serve", ...args]);
  assert.equal(parsed.command, "serve");
  return (parsed as { options: ServeOptions }).options;
}

test("serving certificate renews on its timer and is hot-swapped with no failed request", { timeout: 30_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), "meshlane-rotate-"));
  const options = serveOptions([
    "--self-signed", "--cert-dir", dir, "--port", "0", "--host", "127.0.0.1", "--san", "127.0.0.1",
    "--cert-validity", "8s", "--renew-before", "6s", "--check-interval", "0.2s", "--audit-log", join(dir, "audit.log"),
  ]);
  const running = await startWebhook(options, { log: pino({ level: "silent" }) });
  try {
    // The CA does not change on a serving renewal, so one trust anchor serves throughout.
    const secureContext = createSecureContext({ ca: readFileSync(join(dir, "ca.crt"), "utf8") });
    const keepAlive = new Agent({ keepAlive: true, maxSockets: 1, secureContext });
    const body = JSON.stringify(podReview({ metadata: { name: "p" }, spec: {} }));
    const send = (agent: Agent | false) =>
      new Promise<{ status: number; serial: string }>((resolve, reject) => {
        const req = request(
          { host: "127.0.0.1", port: running.port, path: "/mutate", method: "POST", agent, ...(agent ? {} : { secureContext }), headers: { "content-type": "application/json" } },
          (res) => {
            const serial = (res.socket as TLSSocket).getPeerCertificate().serialNumber;
            res.resume();
            res.on("end", () => resolve({ status: res.statusCode!, serial }));
          },
        );
        req.on("error", reject);
        req.end(body);
      });

    const fresh = new Set<string>();
    const reused = new Set<string>();
    const failures: string[] = [];
    let sent = 0;
    const until = Date.now() + 4_500;
    const loop = async (agent: Agent | false, seen: Set<string>) => {
      while (Date.now() < until) {
        try {
          const r = await send(agent);
          sent++;
          if (r.status !== 200) failures.push(`status ${r.status}`);
          seen.add(r.serial);
        } catch (e) {
          failures.push((e as Error).message);
        }
      }
    };
    await Promise.all([loop(false, fresh), loop(false, fresh), loop(keepAlive, reused)]);
    keepAlive.destroy();

    assert.deepEqual(failures, [], `${failures.length} of ${sent} requests failed`);
    assert.ok(fresh.size >= 2, `new connections saw only ${[...fresh].join(", ")}: no rotation happened`);
    assert.ok(sent > 100, `only ${sent} requests`);
    // With the timer stopped and one last check done, what is served is what is stored.
    running.certificates.stop();
    const inUse = (await running.certificates.check())!.certPem;
    assert.equal(readFileSync(join(dir, "tls.crt"), "utf8"), inUse, "the renewed set was saved");
    const metrics = await running.server.app.inject({ method: "GET", url: "/metrics" });
    assert.match(metrics.body, /meshlane_webhook_certificate_reloads_total ([3-9]|\d\d)/);
  } finally {
    await running.stop();
  }
});

test("certificates issued elsewhere: starts without them, then follows the directory as it changes", { timeout: 30_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), "meshlane-external-"));
  const options = serveOptions(["--cert-dir", dir, "--port", "0", "--host", "127.0.0.1", "--check-interval", "0.1s", "--audit-log", join(dir, "audit.log")]);
  const running = await startWebhook(options, { log: pino({ level: "silent" }) });
  try {
    const ca = createCertificateAuthority({ validityMs: 3600_000 });
    const readyz = () =>
      new Promise<{ status: number; serial: string }>((resolve, reject) => {
        const req = request({ host: "127.0.0.1", port: running.port, path: "/readyz", agent: false, ca: ca.certPem, servername: "localhost" }, (res) => {
          const serial = (res.socket as TLSSocket).getPeerCertificate().serialNumber;
          res.resume();
          res.on("end", () => resolve({ status: res.statusCode!, serial }));
        });
        req.on("error", reject);
        req.end();
      });
    await assert.rejects(readyz(), "no certificate yet: the handshake fails");

    const store = new FileCertificateStore(dir);
    const waitForSerial = async (pem: string) => {
      const want = new X509Certificate(pem).serialNumber;
      for (let i = 0; i < 100; i++) {
        const got = await readyz().catch(() => undefined);
        if (got?.serial === want) return got;
        await new Promise((r) => setTimeout(r, 100));
      }
      assert.fail(`server never served ${want}`);
    };
    // cert-manager style: only ca.crt, tls.crt, tls.key; meshlane holds no CA key.
    const first = issueServingCertificate(ca, { names: ["localhost"], validityMs: 3600_000 });
    await store.save({ caBundlePem: ca.certPem, caKeyPem: undefined, ...first });
    assert.equal((await waitForSerial(first.certPem)).status, 200);
    const second = issueServingCertificate(ca, { names: ["localhost"], validityMs: 3600_000 });
    await store.save({ caBundlePem: ca.certPem, caKeyPem: undefined, ...second });
    await waitForSerial(second.certPem);
  } finally {
    await running.stop();
  }
});
