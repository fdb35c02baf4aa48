import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ApiError } from "./apiserver/errors.js";
import { applyJsonPatch, applyPatch, JSON_PATCH, MERGE_PATCH, mergePatch, STRATEGIC_MERGE_PATCH } from "./apiserver/patch.js";

function statusOf(fn: () => unknown): { code: number; reason: string | undefined } {
  try {
    fn();
  } catch (err) {
    if (err instanceof ApiError) return { code: err.code, reason: err.status.reason };
    throw err;
  }
  assert.fail("expected an ApiError");
}

describe("JSON merge patch (RFC 7386)", () => {
  it("merges objects recursively, deletes on null and replaces lists whole", () => {
    const target = { data: { a: "1", b: "2" }, list: [1, 2], keep: true };
    const result = mergePatch(target, { data: { b: null, c: "3" }, list: [3] });
    assert.deepEqual(result, { data: { a: "1", c: "3" }, list: [3], keep: true });
    assert.deepEqual(target.data, { a: "1", b: "2" }, "the target is not modified");
  });

  it("creates missing intermediate objects", () => {
    assert.deepEqual(mergePatch({ metadata: {} }, { data: { k: "v" } }), { metadata: {}, data: { k: "v" } });
  });
});

describe("JSON patch (RFC 6902)", () => {
  const pod = { metadata: { annotations: { "a/b": "x" } }, spec: { containers: [{ name: "app" }] } };

  it("adds, replaces, removes, moves and copies, with ~1 escapes and '-' appends", () => {
    const result = applyJsonPatch(pod, [
      { op: "add", path: "/metadata/labels", value: { app: "web" } },
      { op: "replace", path: "/metadata/annotations/a~1b", value: "y" },
      { op: "add", path: "/spec/containers/-", value: { name: "istio-proxy" } },
      { op: "add", path: "/spec/containers/0", value: { name: "first" } },
      { op: "copy", from: "/metadata/labels/app", path: "/metadata/labels/copy" },
      { op: "move", from: "/metadata/labels/copy", path: "/metadata/labels/moved" },
      { op: "remove", path: "/spec/containers/1" },
      { op: "test", path: "/spec/containers/1/name", value: "istio-proxy" },
    ]);
    assert.deepEqual(result, {
      metadata: { annotations: { "a/b": "y" }, labels: { app: "web", moved: "web" } },
      spec: { containers: [{ name: "first" }, { name: "istio-proxy" }] },
    });
    assert.equal(pod.spec.containers.length, 1, "the target is not modified");
  });

  it("fails on a failed test, a missing path or an out-of-range index, naming the operation", () => {
    assert.throws(() => applyJsonPatch(pod, [{ op: "test", path: "/spec/containers/0/name", value: "x" }]), /operation 0 .*testing value/);
    assert.throws(() => applyJsonPatch(pod, [{ op: "remove", path: "/metadata/labels" }]), /does not exist/);
    assert.throws(() => applyJsonPatch(pod, [{ op: "add", path: "/spec/containers/5", value: {} }]), /out of bounds/);
    assert.throws(() => applyJsonPatch(pod, [{ op: "replace", path: "/nope/x", value: 1 }]), /"nope" does not exist/);
  });
});

describe("PATCH content types", () => {
  const cm = { data: { a: "1" } };

  it("answers an undecodable patch with 400 and one that does not apply with 422", () => {
    assert.deepEqual(statusOf(() => applyPatch(MERGE_PATCH, cm, "{")), { code: 400, reason: "BadRequest" });
    assert.deepEqual(statusOf(() => applyPatch(JSON_PATCH, cm, '{"op":"add"}')), { code: 400, reason: "BadRequest" });
    assert.deepEqual(statusOf(() => applyPatch(JSON_PATCH, cm, '[{"op":"remove","path":"/data/zz"}]')), { code: 422, reason: "Invalid" });
  });

  it("applies a list-free strategic merge patch like a merge patch", () => {
    assert.deepEqual(applyPatch(STRATEGIC_MERGE_PATCH, cm, '{"data":{"b":"2","a":null}}'), { data: { b: "2" } });
  });

  it("refuses strategic merge patches with lists or directives, and unknown types, with 415", () => {
    assert.deepEqual(statusOf(() => applyPatch(STRATEGIC_MERGE_PATCH, cm, '{"spec":{"containers":[{"name":"a"}]}}')),
      { code: 415, reason: "UnsupportedMediaType" });
    assert.deepEqual(statusOf(() => applyPatch(STRATEGIC_MERGE_PATCH, cm, '{"data":{"$patch":"replace"}}')),
      { code: 415, reason: "UnsupportedMediaType" });
    assert.deepEqual(statusOf(() => applyPatch("application/apply-patch+yaml", cm, "{}")), { code: 415, reason: "UnsupportedMediaType" });
  });
});
