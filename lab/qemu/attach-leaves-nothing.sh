#!/bin/bash
# On a kernel doctor refuses: `meshlane-loader attach` onto a cgroup of our own must
# fail and leave no pins, no attachments and no programs behind. Prints
# "attach-exit N", attach's output, then one "leftover: ..." line per thing left.
set -u
cg=/sys/fs/cgroup/meshlane-old-kernel-$$
pins=/sys/fs/bpf/meshlane-old-kernel-$$
mkdir "$cg"
node dist/loader/cli.js attach --cgroup "$cg" --pin-dir "$pins" >/tmp/attach.out 2>&1
echo "attach-exit $?"
cat /tmp/attach.out
if [ -e "$pins" ]; then
  left=$(find "$pins" -mindepth 1 | tr "\n" " ")
  echo "leftover: pin directory $pins${left:+ holding $left}"
fi
attached=$(bpftool cgroup show "$cg" 2>&1 | tail -n +2)
[ -z "$attached" ] || echo "leftover: programs attached to $cg: $attached"
progs=$(bpftool prog show 2>/dev/null | grep -E ' name mesh_' || true)
[ -z "$progs" ] || echo "leftover: programs loaded: $progs"
maps=$(bpftool map show 2>/dev/null | grep -E ' name mesh_' || true)
[ -z "$maps" ] || echo "leftover: maps: $maps"
rmdir "$cg" || echo "leftover: cannot remove $cg"
