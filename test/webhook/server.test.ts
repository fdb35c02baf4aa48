// The HTTPS server's contract apart from decisions: bad input, TLS, health, metrics,
// the audit log.

import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdtempSync, readFileSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect as tlsConnect, type SecureVersion } from "node:tls";
import { createAuditLog } from "../../webhook/audit.js";
import { createWebhookServer } from "../../webhook/server.js";
import { injectedPod, podReview } from "../../lab/istio-fixtures.js";
import { AuditCapture, HOUR, startTestServer, testIdentity, type TestServer } from "./helpers/https.js";

let t: TestServer;
before(async () => {
  t = await startTestServer();
});
after(async () => {
  await t.close();
});

const classic = () => injectedPod("hello.injected");

test("bad input: each refusal has its status and names the problem", async () => {
  const cases: [string, () => Promise<{ status: number; body: string }>, number, RegExp][] = [
    ["non-JSON", () => t.client.post("{not json"), 400, /invalid-json.*not valid JSON/],
    ["empty JSON body", () => t.client.post(""), 400, /invalid-json.*empty/],
    ["text/plain", () => t.client.post("{}", "text/plain"), 415, /unsupported-media-type.*application\/json/],
    ["form", () => t.client.post("a=b", "application/x-www-form-urlencoded"), 415, /unsupported-media-type/],
    ["no request.uid", () => t.client.post({ apiVersion: "admission.k8s.io/v1", kind: "AdmissionReview", request: { kind: { group: "", version: "v1", kind: "Pod" } } }), 400, /missing-uid.*request.uid is missing/],
    ["no request", () => t.client.post({ apiVersion: "admission.k8s.io/v1", kind: "AdmissionReview" }), 400, /request is missing/],
    ["wrong apiVersion", () => t.client.post({ apiVersion: "admission.k8s.io/v2", kind: "AdmissionReview", request: { uid: "x" } }), 400, /apiVersion \\"admission.k8s.io\/v2\\" is not one of/],
    ["not an object", () => t.client.post("[1,2]"), 400, /body is not a JSON object/],
    ["__proto__ poisoning", () => t.client.post('{"__proto__":{"x":1}}'), 400, /invalid-json/],
  ];
  for (const [name, send, status, message] of cases) {
    const reply = await send();
    assert.equal(reply.status, status, `${name}: ${reply.body}`);
    assert.match(reply.body, message, name);
  }
  const metrics = (await t.client.send("GET", "/metrics")).body;
  assert.match(metrics, /meshlane_webhook_errors_total\{problem="unsupported-media-type"\} 2/);
  assert.match(metrics, /meshlane_webhook_errors_total\{problem="missing-uid"\} 1/);
});

test("body limit: default 6 MiB; over it 413, under it answered", async () => {
  const review = podReview(classic());
  const padded = (bytes: number) => {
    const text = JSON.stringify({ ...review, padding: "" });
    return text.replace('"padding":""', `"padding":"${"x".repeat(bytes - text.length)}"`);
  };
  const over = await t.client.post(padded(6 * 1024 * 1024 + 1));
  assert.equal(over.status, 413);
  assert.match(over.body, /body-too-large.*6291456 bytes/);
  const under = await t.client.post(padded(6 * 1024 * 1024 - 16));
  assert.equal(under.status, 200, under.body.slice(0, 200));
});

test("body limit is configurable", async () => {
  const small = await startTestServer({ bodyLimit: 4096 });
  try {
    const reply = await small.client.post(podReview(classic()));
    assert.equal(reply.status, 413);
    assert.match(reply.body, /4096 bytes/);
  } finally {
    await small.close();
  }
});

function handshake(port: number, opts: { ca?: string; maxVersion?: SecureVersion; minVersion?: SecureVersion }): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = tlsConnect({ host: "127.0.0.1", port, servername: "localhost", ...opts }, () => {
      const v = s.getProtocol() ?? "?";
      s.end();
      resolve(v);
    });
    s.on("error", reject);
  });
}

test("TLS 1.2 and 1.3 only, verified with the CA; no plaintext", async () => {
  assert.equal(await handshake(t.port, { ca: t.ca.certPem, maxVersion: "TLSv1.2" }), "TLSv1.2");
  assert.equal(await handshake(t.port, { ca: t.ca.certPem, minVersion: "TLSv1.3" }), "TLSv1.3");
  await assert.rejects(handshake(t.port, { ca: t.ca.certPem, minVersion: "TLSv1", maxVersion: "TLSv1.1" }), /protocol|version|alert/i);
  await assert.rejects(handshake(t.port, {}), /self.signed|unable to (get|verify)/i);
  // A plaintext HTTP request gets no HTTP answer.
  const answer = await new Promise<string>((resolve) => {
    const s = connect(t.port, "127.0.0.1", () => s.write("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"));
    let got = "";
    s.on("data", (d) => (got += d.toString("latin1")));
    s.on("close", () => resolve(got));
    s.on("error", () => resolve(got));
  });
  assert.doesNotMatch(answer, /^HTTP\/1\.1 200/);
});

