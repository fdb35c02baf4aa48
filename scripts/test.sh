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
# The qemu guests of test/kernels/guest-*.test.ts (docs/kernels.md) take longest: they
# go first, newest kernel first (6.12, 6.1, then the short 5.10 refusal), so that the
# other files fill the runner's slots around them.
mapfile -t files < <(find test/kernels -name 'guest-*.test.ts' | sort -r; find test -name '*.test.ts' ! -path 'test/kernels/guest-*' | sort)
# Two cores: two files at a time. Each suite names its cgroups, namespaces and pins
# after its own pid, so suites never share kernel state.
# A test that hangs fails after 5 minutes instead of holding CI until its 90-minute limit.
exec node --import tsx --test --test-concurrency=2 --test-timeout=300000 --test-reporter=spec "${files[@]}" "$@"
