#!/bin/busybox sh
# PID 1 of the guest (busybox, from our initramfs). Loads the modules the 9p
# root needs, mounts the host's filesystem read-only at /host, puts writable
# tmpfs where the suites write, and runs the host's bash with guest-run.sh in a
# chroot. It never talks to a network: only loopback exists in the guest.
# The kernel command line carries meshlane.repo= (the checkout's path on the host).
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev

fail() {
  echo "meshlane-guest: FATAL: $*"
  poweroff -f
}

# Modules in dependency order (lab/qemu/initramfs.ts wrote the list): virtio, 9p, overlay.
while read -r ko; do
  [ -n "$ko" ] || continue
  insmod "/modules/$ko" || fail "insmod $ko failed"
done < /modules/order

repo=""
for arg in $(cat /proc/cmdline); do
  case "$arg" in meshlane.repo=*) repo="${arg#meshlane.repo=}" ;; esac
done
[ -n "$repo" ] || fail "no meshlane.repo= on the kernel command line"

# The host's root, read-only, under an overlay whose upper layer is guest memory:
# the guest may create what it needs (/lib/modules here) and the host sees none of it.
mkdir -p /lower /rw /host
mount -t 9p -o ro,trans=virtio,version=9p2000.L,msize=524288,cache=loose hostroot /lower || fail "cannot mount the host's root over 9p"
mount -t tmpfs -o mode=755 rw /rw
mkdir -p /rw/upper /rw/work
mount -t overlay -o lowerdir=/lower,upperdir=/rw/upper,workdir=/rw/work overlay /host || fail "cannot mount the overlay over the host's root"
mount -t proc proc /host/proc
mount -t sysfs sys /host/sys
mount -t devtmpfs dev /host/dev
mkdir -p /host/dev/pts /host/dev/shm
mount -t devpts devpts /host/dev/pts
mount -t tmpfs -o mode=1777 shm /host/dev/shm
# /run gets a fresh tmpfs (the host's netns pins and locks must not show through);
# /tmp stays the overlay's, since a CI checkout may live there.
mount -t tmpfs -o mode=755 run /host/run
mount -t cgroup2 cgroup2 /host/sys/fs/cgroup || fail "cannot mount cgroup2"
mount -t bpf bpf /host/sys/fs/bpf || fail "cannot mount bpffs"
mount -t tracefs tracefs /host/sys/kernel/tracing 2>/dev/null || true
# The kernel's own modules (unpacked on the host, depmod'ed there) replace the host's
# /lib/modules, so modprobe and the kernel's module autoloading find them.
mkdir -p /host/usr/lib/modules
mount --bind "/lower$(cat /modules/tree)" /host/usr/lib/modules || fail "cannot bind the kernel's modules"
mkdir -p /host/run/meshlane/out
mount -t 9p -o rw,trans=virtio,version=9p2000.L,msize=524288,cache=none out /host/run/meshlane/out || fail "cannot mount the results share"
# The kernel's own module requests (nf_tables, xt_* for iptables-nft, ...) run in
# PID 1's root, this initramfs: hand them to the host's modprobe inside the chroot.
printf '#!/bin/sh\nexec chroot /host /sbin/modprobe "$@"\n' > /bin/modprobe-host
chmod 755 /bin/modprobe-host
echo /bin/modprobe-host > /proc/sys/kernel/modprobe
ip link set lo up 2>/dev/null || true

chroot /host /bin/bash "$repo/lab/qemu/guest-run.sh" "$repo" /run/meshlane/out
echo "meshlane-guest: guest-run exited $?"
sync
umount /host/run/meshlane/out 2>/dev/null
poweroff -f
