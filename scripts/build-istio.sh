#!/usr/bin/env bash
# Builds Istio's own binaries from the Go module proxy, pinned, into meshlane's cache:
#   pilot-agent  — its `istio-iptables` subcommand is what an injected istio-init runs
#                  (the injection template's init container: `istio-iptables -p 15001 …`
#                  with the proxyv2 image's entrypoint, i.e. `pilot-agent istio-iptables`)
#   istioctl     — `istioctl kube-inject` is Istio's sidecar injector run offline; meshlane
#                  feeds it the template, values and mesh config of the same module's
#                  manifests/ (read from the module cache at run time, never copied here).
#
# istio.io/istio is served by the proxy only at pseudo-versions. This one is the tip of
# the release-1.30 branch (its VERSION file says 1.30, BASE_VERSION 1.30-2026-08-26):
# the newest release branch; the two other pseudo-versions served are master (1.31-dev).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/go-build.sh
source scripts/lib/istio-version.sh
go_build_pinned "istio-$ISTIO_PIN_NAME" istio.io/istio "$ISTIO_MODULE_VERSION" \
  "istio.io/istio/pilot/cmd/pilot-agent istio.io/istio/istioctl/cmd/istioctl" \
  "$PWD/mesh/istio/go-replaces.txt"
# The injector reads manifests/ from the module cache; `go mod download` is a no-op once
# the build above fetched it, and prints where it is.
go mod download -json "istio.io/istio@$ISTIO_MODULE_VERSION" >/dev/null
