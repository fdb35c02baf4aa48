// Every pod Istio's injector made of meshlane's inputs (lab/istio/) and the hand-made edge cases, sent as AdmissionReviews over real
// HTTPS (server verified with its CA), with the returned patch applied by an
// independent RFC 6902 applier and the result sent again, as reinvocation would.

import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { validateInterception, type Interception } from "../../registry/document.js";
import { ANNOTATION_INTERCEPTION, ANNOTATION_REASON, ANNOTATION_REDIRECT, ANNOTATION_STATUS, POD_MARK_LABEL } from "../../registry/names.js";
import { loadFixtures, podReview, type ReviewOptions } from "../../lab/istio-fixtures.js";
import { inject, podOf } from "../../lab/istio/injector.js";
import { patchOf, startTestServer, type TestServer } from "./helpers/https.js";
import { applyJsonPatch } from "./helpers/json-patch.js";

let t: TestServer;
before(async () => {
  t = await startTestServer();
});
after(async () => {
  await t.close();
});

type Pod = { metadata?: { annotations?: Record<string, string>; labels?: Record<string, string>; [k: string]: unknown }; spec: any; [k: string]: unknown };
const fixtures = new Map(loadFixtures().map((f) => [f.file, f.pod as Pod]));
const fixture = (file: string): Pod => structuredClone(fixtures.get(file)!);

async function review(pod: unknown, o: ReviewOptions = {}) {
  const body = podReview(pod, o);
  const reply = await t.client.post(body);
  assert.equal(reply.status, 200, reply.body);
  const answer = reply.json();
  assert.equal(answer.kind, "AdmissionReview");
  assert.equal(answer.apiVersion, o.apiVersion ?? "admission.k8s.io/v1");
  assert.equal(answer.response.uid, (body.request as { uid: string }).uid);
  assert.equal(answer.response.allowed, true);
  return { answer, patch: patchOf(answer) };
}

/** Reviews, applies the patch, checks that reinvocation asks for nothing more. */
async function mark(pod: Pod, o: ReviewOptions = {}): Promise<Pod> {
  const { patch } = await review(pod, o);
  assert.ok(patch, "expected a patch");
  const marked = applyJsonPatch(pod, patch);
  const again = await review(marked, o);
  assert.equal(again.patch, undefined, `second invocation patched again: ${JSON.stringify(again.patch)}`);
  return marked;
}

// What istio-init's arguments make istio-iptables do (the injector's defaults: -i "*",
// -b "*", -d "15090,15021,15020"; the tunnel port 15008 always returns).
const base = {
  mode: "REDIRECT", proxyUid: 1337, proxyGid: 1337, outboundPort: 15001, inboundPort: 15006,
  includeOutboundIPRanges: "*", excludeOutboundIPRanges: ["::/0"], includeOutboundPorts: [], excludeOutboundPorts: [],
  includeInboundPorts: "*", excludeInboundPorts: [15008, 15020, 15021, 15090],
  controlPorts: [15000, 15004, 15020, 15021, 15090], redirect: "proxy",
} satisfies Interception;
// -b "1,2,3" is a list, so istio-iptables ignores -d (4,5,6 and Istio's own ports) there.
const traffic: Interception = {
  ...base,
  includeOutboundIPRanges: ["127.0.0.0/24", "10.96.0.0/24"],
  excludeOutboundIPRanges: ["10.96.0.0/24", "::/0"],
  includeOutboundPorts: [443],
  excludeOutboundPorts: [7, 8, 9],
  includeInboundPorts: [1, 2, 3],
  excludeInboundPorts: [15008],
};

const EXPECTED: Record<string, { status: "accelerated"; interception: Interception } | { status: "skipped"; reason: RegExp }> = {
  "hello-ignore.injected": { status: "skipped", reason: /^not-injected: sidecar.istio.io\/status is absent; no istio-proxy container$/ },
  hello: { status: "skipped", reason: /^not-injected:/ },
  "hello.injected": { status: "accelerated", interception: base },
  "native.injected": { status: "accelerated", interception: base },
  "pod.injected": { status: "accelerated", interception: base },
  "hello.cni.injected": { status: "accelerated", interception: { ...base, excludeOutboundPorts: [15020] } },
  "traffic-annotations.injected": { status: "accelerated", interception: traffic },
};

