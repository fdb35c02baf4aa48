import { test } from "node:test";
import assert from "node:assert/strict";
import { parseDurationUs, parseWrk, wrkArgv } from "../../bench/wrk.js";

const REPORT = `Running 3s test @ http://10.77.0.3:8080/
  1 threads and 8 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   196.46us  120.11us   5.01ms   97.12%
    Req/Sec    40.12k     2.01k   43.00k    80.00%
  Latency Distribution
     50%  182.00us
     75%  201.00us
     90%  249.00us
     99%    1.14ms
  120361 requests in 3.00s, 141.59MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 4
Requests/sec:  40119.87
Transfer/sec:     47.19MB
`;

test("wrk's --latency report gives rate, totals, percentiles in µs and every kind of error", () => {
  const r = parseWrk(REPORT);
  assert.equal(r.requests, 120361);
  assert.equal(r.seconds, 3);
  assert.equal(r.requestsPerSec, 40119.87);
  assert.deepEqual(r.latencyUs, { p50: 182, p90: 249, p99: 1140 });
  assert.equal(r.errors, 7);
});

test("a clean report has no errors; a report without percentiles or totals is refused", () => {
  const clean = REPORT.replace(/^\s*Socket errors.*\n/m, "").replace(/^\s*Non-2xx.*\n/m, "");
  assert.equal(parseWrk(clean).errors, 0);
  assert.throws(() => parseWrk(REPORT.replace(/^\s*99%.*\n/m, "")), /99% latency/);
  assert.throws(() => parseWrk("unable to connect to 10.77.0.3:8080 Connection refused\n"), /no request totals/);
});

test("durations convert from every unit wrk prints", () => {
  assert.equal(parseDurationUs("12.50us"), 12.5);
  assert.equal(parseDurationUs("1.14ms"), 1140);
  assert.equal(parseDurationUs("2.00s"), 2e6);
  assert.equal(parseDurationUs("1.50m"), 90e6);
  assert.throws(() => parseDurationUs("12 parsecs"), /not a wrk duration/);
});

test("close mode asks nginx to close after every response; one thread either way", () => {
  const close = wrkArgv({ url: "http://x/", connections: 4, seconds: 3, mode: "close" });
  assert.deepEqual(close, ["wrk", "-t1", "-c4", "-d3s", "--latency", "-H", "Connection: close", "http://x/"]);
  assert.ok(!wrkArgv({ url: "http://x/", connections: 4, seconds: 3, mode: "keep-alive" }).includes("-H"));
});
