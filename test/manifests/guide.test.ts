// The operator's guide (docs/operator-guide.md) against the code and the manifest: its table of skip
// reasons is the webhook's, its images are the manifest's, and the loader commands it
// tells operators to run exist.

import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { find, loadManifest } from "./manifest.js";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const guide = readFileSync(`${ROOT}docs/operator-guide.md`, "utf8");

/** Reason codes a pod can be skipped with: webhook/decision.ts's ReasonCode, less the accelerated one and those of requests that are not pod creations. */
function skipReasons(): string[] {
  const source = readFileSync(`${ROOT}webhook/decision.ts`, "utf8");
  const union = /export type ReasonCode =([^;]+);/.exec(source);
  assert.ok(union, "ReasonCode in webhook/decision.ts");
  const notSkips = new Set(["istio-redirect", "not-a-pod", "subresource", "operation", "no-object"]);
  return [...union[1]!.matchAll(/"([a-z-]+)"/g)].map((m) => m[1]!).filter((r) => !notSkips.has(r));
}

describe("docs/operator-guide.md", () => {
  it("exists", () => assert.ok(guide.startsWith("# Operator's guide") && guide.length > 1000));

  it("its table of skip reasons is the webhook's", () => {
    const table = [...guide.matchAll(/^\| `([a-z-]+)` \|/gm)].map((m) => m[1]!);
    assert.deepEqual(table.sort(), skipReasons().sort());
  });

  it("names the manifest's images", () => {
    const objects = loadManifest();
    const images = [
      find(objects, "DaemonSet", "meshlane-loader").spec!.template.spec!.containers[0]!.image!,
      find(objects, "Deployment", "meshlane-webhook").spec!.template.spec!.containers[0]!.image!,
    ];
    for (const image of images) assert.ok(guide.includes(image), image);
    const named = new Set([...guide.matchAll(/ghcr\.io\/meshlane\/[a-z]+:[\w.-]+/g)].map((m) => m[0]));
    assert.deepEqual([...named].sort(), images.sort());
  });

  it("the meshlane-loader commands it gives exist", () => {
    const help = spawnSync(process.execPath, ["--import", "tsx", "loader/cli.ts", "--help"], { encoding: "utf8", cwd: ROOT }).stdout;
    const commands = new Set([...guide.matchAll(/meshlane-loader (\w+)/g)].map((m) => m[1]!));
    assert.ok(commands.size >= 4, [...commands].join());
    for (const c of commands) assert.match(help, new RegExp(`^  ${c} `, "m"), c);
  });
});