test("every injected pod has an expectation (a new fixture must be added here)", () => {
  assert.deepEqual([...fixtures.keys()].sort(), Object.keys(EXPECTED).sort());
});

for (const [file, expected] of Object.entries(EXPECTED)) {
  test(`fixture ${file}: ${expected.status}`, async () => {
    const pod = fixture(file);
    const before = structuredClone(pod);
    const marked = await mark(pod);
    const a = marked.metadata!.annotations!;
    assert.equal(a[ANNOTATION_STATUS], expected.status);
    if (expected.status === "accelerated") {
      assert.equal(a[ANNOTATION_REASON], undefined);
      const doc = JSON.parse(a[ANNOTATION_INTERCEPTION]!);
      assert.deepEqual(doc, expected.interception);
      assert.deepEqual(validateInterception(doc), doc, "the loader's validator accepts it unchanged");
    } else {
      assert.match(a[ANNOTATION_REASON]!, expected.reason);
      assert.equal(a[ANNOTATION_INTERCEPTION], undefined);
    }
    // The label the registrar's watch selects on, on accelerated pods only.
    const { [POD_MARK_LABEL]: label, ...otherLabels } = marked.metadata!.labels ?? {};
    assert.equal(label, expected.status === "accelerated" ? "accelerated" : undefined);
    // Nothing but meshlane's own annotations and label changed.
    const { [ANNOTATION_STATUS]: _s, [ANNOTATION_REASON]: _r, [ANNOTATION_INTERCEPTION]: _i, ...rest } = a;
    const labels = before.metadata?.labels === undefined ? {} : { labels: otherLabels };
    const { labels: _l, ...markedMetadata } = marked.metadata!;
    assert.deepEqual({ ...marked, metadata: { ...markedMetadata, ...labels, annotations: rest } }, {
      ...before,
      metadata: { ...before.metadata, annotations: before.metadata?.annotations ?? {} },
    });
  });
}

const classic = (): Pod => fixture("hello.injected");
const annotationsOf = (p: Pod) => p.metadata!.annotations!;

async function skippedFor(pod: Pod): Promise<string> {
  const marked = await mark(pod);
  assert.equal(annotationsOf(marked)[ANNOTATION_STATUS], "skipped");
  assert.equal(annotationsOf(marked)[ANNOTATION_INTERCEPTION], undefined);
  return annotationsOf(marked)[ANNOTATION_REASON]!;
}

test("hostNetwork pods are skipped", async () => {
  const pod = classic();
  pod.spec.hostNetwork = true;
  assert.match(await skippedFor(pod), /^host-network:/);
});

test("TPROXY: istio-init's -m for a classic pod; the annotation or the injector's env where no istio-init shows it", async () => {
  const byArgs = classic();
  const init = byArgs.spec.initContainers.find((c: { name: string }) => c.name === "istio-init");
  init.args[init.args.indexOf("-m") + 1] = "TPROXY";
  assert.match(await skippedFor(byArgs), /^interception-mode: istio-init -m "TPROXY"/);
  // The annotation only explains: istio-init says REDIRECT, so the pod is accelerated as REDIRECT.
  const byAnnotation = classic();
  annotationsOf(byAnnotation)["sidecar.istio.io/interceptionMode"] = "TPROXY";
  assert.equal(annotationsOf(await mark(byAnnotation))[ANNOTATION_STATUS], "accelerated");
  const byEnv = classic();
  byEnv.spec.initContainers = [];
  const proxy = byEnv.spec.containers.find((c: { name: string }) => c.name === "istio-proxy");
  proxy.env.find((e: { name: string }) => e.name === "ISTIO_META_INTERCEPTION_MODE").value = "TPROXY";
  assert.match(await skippedFor(byEnv), /^interception-mode: interception mode TPROXY \(from proxy-env\)/);
});

test("interceptionMode NONE: Istio's injector adds no istio-init; the reason is interception-mode", async () => {
  const input = fixture("hello");
  input.spec.template.metadata.annotations = { "sidecar.istio.io/interceptionMode": "NONE" };
  const [out] = inject([input]);
  const pod = podOf(out!) as Pod;
  assert.equal(pod.spec.initContainers, undefined, "the injector's template has no init container for NONE");
  assert.match(await skippedFor(pod), /^interception-mode: interception mode NONE \(from annotation\)/);
});

