#!/usr/bin/env bash
# Installs what meshlane needs on a fresh Debian machine, only where missing, then
# installs npm dependencies and builds. Called by `npm test` and `npm run demo`, so
# both work on a new machine with nothing else done first.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian package → a file that proves it is installed (cheaper than dpkg -s per run).
declare -A WANT=(
  [clang]=/usr/bin/clang
  [llvm]=/usr/bin/llvm-strip
  [libbpf-dev]=/usr/include/bpf/bpf_helpers.h
  [libbpf1]=/usr/lib/x86_64-linux-gnu/libbpf.so.1
  [linux-libc-dev]=/usr/include/linux/bpf.h
  [bpftool]=/usr/sbin/bpftool
  [iproute2]=/usr/sbin/ip
  [iptables]=/usr/sbin/iptables
  [haproxy]=/usr/sbin/haproxy
  [wrk]=/usr/bin/wrk
  [nginx-light]=/usr/sbin/nginx
  [util-linux]=/usr/bin/setpriv
  [procps]=/usr/bin/pgrep
  # Debian kernels under qemu (lab/qemu, npm run test:kernels and test/kernels/).
  [qemu-system-x86]=/usr/bin/qemu-system-x86_64
  [busybox-static]=/bin/busybox
  [cpio]=/bin/cpio
  [kmod]=/sbin/depmod
  [xz-utils]=/usr/bin/xz
  [debian-archive-keyring]=/usr/share/keyrings/debian-archive-keyring.gpg
  # io_uring receive in the socket-API matrix (lab/apps).
  [liburing-dev]=/usr/include/liburing.h
)
arch_triplet="$(gcc -dumpmachine 2>/dev/null || echo x86_64-linux-gnu)"
missing=()
for pkg in "${!WANT[@]}"; do
  path="${WANT[$pkg]//x86_64-linux-gnu/$arch_triplet}"
  [ -e "$path" ] || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "bootstrap: missing Debian packages (${missing[*]}); run as root to install them" >&2
    exit 1
  fi
  echo "bootstrap: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # nginx-light and haproxy start system services on install; the tests start their own.
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  for svc in nginx haproxy; do
    (command -v systemctl >/dev/null && systemctl disable --now "$svc" >/dev/null 2>&1) || true
    pkill -x "$svc" 2>/dev/null || true
  done
fi

# npm ci only when the lock file changed since the last install.
stamp=node_modules/.meshlane-lock-stamp
if [ ! -f "$stamp" ] || ! cmp -s package-lock.json "$stamp"; then
  npm ci --no-audit --no-fund --loglevel=error
  cp package-lock.json "$stamp"
fi
npm run --silent build

# kube-apiserver, kubectl and etcd for the control-plane tests and the demo (minutes once, then nothing).
bash scripts/build-kube.sh >/dev/null
# Istio's real injector and istio-iptables for the lab (built once into the cache).
bash scripts/build-istio.sh
