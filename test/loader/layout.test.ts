import { test } from "node:test";
import assert from "node:assert/strict";
import { layoutDifferences, struct, u16, u32, u64, u8 } from "../../loader/maps/layout.js";
import { MAPS } from "../../loader/maps/codecs.js";
import { checkLayouts, defaultObjectPath } from "../../loader/object.js";
import * as bpf from "../../loader/libbpf.js";

test("struct layout follows C alignment", () => {
  const s = struct("example", { a: u8, b: u32, c: u16, d: u64 });
  assert.deepEqual(s.layout.map((f) => [f.name, f.offset]), [["a", 0], ["b", 4], ["c", 8], ["d", 16]]);
  assert.equal(s.size, 24);
  assert.equal(MAPS.mesh_cidrs.key.size, 40, "36 bytes of fields, padded to the u64 alignment");
  assert.equal(MAPS.mesh_socks.key.size, 48);
});

test("encode and decode round-trip, missing fields are zero", () => {
  const v = { flags: 3, proxy_uid: 1337, proxy_gid: 1338, outbound_port: 15001, inbound_port: 15006, redirect: 1, ip4: Uint8Array.of(10, 0, 0, 1), ip6: new Uint8Array(16).fill(7) };
  assert.deepEqual(MAPS.mesh_pods.value.decode(MAPS.mesh_pods.value.encode(v)), v);
  const key = MAPS.mesh_cidrs.key.decode(MAPS.mesh_cidrs.key.encode({ prefixlen: 152, cgroup_id: 7n }));
  assert.equal(key.list, 0);
  assert.deepEqual(Array.from(key.addr), new Array(16).fill(0));
  assert.throws(() => MAPS.mesh_pods.value.encode({ ip4: new Uint8Array(5) }), /do not fit/);
});

test("a layout that differs from the compiler's is reported field by field", () => {
  const codec = struct("pod_entry", { flags: u32, proxy_uid: u32 });
  const problems = layoutDifferences(codec, {
    size: 16,
    members: [
      { name: "flags", offset: 0, size: 4 },
      { name: "proxy_uid", offset: 8, size: 4 },
      { name: "extra", offset: 12, size: 4 },
    ],
  });
  assert.deepEqual(problems, [
    "struct pod_entry: BTF size 16, codec size 8",
    "pod_entry.proxy_uid: BTF offset 8 size 4, codec offset 4 size 4",
    "pod_entry.extra: in bpf/maps.h, not in the codec",
  ]);
  assert.deepEqual(layoutDifferences(codec, null), ["struct pod_entry is not in the object's BTF"]);
});

test("every codec matches the BTF of the built object", () => {
  const obj = bpf.openObject(defaultObjectPath());
  try {
    assert.deepEqual(checkLayouts(obj), []);
  } finally {
    bpf.closeObject(obj);
  }
});
