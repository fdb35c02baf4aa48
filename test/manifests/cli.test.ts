// The manifest's commands, flags, ports and paths against the two CLIs: the webhook's
// args go through its real flag parser and its probe and admission paths are served by
// its real server; the loader's are held against its documented defaults
// (loader-pod.test.ts runs the loader's commands for real).

import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { dirname } from "node:path";
import { after, before, describe, it } from "node:test";
import { SERVICE_DNS_NAMES, WEBHOOK_SERVICE } from "../../certs/authority.js";
import { DEFAULT_PIN_DIR } from "../../loader/pins.js";
import { SYSTEM_NAMESPACE } from "../../registry/names.js";
import { parseServeArgs, type ServeOptions } from "../../webhook/options.js";
import { podReview } from "../../lab/istio-fixtures.js";
import { startTestServer, type TestServer } from "../webhook/helpers/https.js";
import { find, loadManifest } from "./manifest.js";

const objects = loadManifest();
const deployment = find(objects, "Deployment", "meshlane-webhook");
const webhookContainer = deployment.spec!.template.spec!.containers[0]!;
const service = find(objects, "Service", "meshlane-webhook");
const hook = find(objects, "MutatingWebhookConfiguration", "meshlane-webhook").webhooks![0]!;
const loaderPod = find(objects, "DaemonSet", "meshlane-loader").spec!.template.spec!;
const loaderContainer = loaderPod.containers[0]!;

describe("webhook: the Deployment's args, as meshlane-webhook parses them", () => {
  const parsed = parseServeArgs(webhookContainer.args!);
  assert.equal(parsed.command, "serve");
  const options = (parsed as { options: ServeOptions }).options;

  it("listens on the container port the Service targets", () => {
    const port = webhookContainer.ports!.find((p) => p.name === service.spec!.ports![0]!.targetPort)!;
    assert.equal(options.port, port.containerPort);
  });

  it("keeps its certificates in the manifest's Secret and the CA in the manifest's webhook configuration", () => {
    assert.equal(options.selfSigned, true);
    assert.equal(options.certSecret, find(objects, "Secret", options.certSecret!).metadata!.name);
    assert.equal(options.webhookConfig, find(objects, "MutatingWebhookConfiguration", options.webhookConfig!).metadata!.name);
  });

  it("runs the registrar", () => {
    assert.ok(options.registrar, "--registrar");
  });

  it("serves a certificate for the name the API server calls", () => {
    assert.equal(service.metadata!.name, WEBHOOK_SERVICE);
    assert.equal(hook.clientConfig.service!.name, WEBHOOK_SERVICE);
    assert.ok(SERVICE_DNS_NAMES.includes(`${WEBHOOK_SERVICE}.${SYSTEM_NAMESPACE}.svc`));
    for (const name of SERVICE_DNS_NAMES) assert.ok(options.names.includes(name), name);
  });
});

describe("webhook: the probes' and the admission call's paths are served", () => {
  let server: TestServer;
  before(async () => (server = await startTestServer()));
  after(async () => server.close());

  for (const probe of ["readinessProbe", "livenessProbe"] as const) {
    it(`${probe} ${webhookContainer[probe]!.httpGet!.path} answers 200 over HTTPS`, async () => {
      assert.equal(webhookContainer[probe]!.httpGet!.scheme, "HTTPS");
      const reply = await server.client.send("GET", webhookContainer[probe]!.httpGet!.path!);
      assert.equal(reply.status, 200, reply.body);
    });
  }

  it(`${hook.clientConfig.service!.path} answers an AdmissionReview ${hook.admissionReviewVersions.join(",")}`, async () => {
    const review = podReview({ metadata: { name: "p", namespace: "shop" }, spec: { containers: [{ name: "app", image: "app" }] } });
    assert.equal(review.apiVersion, `admission.k8s.io/${hook.admissionReviewVersions[0]}`);
    const reply = await server.client.send("POST", hook.clientConfig.service!.path!, JSON.stringify(review), { "content-type": "application/json" });
    assert.equal(reply.status, 200, reply.body);
    assert.equal(reply.json().response.uid, (review.request as { uid: string }).uid);
  });
});

describe("loader: the DaemonSet against meshlane-loader's commands and defaults", () => {
  const help = spawnSync(process.execPath, ["--import", "tsx", "loader/cli.ts", "--help"], { encoding: "utf8", cwd: new URL("../../", import.meta.url).pathname });
  const defaults = help.stdout.slice(help.stdout.indexOf("defaults:"));
  const flagDefault = (flag: string): string => {
    const m = new RegExp(`${flag} (\\S+?)[,\\s]`).exec(defaults);
    assert.ok(m, `no default for ${flag} in meshlane-loader --help`);
    return m[1]!;
  };

  it("the commands are meshlane-loader's", () => {
    assert.equal(help.status, 0, help.stderr);
    for (const line of ["attach [", "run --node NAME", "detach ["]) assert.ok(help.stdout.includes(line), line);
  });

  it("metrics and /healthz on the default listen port, which the pod declares", () => {
    assert.equal(flagDefault("--listen"), `0.0.0.0:${loaderContainer.ports![0]!.containerPort}`);
    assert.ok(!loaderContainer.command!.includes("--listen"));
  });

  it("pins below the mounted bpffs; the state file on the memory volume", () => {
    const mounts = Object.fromEntries(loaderContainer.volumeMounts!.map((m) => [m.name, m.mountPath]));
    assert.equal(flagDefault("--pin-dir"), DEFAULT_PIN_DIR);
    assert.equal(dirname(DEFAULT_PIN_DIR), mounts.bpffs);
    assert.equal(dirname(flagDefault("--state-file")), mounts.run);
    assert.equal(loaderPod.volumes!.find((v) => v.name === "run")!.emptyDir!.medium, "Memory");
  });

  it("the grace period outlasts detach's drain", () => {
    assert.ok(Number(flagDefault("--drain-ms")) + 5_000 <= loaderPod.terminationGracePeriodSeconds! * 1000);
  });
});
