// RFC 6902 JSON patches for the pod's annotations and labels. Only the keys meshlane
// owns are ever named, so nothing else in the pod can change.

export type JsonPatchOp =
  | { op: "add" | "replace"; path: string; value: unknown }
  | { op: "remove"; path: string };

/** RFC 6901: "~" becomes "~0" before "/" becomes "~1", so "~1" in a key survives as "~01". */
export function escapePointerToken(token: string): string {
  return token.replace(/~/g, "~0").replace(/\//g, "~1");
}

/**
 * The operations that make `metadata.<field>` hold `desired` (undefined = key must be
 * absent). `current` is the pod's `metadata.<field>` object, undefined when the pod
 * has none. Returns [] when nothing needs to change.
 */
export function metadataMapPatch(
  field: "annotations" | "labels",
  current: Readonly<Record<string, unknown>> | undefined,
  hasMetadata: boolean,
  desired: Readonly<Record<string, string | undefined>>,
): JsonPatchOp[] {
  const wanted = Object.fromEntries(Object.entries(desired).filter((e): e is [string, string] => e[1] !== undefined));
  if (current === undefined) {
    if (Object.keys(wanted).length === 0) return [];
    // A pointer cannot add a key under a missing parent: create the whole object.
    return hasMetadata
      ? [{ op: "add", path: `/metadata/${field}`, value: wanted }]
      : [{ op: "add", path: "/metadata", value: { [field]: wanted } }];
  }
  const ops: JsonPatchOp[] = [];
  for (const [key, value] of Object.entries(desired)) {
    const path = `/metadata/${field}/${escapePointerToken(key)}`;
    const has = Object.hasOwn(current, key);
    if (value === undefined) {
      if (has) ops.push({ op: "remove", path });
    } else if (!has) {
      ops.push({ op: "add", path, value });
    } else if (current[key] !== value) {
      ops.push({ op: "replace", path, value });
    }
  }
  return ops;
}
