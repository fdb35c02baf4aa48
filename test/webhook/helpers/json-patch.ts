// An independent RFC 6902 applier (add / replace / remove / test) written from the RFC, so the
// tests check the webhook's patches without trusting its own pointer escaping.

type Op = { op: string; path: string; value?: unknown };

function unescape(token: string): string {
  return token.replace(/~1/g, "/").replace(/~0/g, "~");
}

export function applyJsonPatch<T>(doc: T, ops: Op[]): T {
  const root = structuredClone(doc) as unknown;
  for (const op of ops) {
    if (!op.path.startsWith("/")) throw new Error(`bad pointer ${op.path}`);
    const tokens = op.path.slice(1).split("/").map(unescape);
    const last = tokens.pop()!;
    let parent = root as Record<string, unknown>;
    for (const t of tokens) {
      const next = parent[t];
      if (typeof next !== "object" || next === null) throw new Error(`${op.op} ${op.path}: parent ${t} missing`);
      parent = next as Record<string, unknown>;
    }
    if (op.op === "test") {
      if (JSON.stringify(parent[last]) !== JSON.stringify(op.value)) throw new Error(`test ${op.path} failed`);
    } else if (op.op === "add") parent[last] = structuredClone(op.value);
    else if (op.op === "replace" || op.op === "remove") {
      if (!Object.hasOwn(parent, last)) throw new Error(`${op.op} ${op.path}: target missing`);
      if (op.op === "replace") parent[last] = structuredClone(op.value);
      else delete parent[last];
    } else throw new Error(`unsupported op ${op.op}`);
  }
  return root as T;
}
