// The Istio pods the tests, the benchmark and the demo use: meshlane's own input
// manifests (lab/istio/pods/) and what Istio's injector makes of them.

import { readFileSync } from "node:fs";
import { parse } from "yaml";
import { inject, podOf, type Variant } from "./injector.js";

type Obj = Record<string, unknown>;

/** name → input file, and the injector variant (none: the input itself, not injected). */
export const FIXTURES: Record<string, { input: string; variant: Variant | undefined }> = {
  hello: { input: "hello.yaml", variant: undefined },
  "hello.injected": { input: "hello.yaml", variant: "classic" },
  "hello.cni.injected": { input: "hello.yaml", variant: "cni" },
  "hello-ignore.injected": { input: "hello-ignore.yaml", variant: "classic" },
  "native.injected": { input: "native.yaml", variant: "classic" },
  "pod.injected": { input: "pod.yaml", variant: "classic" },
  "traffic-annotations.injected": { input: "traffic-annotations.yaml", variant: "classic" },
};

export function inputManifest(file: string): Obj {
  return parse(readFileSync(new URL(`pods/${file}`, import.meta.url), "utf8")) as Obj;
}

/** The pod Istio's injector makes of one of meshlane's inputs, as the API server would store it. */
export function injectedPod(name: string): Obj {
  const f = FIXTURES[name];
  if (!f) throw new Error(`no Istio fixture ${name} (known: ${Object.keys(FIXTURES).join(", ")})`);
  const input = inputManifest(f.input);
  return podOf(f.variant ? inject([input], f.variant)[0]! : input);
}
