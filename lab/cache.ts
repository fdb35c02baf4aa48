// meshlane's cache outside the checkout, where the bootstrap puts what it builds or
// fetches (third-party binaries, kernels, injected pods): scripts/lib/go-build.sh's
// meshlane_cache(), for the TypeScript side.

import { homedir } from "node:os";
import { join } from "node:path";

export function meshlaneCache(): string {
  return process.env.MESHLANE_CACHE ?? join(process.env.XDG_CACHE_HOME ?? join(homedir(), ".cache"), "meshlane");
}