test("opt-out by label or by annotation", async () => {
  const byLabel = classic();
  byLabel.metadata!.labels!["meshlane.io/accelerate"] = "false";
  assert.match(await skippedFor(byLabel), /^opt-out: .*label/);
  const byAnnotation = classic();
  annotationsOf(byAnnotation)["meshlane.io/accelerate"] = "false";
  assert.match(await skippedFor(byAnnotation), /^opt-out: .*annotation/);
  const notFalse = classic();
  notFalse.metadata!.labels!["meshlane.io/accelerate"] = "true";
  assert.equal(annotationsOf(await mark(notFalse))[ANNOTATION_STATUS], "accelerated");
});

test("a classic pod's settings come from istio-init's arguments; a bad argument skips it, naming the flag and token", async () => {
  const disagreeing = classic();
  // The annotation and the arguments disagree: the arguments are what iptables does.
  annotationsOf(disagreeing)["traffic.sidecar.istio.io/excludeOutboundPorts"] = "80, 99999";
  const init = disagreeing.spec.initContainers.find((c: { name: string }) => c.name === "istio-init");
  init.args.push("-o", "3306");
  const doc = JSON.parse(annotationsOf(await mark(disagreeing))[ANNOTATION_INTERCEPTION]!);
  assert.deepEqual(doc.excludeOutboundPorts, [3306]);
  const bad = classic();
  bad.spec.initContainers.find((c: { name: string }) => c.name === "istio-init").args.push("-o", "80,99999");
  assert.equal(await skippedFor(bad), 'bad-argument: istio-init -o: "99999" is not a port in 1-65535');
});

test("meshlane.io/redirect: proxy, all or none travel in the document; anything else skips the pod", async () => {
  for (const mode of ["proxy", "all", "none"]) {
    const pod = classic();
    annotationsOf(pod)[ANNOTATION_REDIRECT] = mode;
    assert.equal(JSON.parse(annotationsOf(await mark(pod))[ANNOTATION_INTERCEPTION]!).redirect, mode);
  }
  const bad = classic();
  annotationsOf(bad)[ANNOTATION_REDIRECT] = "ALL";
  const { answer } = await review(bad);
  assert.equal(await skippedFor(bad), 'bad-redirect: meshlane.io/redirect "ALL" is not one of proxy, all, none');
  const line = t.audit.lines.find((l) => l.uid === answer.response.uid);
  assert.equal(line?.reason, "bad-redirect");
});

test("istio-proxy as a plain init container, or a status that is not JSON, is not injected", async () => {
  const init = fixture("native.injected");
  delete init.spec.initContainers.find((c: { name: string }) => c.name === "istio-proxy").restartPolicy;
  assert.match(await skippedFor(init), /not-injected: .*istio-proxy is an init container without restartPolicy: Always/);
  const badStatus = classic();
  annotationsOf(badStatus)["sidecar.istio.io/status"] = "{not json";
  assert.match(await skippedFor(badStatus), /not-injected: sidecar.istio.io\/status is not-json/);
});

test("no istio-init or istio-validation: no capture to fall back on, skipped", async () => {
  const pod = classic();
  pod.spec.initContainers = [];
  assert.match(await skippedFor(pod), /^no-capture:/);
});

test("reinvocation: a pod first seen before Istio injected it ends up accelerated", async () => {
  const uninjected = fixture("hello");
  const first = await review(uninjected, {});
  const seenEarly = applyJsonPatch(uninjected, first.patch!);
  assert.equal(annotationsOf(seenEarly)[ANNOTATION_STATUS], "skipped");
  // Istio's webhook runs next and keeps the annotations it found; meshlane is reinvoked.
  const injected = classic();
  Object.assign(annotationsOf(injected), annotationsOf(seenEarly));
  const { patch } = await review(injected);
  assert.deepEqual(patch!.map((op: { op: string; path: string }) => `${op.op} ${op.path}`).sort(), [
    "add /metadata/annotations/meshlane.io~1interception",
    "add /metadata/labels/meshlane.io~1status",
    "remove /metadata/annotations/meshlane.io~1reason",
    "replace /metadata/annotations/meshlane.io~1status",
  ]);
  const final = applyJsonPatch(injected, patch!);
  assert.equal(annotationsOf(final)[ANNOTATION_STATUS], "accelerated");
  assert.equal(annotationsOf(final)[ANNOTATION_REASON], undefined);
  assert.equal((await review(final)).patch, undefined);
});

