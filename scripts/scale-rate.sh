#!/usr/bin/env bash
# 64-byte UDP rate between two namespaces on access VLAN 10 of one bridge, with FILLERS
# more veth ports configured (access VLANs 100-149), through vswitchd with the packet
# ports' fast path on or off (issue 23: does a big bridge slow the ports that carry
# traffic?). One run of iperf3 -u -l 18 -b 0 for 5 s from h1 (on CPU 0); the worker on
# CPU 1. Root. Usage: bash scripts/scale-rate.sh FILLERS true|false [BIN_DIR]
set -euo pipefail
N=${1:?fillers}; FAST=${2:?true|false}; B=${3:-$(dirname "$0")/../target/release}
T=sr$$; D=$(mktemp -d /tmp/scale-rate.XXXXXX); DP=
cleanup() {
  [ -n "$DP" ] && kill "$DP" 2>/dev/null && wait "$DP" 2>/dev/null || true
  for h in 1 2; do ip link del "${T}v$h" 2>/dev/null || true; ip netns del "${T}h$h" 2>/dev/null || true; done
  for i in $(seq 1 "$N"); do ip link del "${T}f$i" 2>/dev/null || true; done
  rm -rf "$D"
}
trap cleanup EXIT
printf '[datapath]\nworkers = 1\ncpus = [1]\npacket_fast_path = %s\n' "$FAST" >"$D/vs.toml"
"$B/vswitchd" --config "$D/vs.toml" --socket "$D/vs.sock" >"$D/d.log" 2>&1 &
DP=$!
for _ in $(seq 1 100); do [ -S "$D/vs.sock" ] && break; sleep 0.05; done
C=("$B/vswitchctl" --socket "$D/vs.sock")
"${C[@]}" add-br br0 >/dev/null
for h in 1 2; do
  ip netns add "${T}h$h"
  ip link add "${T}v$h" type veth peer name "${T}p$h"
  ip link set "${T}p$h" netns "${T}h$h"
  ip -n "${T}h$h" addr add "10.87.0.$h/24" dev "${T}p$h"
  ip -n "${T}h$h" link set "${T}p$h" up; ip -n "${T}h$h" link set lo up; ip link set "${T}v$h" up
  "${C[@]}" add-port br0 "${T}v$h" --access 10 >/dev/null
done
for i in $(seq 1 "$N"); do
  ip link add "${T}f$i" type veth peer name "${T}g$i"
  ip link set "${T}f$i" up; ip link set "${T}g$i" up
  "${C[@]}" add-port br0 "${T}f$i" --access $((i % 50 + 100)) >/dev/null
done
ip netns exec "${T}h1" ping -c 3 -i 0.2 10.87.0.2 >/dev/null
ip netns exec "${T}h2" iperf3 -s -1 -D >/dev/null; sleep 0.5
ip netns exec "${T}h1" taskset -c 0 iperf3 -c 10.87.0.2 -u -l 18 -b 0 -t 5 -J >"$D/ip.json"
python3 - "$D/ip.json" "$N" "$FAST" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))['end']['sum']
print('fillers %s, packet fast path %s: sent %.0f pps, received %.0f pps (lost %.1f%%)' % (
    sys.argv[2], sys.argv[3], s['packets'] / s['seconds'],
    (s['packets'] - s['lost_packets']) / s['seconds'], s['lost_percent']))
PY
