import { test } from "node:test";
import assert from "node:assert/strict";
import { parseCidr, parseIp, isLoopback } from "../../registry/ip.js";

test("IPv4 and IPv6 addresses come out canonical with network-order bytes", () => {
  assert.deepEqual(parseIp(" 10.1.2.3 ").bytes, Uint8Array.from([10, 1, 2, 3]));
  const v6 = parseIp("2001:DB8:0:0:0:0:0:1");
  assert.equal(v6.address, "2001:db8::1");
  assert.equal(v6.bytes[15], 1);
  assert.equal(parseIp("::ffff:1.2.3.4").address, "::ffff:102:304");
  assert.equal(parseIp("::").address, "::");
  assert.equal(parseIp("1:0:0:1:0:0:0:1").address, "1:0:0:1::1");
});

test("CIDRs clear host bits and reject bad prefixes", () => {
  assert.equal(parseCidr("10.1.2.3/8").address, "10.0.0.0");
  assert.equal(parseCidr("10.1.2.3").prefix, 32);
  assert.equal(parseCidr("fd00::ff/64").address, "fd00::");
  assert.throws(() => parseCidr("10.0.0.0/33"), /prefix/);
  assert.throws(() => parseCidr("10.0.0.0/"), /prefix/);
  assert.throws(() => parseCidr("300.0.0.0/8"), /not an IPv4/);
  assert.throws(() => parseIp("fe80::1%eth0"), /not an IPv4/);
});

test("loopback is 127/8 and ::1", () => {
  assert.ok(isLoopback(parseIp("127.0.0.6")));
  assert.ok(isLoopback(parseIp("::1")));
  assert.ok(!isLoopback(parseIp("10.0.0.1")));
  assert.ok(!isLoopback(parseIp("::2")));
});
