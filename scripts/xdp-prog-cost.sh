#!/bin/bash
# Usage: scripts/xdp-prog-cost.sh PKTRATE [CASE [PKTRATE ARGS...]] (root): the kernel's own
# time per run of vswitch's XDP program while pktrate forwards CASE (default
# switch-xdp-trunk-access) flat out, from the program's run_time_ns/run_cnt (kernel.bpf_stats_enabled, turned on
# for the measurement and restored after; it adds two clock reads per run). README
# "Packet rate through real interfaces".
set -euo pipefail
P=${1:?usage: $0 PKTRATE [CASE]}
CASE=${2:-switch-xdp-trunk-access}
shift $(($# < 2 ? $# : 2))
OUT=$(mktemp)
old=$(sysctl -n kernel.bpf_stats_enabled)
cleanup() {
    sysctl -qw kernel.bpf_stats_enabled="$old"
    [ -n "${PID:-}" ] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null
    rm -f "$OUT"
}
trap cleanup EXIT
sysctl -qw kernel.bpf_stats_enabled=1
"$P" --seconds 6 --repeat 1 --warmup 1 --cases "$CASE" "$@" >"$OUT" 2>&1 &
PID=$!
# The program is loaded once the switch is up; measure 2 s in the middle of the window.
sleep 4
# One line per BPF program the harness holds: "prog_id run_time_ns run_cnt".
progs() {
    for f in /proc/"$PID"/fd/*; do
        [ "$(readlink "$f" 2>/dev/null)" = "anon_inode:bpf-prog" ] || continue
        awk '/^prog_id:/{i=$2} /^run_time_ns:/{t=$2} /^run_cnt:/{c=$2} END{print i, t, c}' \
            /proc/"$PID"/fdinfo/"$(basename "$f")"
    done | sort -u
}
a=$(progs)
sleep 2
b=$(progs)
wait "$PID" || true
PID=
join <(echo "$a") <(echo "$b") | awk '{
    runs = $5 - $3; ns = $4 - $2
    if (runs > 0) printf "XDP program %s: %d runs in 2 s, %.0f ns per run\n", $1, runs, ns / runs
}'
grep "rep 0" "$OUT" || cat "$OUT"
