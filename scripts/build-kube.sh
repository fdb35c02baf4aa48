#!/usr/bin/env bash
# Builds the real Kubernetes control plane the tests and the demo run on: kube-apiserver
# and kubectl from k8s.io/kubernetes, etcd from go.etcd.io/etcd/server, at pinned
# versions, once, into meshlane's cache (scripts/lib/go-build.sh). Prints the directory
# holding all three (the "assets" directory, envtest's layout) on stdout, and nothing
# else there: progress goes to stderr, so callers can take stdout as the path.
#
# KUBEBUILDER_ASSETS (envtest's convention): a directory that already holds etcd,
# kube-apiserver and kubectl (as setup-envtest's downloads do) is used as it is;
# nothing is built.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=lib/go-build.sh
source scripts/lib/go-build.sh

# kubectl is built from the same module as the apiserver, so client and server agree
# exactly (the machine's kubectl dispatcher stops at 1.33).
KUBE_VERSION=v1.34.4
# Kubernetes 1.34 is tested against etcd 3.6 (its default is 3.6.4; the proxy serves 3.6.13+).
ETCD_VERSION=v3.6.16

if [ -n "${KUBEBUILDER_ASSETS:-}" ]; then
  for b in etcd kube-apiserver kubectl; do
    [ -x "$KUBEBUILDER_ASSETS/$b" ] || { echo "build-kube: KUBEBUILDER_ASSETS=$KUBEBUILDER_ASSETS has no executable $b" >&2; exit 1; }
  done
  echo "build-kube: using KUBEBUILDER_ASSETS=$KUBEBUILDER_ASSETS; nothing to build" >&2
  echo "$KUBEBUILDER_ASSETS"
  exit 0
fi

cache=$(meshlane_cache)
assets="$cache/kube-assets-$KUBE_VERSION-etcd-$ETCD_VERSION"
if [ -f "$assets/.complete" ]; then echo "$assets"; exit 0; fi

# k8s.io/kubernetes requires its 31 staging modules at v0.0.0; each is published as v0.<minor>.<patch>.
staging_version="v0.${KUBE_VERSION#v1.}"
replaces="$cache/kubernetes-$KUBE_VERSION.replace"
mkdir -p "$cache"
for m in api apiextensions-apiserver apimachinery apiserver cli-runtime client-go cloud-provider \
  cluster-bootstrap code-generator component-base component-helpers controller-manager cri-api \
  cri-client csi-translation-lib dynamic-resource-allocation endpointslice externaljwt kms \
  kube-aggregator kube-controller-manager kube-proxy kube-scheduler kubectl kubelet metrics \
  mount-utils pod-security-admission sample-apiserver sample-cli-plugin sample-controller; do
  echo "k8s.io/$m $staging_version"
done >"$replaces"

# The Kubernetes build stamps its version this way (hack/lib/version.sh); without it both
# binaries report v0.0.0-master.
minor=${KUBE_VERSION#v1.}; minor=${minor%%.*}
stamp=""
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  stamp+=" -X $pkg.gitVersion=$KUBE_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean"
done
GO_BUILD_LDFLAGS=$stamp go_build_pinned "kubernetes-$KUBE_VERSION" k8s.io/kubernetes "$KUBE_VERSION" \
  "k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kubectl" "$replaces" >&2
# etcd's main package is the module root, so its binary is named after the path's last element (v3).
go_build_pinned "etcd-$ETCD_VERSION" go.etcd.io/etcd/server/v3 "$ETCD_VERSION" go.etcd.io/etcd/server/v3 >&2

mkdir -p "$assets"
ln -sfn "$cache/kubernetes-$KUBE_VERSION/bin/kube-apiserver" "$assets/kube-apiserver"
ln -sfn "$cache/kubernetes-$KUBE_VERSION/bin/kubectl" "$assets/kubectl"
ln -sfn "$cache/etcd-$ETCD_VERSION/bin/v3" "$assets/etcd"
"$assets/etcd" --version >/dev/null && "$assets/kube-apiserver" --version >/dev/null && "$assets/kubectl" version --client >/dev/null
touch "$assets/.complete"
echo "$assets"
