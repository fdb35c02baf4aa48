#!/usr/bin/env bash
# Runs every test file under test/ with node's test runner (TypeScript through tsx).
# Kernel suites need root; they load real BPF programs into the real kernel.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" -ne 0 ]; then
  echo "npm test: the kernel suites load BPF programs and create network namespaces; run as root" >&2
  exit 1
fi
# A run killed half-way (timeout, Ctrl-C) leaves namespaces, cgroups and pins behind; clear those first.
node --import tsx lab/topology/janitor.ts
# The qemu guests of 6.1 and 6.12 (test/kernels/guest-*.test.ts, docs/kernels.md) take
# longest, 5-6 minutes each under software emulation: they run first, side by side, in
# a runner of their own whose limit is that of one guest (lab/qemu/ci-suite.ts). The
# rest, 5.10's short refusal first, then run two files at a time (two cores); a test
# that hangs there fails after 5 minutes instead of holding CI until its 90-minute
# limit. Each suite names its cgroups, namespaces and pins after its own pid, so
# suites never share kernel state. Both runners always run; either failing fails.
mapfile -t guests < <(find test/kernels -name 'guest-6.*.test.ts' | sort -r)
mapfile -t rest < <(find test/kernels -name 'guest-*.test.ts' ! -name 'guest-6.*' | sort -r; find test -name '*.test.ts' ! -path 'test/kernels/guest-*' | sort)
status=0
node --import tsx --test --test-concurrency=2 --test-timeout=2700000 --test-reporter=spec "${guests[@]}" "$@" || status=$?
node --import tsx --test --test-concurrency=2 --test-timeout=300000 --test-reporter=spec "${rest[@]}" "$@" || status=$?
exit "$status"
