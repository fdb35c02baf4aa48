#!/usr/bin/env bash
# Builds third-party Go programs from the Go module proxy at a pinned version, once,
# into meshlane's cache outside the checkout. No third-party source enters the repo:
# a throw-away module under the cache requires the pinned module and `go build`s
# the named packages from the module cache.
#
#   source scripts/lib/go-build.sh
#   go_build_pinned NAME MODULE VERSION "PKG..." [REPLACE_FILE]
#
# NAME       cache key, e.g. kubernetes-v1.34.4; binaries land in $(meshlane_cache)/NAME/bin
# MODULE     e.g. k8s.io/kubernetes
# VERSION    e.g. v1.34.4
# PKG...     space-separated import paths of main packages (binary = last path element)
# REPLACE_FILE optional: lines "module version" added as `replace module => module version`
#            (k8s.io/kubernetes requires its staging modules at v0.0.0)
#
# GO_BUILD_LDFLAGS (environment) is added to -ldflags, e.g. -X flags that stamp a version.
#
# A second call with the same NAME does nothing: bin/.complete is written last.

meshlane_cache() {
  echo "${MESHLANE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/meshlane}"
}

go_build_pinned() {
  local name=$1 module=$2 version=$3 pkgs=$4 replaces=${5:-}
  local dir bin
  dir="$(meshlane_cache)/$name"
  bin="$dir/bin"
  if [ -f "$bin/.complete" ]; then return 0; fi
  command -v go >/dev/null || { echo "go-build: 'go' not found; $name needs Go (1.24 or newer) and the Go module proxy" >&2; return 1; }
  mkdir -p "$dir/mod" "$bin"
  local started=$SECONDS
  echo "go-build: $name: building $module@$version ($pkgs) into $bin; the first build takes minutes"
  (
    set -euo pipefail
    cd "$dir/mod"
    rm -f go.mod go.sum
    go mod init meshlane.local/build/"$name" >/dev/null 2>&1
    if [ -n "$replaces" ]; then
      while read -r m v; do
        [ -n "$m" ] && go mod edit -replace "$m=$m@$v"
      done <"$replaces"
    fi
    go mod edit -require "$module@$version"
    # One file importing every package makes `go mod tidy` resolve exactly what they need.
    {
      echo "//go:build tools"
      echo "package tools"
      for p in $pkgs; do echo "import _ \"$p\""; done
    } >tools.go
    # -e: tidy also resolves the tests of every imported package; a module only those
    # tests need may not be served (istio.io/istio's agentgateway API). `go build` below
    # still fails on anything the programs themselves need.
    GOFLAGS=-mod=mod go mod tidy -e
    for p in $pkgs; do
      echo "go-build: $name: go build $p"
      # nice: a build must not starve the suites that may run beside it on 2 cores.
      CGO_ENABLED=0 nice -n 10 go build -trimpath -ldflags="-s ${GO_BUILD_LDFLAGS:-}" -o "$bin/$(basename "$p")" "$p"
    done
  ) || { echo "go-build: $name: build failed (module files in $dir/mod)" >&2; return 1; }
  echo "$module@$version built in $((SECONDS - started)) s" >"$bin/.complete"
  echo "go-build: $name: done in $((SECONDS - started)) s"
}
