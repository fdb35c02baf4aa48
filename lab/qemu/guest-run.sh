#!/bin/bash
# Runs inside the guest, in the host's root (read-only 9p) with the guest's
# kernel: each step of OUT/steps ("name<TAB>command" lines, written by the host)
# runs in the checkout; its output goes to OUT/<name>.log, its exit code to
# OUT/<name>.rc. OUT/done is written last, so the host can tell a finished run
# from a guest that died half-way.
set -u
repo=$1 out=$2
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/tmp/home LANG=C.UTF-8 CI=true
# TCG: processes start far slower than on the host (lab/until.ts LAB_SLOWDOWN).
export MESHLANE_LAB_SLOWDOWN=12
mkdir -p "$HOME"
# PID 1's limit (4096) is below what HAProxy asks for; a node's systemd gives far more.
ulimit -Hn 1048576 && ulimit -Sn 1048576
cd "$repo" || exit 1
for m in $(cat "$out/modules" 2>/dev/null); do
  modprobe "$m" >>"$out/modprobe.log" 2>&1 || echo "modprobe $m failed" >>"$out/modprobe.log"
done
uname -r >"$out/uname"
step_timeout=$(sed -n 's/^MESHLANE_STEP_TIMEOUT=//p' "$out/env")
MESHLANE_CACHE=$(sed -n 's/^MESHLANE_CACHE=//p' "$out/env")
export MESHLANE_CACHE
while IFS=$'\t' read -r name cmd; do
  [ -n "$name" ] || continue
  start=$(date +%s.%N)
  timeout --kill-after=10 "$step_timeout" bash -c "$cmd" >"$out/$name.log" 2>&1 </dev/null
  echo $? >"$out/$name.rc"
  echo "$start $(date +%s.%N)" >"$out/$name.time"
done <"$out/steps"
touch "$out/done"