test("a stale interception annotation is removed when the pod is now skipped", async () => {
  const pod = classic();
  annotationsOf(pod)[ANNOTATION_STATUS] = "accelerated";
  annotationsOf(pod)[ANNOTATION_INTERCEPTION] = "{}";
  pod.spec.hostNetwork = true;
  const { patch } = await review(pod);
  assert.ok(patch!.some((op: { op: string; path: string }) => op.op === "remove" && op.path === "/metadata/annotations/meshlane.io~1interception"));
});

test("dry-run reviews get the same answer; v1beta1 is answered as v1beta1", async () => {
  const wet = await review(classic());
  const dry = await review(classic(), { dryRun: true });
  assert.deepEqual(dry.patch, wet.patch);
  const beta = await review(classic(), { apiVersion: "admission.k8s.io/v1beta1" });
  assert.deepEqual(beta.patch, wet.patch);
  const dryLine = t.audit.lines.find((l) => l.uid === dry.answer.response.uid);
  assert.equal(dryLine?.dryRun, true);
});

test("same input twice gives the same output; a correctly marked pod gets no patch", async () => {
  const a = await review(classic());
  const b = await review(classic());
  assert.deepEqual(a.patch, b.patch);
  const marked = applyJsonPatch(classic(), a.patch!);
  const again = await review(marked);
  assert.equal(again.answer.response.patch, undefined);
  assert.equal(again.answer.response.patchType, undefined);
});

test("keys that need escaping: other annotations untouched; missing annotations or metadata", async () => {
  const pod = classic();
  annotationsOf(pod)["example.com/a~b"] = "tilde";
  annotationsOf(pod)["~1odd/key"] = "slash";
  const marked = await mark(pod);
  assert.equal(annotationsOf(marked)["example.com/a~b"], "tilde");
  assert.equal(annotationsOf(marked)["~1odd/key"], "slash");

  const bare = classic();
  delete bare.metadata!.annotations;
  const bareMarked = await mark(bare);
  // Without the status annotation Istio's injection is not evident: skipped, but marked.
  assert.match(annotationsOf(bareMarked)[ANNOTATION_REASON]!, /^not-injected:/);

  const noMetadata = { apiVersion: "v1", kind: "Pod", spec: { containers: [{ name: "app", image: "x" }] } } as Pod;
  assert.equal(annotationsOf(await mark(noMetadata))[ANNOTATION_STATUS], "skipped");
});

test("other kinds, other operations and subresources are allowed without a patch", async () => {
  const deployment = await review({ kind: "Deployment" }, { kind: { group: "apps", version: "v1", kind: "Deployment" } });
  assert.equal(deployment.patch, undefined);
  const update = await review(classic(), { operation: "UPDATE" });
  assert.equal(update.patch, undefined);
  const sub = await review(classic(), { subResource: "ephemeralcontainers" });
  assert.equal(sub.patch, undefined);
  const noObject = await review(null);
  assert.equal(noObject.patch, undefined);
  const line = t.audit.lines.find((l) => l.uid === deployment.answer.response.uid);
  assert.equal(line?.decision, "ignored");
  assert.equal(line?.reason, "not-a-pod");
});

test("the marking never makes the pod invalid: bounded reason, annotation size limit kept", async () => {
  const many = classic();
  many.spec.initContainers.find((c: { name: string }) => c.name === "istio-init").args.push("-o", Array.from({ length: 5000 }, (_, i) => `x${i}`).join(","));
  const reason = await skippedFor(many);
  assert.match(reason, /^bad-argument: .*"x0" is not a port/);
  assert.ok(reason.length <= 1100, `reason is ${reason.length} chars`);

  // 10,000 CIDRs: the interception document would push the annotations past 256 KiB.
  const huge = classic();
  annotationsOf(huge)["traffic.sidecar.istio.io/includeOutboundIPRanges"] = Array.from({ length: 10_000 }, (_, i) => `10.${i >> 8}.${i & 255}.0/24`).join(",");
  const init = huge.spec.initContainers.find((c: { name: string }) => c.name === "istio-init");
  init.args[init.args.indexOf("-i") + 1] = annotationsOf(huge)["traffic.sidecar.istio.io/includeOutboundIPRanges"];
  assert.match(await skippedFor(huge), /^annotations-too-large: marking would bring the annotations to \d+ bytes, over the 262144-byte limit$/);
});