test("healthz, readyz with a valid certificate, metrics with reviews and latency", async () => {
  assert.equal((await t.client.send("GET", "/healthz")).status, 200);
  const ready = await t.client.send("GET", "/readyz");
  assert.equal(ready.status, 200);
  assert.match(ready.json().certificateNotAfter, /^\d{4}-/);
  await t.client.post(podReview(classic()));
  const metrics = await t.client.send("GET", "/metrics");
  assert.match(metrics.body, /meshlane_webhook_reviews_total\{decision="accelerated",reason="istio-redirect"\} [1-9]/);
  assert.match(metrics.body, /meshlane_webhook_review_duration_seconds_count\{decision="accelerated"\} [1-9]/);
  assert.match(metrics.body, /meshlane_webhook_certificate_not_after_seconds \d+/);
});

test("readyz: not ready without a certificate, or with an expired one", async () => {
  const bare = createWebhookServer({ audit: createAuditLog(new AuditCapture()) });
  const none = await bare.app.inject({ method: "GET", url: "/readyz" });
  assert.equal(none.statusCode, 503);
  assert.match(none.body, /no serving certificate loaded/);
  await bare.close();

  const { serving } = testIdentity();
  const later = createWebhookServer({ identity: serving, audit: createAuditLog(new AuditCapture()), now: () => new Date(Date.now() + 2 * HOUR) });
  const expired = await later.app.inject({ method: "GET", url: "/readyz" });
  assert.equal(expired.statusCode, 503);
  assert.match(expired.body, /expired at/);
  await later.close();
});

test("audit: one line per review with the issue's fields, no pod spec, no env values", async () => {
  const pod = structuredClone(classic()) as any;
  const proxy = pod.spec.containers.find((c: { name: string }) => c.name === "istio-proxy");
  proxy.env.push({ name: "DB_PASSWORD", value: "s3cr3t-VALUE-42" });
  const body = podReview(pod, { dryRun: true });
  const before = t.audit.lines.length;
  const reply = await t.client.post(body);
  assert.equal(reply.status, 200);
  assert.equal(t.audit.lines.length, before + 1);
  const raw = t.audit.raw.at(-1)!;
  const line = t.audit.lines.at(-1)!;
  const uid = (body.request as { uid: string }).uid;
  assert.equal(line.uid, uid);
  assert.match(String(line.time), /^\d{4}-\d\d-\d\dT/);
  assert.equal(line.operation, "CREATE");
  assert.equal(line.kind, "v1/Pod");
  assert.equal(line.namespace, "shop");
  assert.equal(line.generateName, "hello-");
  assert.equal(line.user, "system:serviceaccount:kube-system:replicaset-controller");
  assert.equal(line.dryRun, true);
  assert.equal(line.decision, "accelerated");
  assert.equal(line.reason, "istio-redirect");
  assert.deepEqual(line.evidence, {
    statusAnnotation: "valid", revision: "default", proxy: "containers", capture: "istio-init",
    hostNetwork: false, interceptionMode: { mode: "REDIRECT", source: "proxy-env" },
  });
  const patch = Buffer.from(reply.json().response.patch, "base64");
  assert.equal(line.patchBytes, patch.length);
  assert.equal(line.patchSha256, createHash("sha256").update(patch).digest("hex"));
  assert.equal(typeof line.latencyMs, "number");
  assert.ok((line.latencyMs as number) > 0);
  for (const leak of ["s3cr3t-VALUE-42", "DB_PASSWORD", "proxyv2", "containers\":[", "istio-ca-root-cert"]) {
    assert.ok(!raw.includes(leak), `audit line leaks ${leak}: ${raw}`);
  }
});

test("audit destination: a file", async () => {
  const file = join(mkdtempSync(join(tmpdir(), "meshlane-audit-")), "sub", "audit.log");
  const log = createAuditLog({ file });
  log.info({ uid: "u-1" }, "admission review");
  log.flush();
  assert.match(readFileSync(file, "utf8"), /"uid":"u-1"/);
});
