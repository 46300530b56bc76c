#!/bin/bash
# Usage: scripts/idle-cpu.sh BINDIR (root): CPU use of an idle vswitchd from BINDIR with
# two AF_XDP veth ports and one worker, over 10 s (README "Idle cost").
set -euo pipefail
B=${1:?usage: $0 BINDIR (the directory holding vswitchd and vswitchctl)}
T=$(mktemp -d)
S=$T/sock
A0=ic$$a0 A1=ic$$a1
P=
cleanup() {
    [ -n "$P" ] && kill "$P" 2>/dev/null && wait "$P" 2>/dev/null
    ip link del "$A0" 2>/dev/null || true
    ip link del "$A1" 2>/dev/null || true
    rm -rf "$T"
}
trap cleanup EXIT
ip link add "$A0" type veth peer name "${A0}p"
ip link add "$A1" type veth peer name "${A1}p"
for i in "$A0" "${A0}p" "$A1" "${A1}p"; do ip link set "$i" up; done
"$B/vswitchd" --config "$T/c.toml" --socket "$S" >"$T/log" 2>&1 &
P=$!
for _ in $(seq 50); do [ -S "$S" ] && break; sleep 0.1; done
ctl() { "$B/vswitchctl" --socket "$S" "$@" >/dev/null; }
ctl add-br br0
ctl add-port br0 p0 --type afxdp --interface "$A0" --access 10
ctl add-port br0 p1 --type afxdp --interface "$A1" --access 10
sleep 2
ticks() { awk '{print $14 + $15}' "/proc/$P/stat"; }
t0=$(ticks)
sleep 10
t1=$(ticks)
hz=$(getconf CLK_TCK)
awk -v d=$((t1 - t0)) -v hz="$hz" -v b="$B" \
    'BEGIN { printf "%s: vswitchd used %d ticks (%d/s) in 10 s = %.1f%% of a CPU\n", b, d, hz, d / hz / 10 * 100 }'
