#!/usr/bin/env bash
# vswitch demo: the seeds' scenario on real interfaces, driven through vswitchctl.
#
#   Host A: vswitchd A, bridge br0
#     vm1, vm2    access VLAN 100  (veth, plain add-port: a packet port)  vm2 runs dnsmasq,
#                                                    vm1 is its DHCP client
#     vm3         access VLAN 200  (veth, packet port)  tries DHCP too, must get nothing
#     router      trunk 100,200    (veth, packet port)  watches the trunk with tcpdump -e
#     vm5         access VLAN 100  (tap port; the switch creates the tap, we move it to vm5)
#     cable       trunk 100,200    (AF_XDP, as an uplink NIC would be) -> wire -> host B
#   Host B: vswitchd B, bridge br1
#     vm4         access VLAN 100  (veth, packet port)
#     cable       trunk 100,200    (AF_XDP)
#   Every host keeps the kernel's default offloads (TX checksum offload, TSO), as pods and
#   VMs do; step 5 runs TCP (iperf3) through packet, tap and AF_XDP ports and shows the rates.
#   wire: a VLAN-unaware Linux bridge between the two cable ends, only so that tcpdump can
#   see the tagged frames (a capture on an end an AF_XDP socket owns sees nothing).
#
# All hosts use one subnet (10.0.0.0/24), so ARP would work across VLANs if the switch
# leaked. Runs as root, unattended; everything is named vsd-<pid>-* / vsd<pid>* and torn
# down on exit (trap), with an overall watchdog. Exit 0 only if every expected outcome held.
#
# Environment: VSWITCHD, VSWITCHCTL (binaries; default target/release), VSD_DEMO_TIMEOUT
# (overall limit in seconds, default 170), VSD_DEMO_DHCP=busybox|python (DHCP client).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VSWITCHD=${VSWITCHD:-$ROOT/target/release/vswitchd}
VSWITCHCTL=${VSWITCHCTL:-$ROOT/target/release/vswitchctl}
LIMIT=${VSD_DEMO_TIMEOUT:-170}
ID=$$
P="vdemo$ID"    # link name prefix (<= 12 chars, links add <= 2)
NSP="vsd-demo-$ID" # namespace prefix
START=$SECONDS

# ---------------------------------------------------------------------------------------
# Output helpers
# ---------------------------------------------------------------------------------------
FAILS=()
step() { printf '\n==== %s  [t=%ss] ====\n' "$*" "$((SECONDS - START))"; }
note() { printf '  %s\n' "$*"; }
ok() { printf '  [ ok ] %s\n' "$*"; }
bad() { printf '  [FAIL] %s\n' "$*"; FAILS+=("$*"); }
indent() { sed 's/^/      /'; }
die() { printf 'demo: %s\n' "$*" >&2; exit 1; }

# ---------------------------------------------------------------------------------------
# Teardown: daemons first (the tap goes with vswitchd A's fd), then namespaces, then links.
# ---------------------------------------------------------------------------------------
TMP=""
WATCHDOG=""
BG_PIDS=()
DAEMON_PIDS=()
NAMESPACES=()
LINKS=()

stop_pid() { # pid [seconds]: TERM, wait, KILL
  local pid=$1 t=${2:-5} i
  kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < t * 10; i++)); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
}

cleanup() {
  local rc=$?
  set +e
  trap - EXIT INT TERM
  if [ -n "$WATCHDOG" ]; then kill -TERM "$WATCHDOG" 2>/dev/null; wait "$WATCHDOG" 2>/dev/null; fi
  for pid in "${BG_PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null; done
  for pid in "${DAEMON_PIDS[@]}"; do stop_pid "$pid" 5; done
  for pid in "${BG_PIDS[@]}"; do stop_pid "$pid" 2; done
  for ns in "${NAMESPACES[@]}"; do
    for pid in $(ip netns pids "$ns" 2>/dev/null); do stop_pid "$pid" 2; done
    ip netns del "$ns" 2>/dev/null
  done
  for l in "${LINKS[@]}"; do
    ip link show dev "$l" >/dev/null 2>&1 && ip link del dev "$l" 2>/dev/null
  done
  wait 2>/dev/null
  [ -n "$TMP" ] && rm -rf "$TMP"
  printf '\ndemo: torn down (%s namespaces, %s links, %s daemons), %ss\n' \
    "${#NAMESPACES[@]}" "${#LINKS[@]}" "${#DAEMON_PIDS[@]}" "$((SECONDS - START))"
  exit "$rc"
}
trap cleanup EXIT
trap 'echo "demo: interrupted" >&2; exit 130' INT
trap 'echo "demo: terminated (overall limit ${LIMIT}s?)" >&2; exit 143' TERM

# Leftovers of an earlier run that was killed with SIGKILL (its pid no longer exists).
sweep_stale() {
  local ns pid l d f
  for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep -E '^vsd-demo-[0-9]+-' || true); do
    pid=${ns#vsd-demo-}; pid=${pid%%-*}
    kill -0 "$pid" 2>/dev/null && continue
    for f in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$f" 2>/dev/null || true; done
    ip netns del "$ns" 2>/dev/null || true
  done
  for d in /tmp/vsd-demo.*; do
    [ -d "$d" ] || continue
    pid=${d#/tmp/vsd-demo.}; pid=${pid%%.*}
    kill -0 "$pid" 2>/dev/null && continue
    for f in "$d"/*.pid; do
      [ -f "$f" ] || continue
      l=$(cat "$f" 2>/dev/null || true)
      [ -n "$l" ] && grep -qa vswitchd "/proc/$l/cmdline" 2>/dev/null && kill -KILL "$l" 2>/dev/null || true
    done
    rm -rf "$d"
  done
  for l in $(ip -o link show 2>/dev/null | awk -F': ' '{print $2}' | sed 's/@.*//' | grep -E '^vdemo[0-9]+[a-z]' || true); do
    pid=$(sed -E 's/^vdemo([0-9]+).*/\1/' <<<"$l") # names are vdemo<pid><letter>...
    kill -0 "$pid" 2>/dev/null && continue
    ip link del dev "$l" 2>/dev/null || true
  done
}

# ---------------------------------------------------------------------------------------
# Topology helpers
# ---------------------------------------------------------------------------------------
nsx() { local ns=$1; shift; ip netns exec "$NSP-$ns" "$@"; }
# nsx_exec NS CMD...: like nsx, but replaces the (sub)shell, so that `nsx_exec ... &` gives
# $! = the command's own pid (signals reach it, not an intermediate bash).
nsx_exec() { local ns=$1; shift; exec ip netns exec "$NSP-$ns" "$@"; }

add_ns() {
  ip netns add "$NSP-$1"
  NAMESPACES+=("$NSP-$1")
  nsx "$1" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
  nsx "$1" ip link set lo up
}

# veth_to_ns LINK NS: LINK stays in the root namespace (the switch's side), its peer is eth0
# in NS.
veth_to_ns() {
  local link=$1 ns=$2
  ip link add "$link" type veth peer name eth0 netns "$NSP-$ns"
  LINKS+=("$link")
  sysctl -qw "net.ipv6.conf.$link.disable_ipv6=1"
  ip link set "$link" up
}

# host_if NS MAC [IP]: bring up eth0 with a fixed MAC (readable fdb) and VLAN tag offload
# off (tags stay in the bytes, for tcpdump); checksum offload and TSO stay on, as in a pod.
host_if() {
  local ns=$1 mac=$2 ip=${3:-} dev=${4:-eth0}
  nsx "$ns" ip link set "$dev" address "$mac"
  nsx "$ns" ethtool -K "$dev" txvlan off >/dev/null 2>&1 || true
  [ -n "$ip" ] && nsx "$ns" ip addr add "$ip/24" dev "$dev"
  nsx "$ns" ip link set "$dev" up
}

# start_daemon NAME: vswitchd with its own config and socket in $TMP; sets SOCK_<NAME>.
start_daemon() {
  local name=$1 cfg="$TMP/vswitchd-$1.toml" sock="$TMP/vswitchd-$1.sock" i
  printf '[datapath]\nworkers = 1\n' >"$cfg"
  "$VSWITCHD" --config "$cfg" --socket "$sock" >"$TMP/vswitchd-$name.log" 2>&1 &
  local pid=$!
  DAEMON_PIDS+=("$pid")
  echo "$pid" >"$TMP/vswitchd-$name.pid"
  for ((i = 0; i < 100; i++)); do
    if [ -S "$sock" ] && VSWITCH_SOCKET="$sock" timeout 5 "$VSWITCHCTL" show >/dev/null 2>&1; then
      note "vswitchd $name running (pid $pid, config $cfg, socket $sock)"
      printf -v "SOCK_$name" '%s' "$sock"
      return 0
    fi
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  cat "$TMP/vswitchd-$name.log" >&2
  die "vswitchd $name did not come up"
}

# ctl NAME ARGS...: run vswitchctl against daemon NAME, echoing the command and its output.
ctl() {
  local name=$1; shift
  local sock_var="SOCK_$name"
  printf '  %s$ vswitchctl %s\n' "$name" "$*"
  local out rc=0
  out=$(VSWITCH_SOCKET="${!sock_var}" timeout 20 "$VSWITCHCTL" "$@" 2>&1) || rc=$?
  [ -n "$out" ] && printf '%s\n' "$out" | indent
  if [ "$rc" -ne 0 ]; then
    printf '      (exit %s)\n' "$rc"
    printf '\n---- vswitchd %s log ----\n' "$name"
    tail -n 30 "$TMP/vswitchd-$name.log" || true
    die "vswitchctl $* failed on host $name"
  fi
}

# ctl_quiet NAME ARGS...: same, output only.
ctl_quiet() {
  local name=$1; shift
  local sock_var="SOCK_$name"
  VSWITCH_SOCKET="${!sock_var}" timeout 20 "$VSWITCHCTL" "$@"
}

# start_capture NS IF FILE FILTER...: tcpdump -e in the background, waits until it listens.
start_capture() {
  local ns=$1 dev=$2 file=$3; shift 3
  (nsx_exec "$ns" timeout 60 tcpdump -i "$dev" -e -n -l --immediate-mode "$@" >"$file" 2>"$file.err") &
  BG_PIDS+=("$!")
  CAPTURE_PID=$!
  local i
  for ((i = 0; i < 50; i++)); do
    grep -q 'listening on' "$file.err" 2>/dev/null && return 0
    sleep 0.1
  done
  cat "$file.err" >&2
  die "tcpdump in $ns on $dev did not start"
}

# tidy_capture: tcpdump lines without the timestamp, the trailing length and blank lines.
tidy_capture() { sed -E '/^\s*$/d; s/^[0-9:.]+ //; s/, length [0-9]+$//'; }

stop_capture() { # pid (of timeout, which passes TERM on to tcpdump): flush, then stop
  sleep 0.3
  kill -TERM "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
}

# ping_ok FROM_NS DST WHAT: expects replies.
ping_ok() {
  local ns=$1 dst=$2 what=$3 out
  out=$(nsx "$ns" timeout 15 ping -c 3 -i 0.2 -W 2 "$dst" 2>&1) || true
  local summary
  summary=$(grep -E 'packets transmitted' <<<"$out" || echo "no ping summary")
  if grep -qE ' 0 received|100% packet loss|no ping summary' <<<"$summary$out" ||
    ! grep -qE '[1-9][0-9]* received' <<<"$summary"; then
    bad "$what: ping $dst from $ns failed ($summary)"
  else
    ok "$what: ping $dst from $ns: $summary"
  fi
}

# ping_fails FROM_NS DST WHAT: expects no reply within a 3 s deadline.
ping_fails() {
  local ns=$1 dst=$2 what=$3 out
  out=$(nsx "$ns" timeout 10 ping -c 3 -i 0.5 -w 3 "$dst" 2>&1) || true
  local summary
  summary=$(grep -E 'packets transmitted' <<<"$out" || echo "no ping summary")
  if grep -qE '[1-9][0-9]* received' <<<"$summary"; then
    bad "$what: ping $dst from $ns got replies but must not ($summary)"
  else
    ok "$what: ping $dst from $ns gets no reply: $summary"
  fi
}

# ---------------------------------------------------------------------------------------
# DHCP client: busybox udhcpc, or a small Python DHCP client on a raw socket.
# Both print "LEASE <ip> <mask> server <server>" on success and configure the address.
# ---------------------------------------------------------------------------------------
write_dhcp_clients() {
  cat >"$TMP/udhcpc.script" <<'EOF'
#!/bin/sh
# udhcpc event script: prints the lease and puts the address on the interface.
case "$1" in
  bound|renew)
    ip addr add "$ip/${mask:-24}" dev "$interface" 2>/dev/null || true
    echo "LEASE $ip ${mask:-24} server ${serverid:-?} lease ${lease:-?}s"
    ;;
  leasefail|nak) echo "DHCP $1 on $interface" ;;
esac
exit 0
EOF
  chmod +x "$TMP/udhcpc.script"

  cat >"$TMP/dhcpc.py" <<'EOF'
# Minimal DHCP client: DISCOVER -> OFFER -> REQUEST -> ACK over AF_PACKET.
import os, random, socket, struct, subprocess, sys, time
ifname, tries, interval = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
mac = bytes.fromhex(open(f"/sys/class/net/{ifname}/address").read().strip().replace(":", ""))
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0800))
s.bind((ifname, 0))
xid = random.getrandbits(32)
def csum(b):
    if len(b) % 2: b += b"\0"
    t = sum(struct.unpack(f"!{len(b)//2}H", b)); t = (t >> 16) + (t & 0xffff); t += t >> 16
    return ~t & 0xffff
def frame(opts):
    bootp = struct.pack("!BBBBIHH4s4s4s4s16s64s128s", 1, 1, 6, 0, xid, 0, 0x8000, b"\0"*4,
                        b"\0"*4, b"\0"*4, b"\0"*4, mac, b"", b"") + b"\x63\x82\x53\x63" + opts + b"\xff"
    udp = struct.pack("!HHHH", 68, 67, 8 + len(bootp), 0) + bootp
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0, 64, 17, 0, b"\0"*4, b"\xff"*4)
    ip = ip[:10] + struct.pack("!H", csum(ip)) + ip[12:]
    return b"\xff"*6 + mac + b"\x08\x00" + ip + udp
def parse(f):
    if len(f) < 14 + 20 + 8 + 240 or f[23] != 17: return None
    ihl = (f[14] & 15) * 4; u = 14 + ihl
    if struct.unpack("!H", f[u+2:u+4])[0] != 68: return None
    b = f[u+8:]
    if b[0] != 2 or struct.unpack("!I", b[4:8])[0] != xid: return None
    opts, i = {}, 240
    while i < len(b) and b[i] != 255:
        if b[i] == 0: i += 1; continue
        opts[b[i]] = b[i+2:i+2+b[i+1]]; i += 2 + b[i+1]
    return socket.inet_ntoa(b[16:20]), opts
def exchange(opts, want):
    for _ in range(tries):
        s.send(frame(opts)); end = time.time() + interval
        while time.time() < end:
            s.settimeout(max(0.01, end - time.time()))
            try: r = parse(s.recv(2048))
            except socket.timeout: break
            if r and r[1].get(53) == bytes([want]): return r
    return None
off = exchange(b"\x35\x01\x01", 2)
if not off: print("DHCP no offer"); sys.exit(1)
yiaddr, o = off
print(f"OFFER {yiaddr} from {socket.inet_ntoa(o.get(54, b'????'))}")
ack = exchange(b"\x35\x01\x03\x32\x04" + socket.inet_aton(yiaddr) + b"\x36\x04" + o[54], 5)
if not ack: print("DHCP no ack"); sys.exit(1)
mask = socket.inet_ntoa(ack[1].get(1, b"\xff\xff\xff\0"))
bits = sum(bin(x).count("1") for x in socket.inet_aton(mask))
subprocess.run(["ip", "addr", "add", f"{yiaddr}/{bits}", "dev", ifname], check=False)
lease = struct.unpack("!I", ack[1].get(51, b"\0\0\0\0"))[0]
print(f"LEASE {yiaddr} {mask} server {socket.inet_ntoa(o[54])} lease {lease}s")
EOF
}

# dhcp_client NS TRIES INTERVAL: runs the client in NS (bounded); prints its output.
dhcp_client() {
  local ns=$1 tries=$2 interval=$3 limit=$(($2 * $3 + 5))
  if [ "$DHCP_CLIENT" = busybox ]; then
    nsx "$ns" timeout "$limit" busybox udhcpc -f -q -n -i eth0 -t "$tries" -T "$interval" \
      -A 1 -s "$TMP/udhcpc.script" 2>&1 || true
  else
    nsx "$ns" timeout "$limit" python3 "$TMP/dhcpc.py" eth0 "$tries" "$interval" 2>&1 || true
  fi
}

# ---------------------------------------------------------------------------------------
# Pre-flight
# ---------------------------------------------------------------------------------------
[ "$(id -u)" -eq 0 ] || die "must run as root (namespaces, AF_XDP, tap)"
[ -x "$VSWITCHD" ] && [ -x "$VSWITCHCTL" ] ||
  die "missing $VSWITCHD or $VSWITCHCTL: run 'cargo build --release -p vswitch-ctl' (or 'make demo')"
for tool in ip ethtool tcpdump dnsmasq ping timeout iperf3 python3; do
  command -v "$tool" >/dev/null || die "missing $tool: run 'bash scripts/setup.sh demo'"
done
DHCP_CLIENT=${VSD_DEMO_DHCP:-}
if [ -z "$DHCP_CLIENT" ]; then
  if command -v busybox >/dev/null && busybox udhcpc --help >/dev/null 2>&1; then
    DHCP_CLIENT=busybox
  else
    DHCP_CLIENT=python
  fi
fi
[ "$DHCP_CLIENT" = python ] && ! command -v python3 >/dev/null && die "no DHCP client: need busybox or python3"
mountpoint -q /sys/fs/bpf 2>/dev/null || mount -t bpf bpf /sys/fs/bpf 2>/dev/null || true

sweep_stale
TMP=$(mktemp -d "/tmp/vsd-demo.$ID.XXXXXX")
( trap 'kill "$sp" 2>/dev/null; exit 0' TERM
  sleep "$LIMIT" & sp=$!
  wait "$sp"
  echo "demo: overall limit of ${LIMIT}s reached, stopping" >&2
  kill -TERM "$ID" ) &
WATCHDOG=$!
write_dhcp_clients

MAC1=02:00:00:00:00:01 MAC2=02:00:00:00:00:02 MAC3=02:00:00:00:00:03
MAC4=02:00:00:00:00:04 MAC5=02:00:00:00:00:05 MACR=02:00:00:00:00:0a
IP2=10.0.0.2 IP3=10.0.0.3 IP4=10.0.0.4 IP5=10.0.0.5
DHCP_RANGE_LO=10.0.0.100 DHCP_RANGE_HI=10.0.0.149

printf 'vswitch demo (run %s): two vswitchd hosts, VLANs 100/200, DHCP, trunks, a tap port\n' "$ID"
printf 'binaries: %s, %s; DHCP client: %s\n' "$VSWITCHD" "$VSWITCHCTL" "$DHCP_CLIENT"

# ---------------------------------------------------------------------------------------
step "1. Host A: vswitchd A, bridge br0, VMs on veth ports (plain add-port) and one tap port"
# ---------------------------------------------------------------------------------------
for ns in vm1 vm2 vm3 router vm5; do add_ns "$ns"; done
veth_to_ns "${P}v1" vm1
veth_to_ns "${P}v2" vm2
veth_to_ns "${P}v3" vm3
veth_to_ns "${P}r" router
host_if vm1 "$MAC1"                # address comes from DHCP in step 2
host_if vm2 "$MAC2" "$IP2"         # the DHCP server
host_if vm3 "$MAC3"                # tries DHCP in VLAN 200, then gets a static address
host_if router "$MACR"             # no address: it only watches the trunk
note "namespaces: $NSP-{vm1,vm2,vm3,router,vm5}; switch-side veths: ${P}v1 ${P}v2 ${P}v3 ${P}r"
note "MACs: vm1 $MAC1, vm2 $MAC2, vm3 $MAC3, vm4 $MAC4, vm5 $MAC5, router $MACR"
start_daemon A
ctl A add-br br0
ctl A add-port br0 vm1 --interface "${P}v1" --access 100
ctl A add-port br0 vm2 --interface "${P}v2" --access 100
ctl A add-port br0 vm3 --interface "${P}v3" --access 200
ctl A add-port br0 router --interface "${P}r" --trunk 100,200
ctl A add-port br0 vm5 --type tap --interface "${P}t5" --access 100
# The switch created tap ${P}t5 and holds its fd; the kernel side moves into vm5.
LINKS+=("${P}t5")
ip link set "${P}t5" netns "$NSP-vm5"
host_if vm5 "$MAC5" "$IP5" "${P}t5"
note "tap ${P}t5 (kernel side of port vm5) moved into $NSP-vm5 with $IP5"
# While the tap was still in the root namespace the kernel may have sent IPv6 frames from
# its first, random MAC: forget what was learned on the port.
ctl A fdb flush br0 --port vm5
ctl A show

# ---------------------------------------------------------------------------------------
step "2. DHCP: dnsmasq in vm2 (VLAN 100) serves vm1 (VLAN 100), not vm3 (VLAN 200)"
# ---------------------------------------------------------------------------------------
(nsx_exec vm2 dnsmasq --no-daemon --conf-file=/dev/null --port=0 --interface=eth0 --bind-interfaces \
  --dhcp-range="$DHCP_RANGE_LO,$DHCP_RANGE_HI,255.255.255.0,10m" --dhcp-authoritative --no-ping \
  --dhcp-leasefile="$TMP/dnsmasq.leases" --pid-file="$TMP/dnsmasq.pid" --user=root \
  --log-dhcp --log-facility=- >"$TMP/dnsmasq.log" 2>&1) &
BG_PIDS+=("$!")
DNSMASQ_PID=$!
for ((i = 0; i < 50; i++)); do
  grep -q 'DHCP, IP range' "$TMP/dnsmasq.log" 2>/dev/null && break
  kill -0 "$DNSMASQ_PID" 2>/dev/null || { cat "$TMP/dnsmasq.log" >&2; die "dnsmasq exited"; }
  sleep 0.1
done
note "vm2: dnsmasq --port=0 --interface=eth0 --dhcp-range=$DHCP_RANGE_LO,$DHCP_RANGE_HI (VLAN 100)"
start_capture router eth0 "$TMP/router.dhcp" 'udp and (port 67 or port 68)'
ROUTER_CAP=$CAPTURE_PID
note "router: tcpdump -e -n -i eth0 'udp and (port 67 or port 68)' on the trunk"
note "vm1 and vm3 ask for a lease at the same time ($DHCP_CLIENT client; vm3 gives up after 3 DISCOVERs, 2 s apart)"
dhcp_client vm3 3 2 >"$TMP/vm3.dhcp" &
VM3_DHCP=$!
BG_PIDS+=("$VM3_DHCP")
dhcp_client vm1 4 2 >"$TMP/vm1.dhcp"
wait "$VM3_DHCP" || true
stop_capture "$ROUTER_CAP"

note "vm1 DHCP client:"
indent <"$TMP/vm1.dhcp"
LEASE1=$(awk '/^LEASE /{print $2; exit}' "$TMP/vm1.dhcp")
if [ -n "$LEASE1" ]; then
  ok "vm1 (VLAN 100) got lease $LEASE1 from dnsmasq in vm2"
  IP1=$LEASE1
else
  bad "vm1 (VLAN 100) got no DHCP lease"
  IP1=10.0.0.1
  nsx vm1 ip addr add "$IP1/24" dev eth0
  note "vm1: static $IP1 instead, so that the rest of the demo can run"
fi
note "vm3 DHCP client:"
indent <"$TMP/vm3.dhcp"
if grep -q '^LEASE ' "$TMP/vm3.dhcp"; then
  bad "vm3 (VLAN 200) got a lease from the VLAN 100 server: $(grep '^LEASE' "$TMP/vm3.dhcp")"
else
  ok "vm3 (VLAN 200) got no lease (its DISCOVERs never reach VLAN 100)"
fi
nsx vm3 ip addr flush dev eth0
nsx vm3 ip addr add "$IP3/24" dev eth0
note "vm3: static $IP3/24 (same subnet as VLAN 100, so a leak would show in step 3)"

note "dnsmasq log (vm2):"
grep -E 'DHCP(DISCOVER|OFFER|REQUEST|ACK)' "$TMP/dnsmasq.log" | sed -E 's/^dnsmasq-dhcp(\[[0-9]+\])?: //' | indent || true
if grep -qi "$MAC3" "$TMP/dnsmasq.log"; then
  bad "dnsmasq heard vm3 ($MAC3, VLAN 200)"
else
  ok "dnsmasq never heard from vm3 ($MAC3)"
fi

note "router's trunk, DHCP frames (tcpdump -e):"
if [ -s "$TMP/router.dhcp" ]; then
  tidy_capture <"$TMP/router.dhcp" | head -n 12 | indent
else
  note "    (nothing captured)"
fi
first100=$(grep -m1 -E "^.*$MAC1 > ff:ff:ff:ff:ff:ff.*vlan 100," "$TMP/router.dhcp" || true)
if [ -n "$first100" ]; then
  ok "vm1's DHCP DISCOVER (broadcast) reached the router's trunk tagged 'vlan 100':"
  tidy_capture <<<"$first100" | indent
else
  bad "the router's trunk did not see vm1's DHCP broadcast tagged with VLAN 100"
fi
if grep -E "vlan 200," "$TMP/router.dhcp" | grep -qiE "$MAC1|$MAC2"; then
  bad "VLAN 100 DHCP traffic (vm1/vm2) appeared on the trunk with VLAN 200"
else
  ok "no VLAN 100 DHCP frame (vm1/vm2) appeared on the trunk with VLAN 200"
fi
if grep -qE "$MAC3 > ff:ff:ff:ff:ff:ff.*vlan 200," "$TMP/router.dhcp"; then
  ok "vm3's DISCOVER appears on the trunk only as VLAN 200 (the trunk carries both, apart)"
fi
if grep -E "vlan 100," "$TMP/router.dhcp" | grep -qi "$MAC3"; then
  bad "vm3's (VLAN 200) DHCP appeared on the trunk with VLAN 100"
fi

# ---------------------------------------------------------------------------------------
step "3. Same VLAN talks directly, different VLANs never leak"
# ---------------------------------------------------------------------------------------
note "vm1 $IP1, vm2 $IP2, vm5 $IP5 (tap) in VLAN 100; vm3 $IP3 in VLAN 200; all 10.0.0.0/24"
ping_ok vm1 "$IP2" "VLAN 100 vm1 -> vm2 (packet <-> packet port)"
ping_ok vm2 "$IP1" "VLAN 100 vm2 -> vm1"
ping_ok vm1 "$IP5" "VLAN 100 vm1 -> vm5 (packet -> tap port)"
ping_ok vm5 "$IP2" "VLAN 100 vm5 -> vm2 (tap -> packet port)"
# The failing pings wait for their deadline: run them side by side.
ping_fails vm1 "$IP3" "VLAN 100 -> 200 vm1 -> vm3" >"$TMP/f1" &
pf1=$!
ping_fails vm3 "$IP2" "VLAN 200 -> 100 vm3 -> vm2" >"$TMP/f2" &
pf2=$!
ping_fails vm5 "$IP3" "VLAN 100 -> 200 vm5 (tap) -> vm3" >"$TMP/f3" &
pf3=$!
wait "$pf1" "$pf2" "$pf3" || true
for f in "$TMP/f1" "$TMP/f2" "$TMP/f3"; do
  cat "$f"
  grep -q '^\s*\[FAIL\]' "$f" && FAILS+=("$(sed -nE 's/^\s*\[FAIL\] //p' "$f")")
done
neigh=$(nsx vm1 ip neigh show "$IP3" 2>/dev/null | head -n1)
note "vm1's ARP entry for vm3: ${neigh:-none} (ARP requests never crossed VLANs)"

# ---------------------------------------------------------------------------------------
step "4. Host B joined by a tagged trunk: vm1 (A, VLAN 100) <-> vm4 (B, VLAN 100)"
# ---------------------------------------------------------------------------------------
add_ns vm4
add_ns wire
veth_to_ns "${P}v4" vm4
host_if vm4 "$MAC4" "$IP4"
# The cable: A's trunk end ${P}ca ... wire bridge ... ${P}cb B's trunk end.
ip link add "${P}ca" type veth peer name ea netns "$NSP-wire"
LINKS+=("${P}ca")
ip link add "${P}cb" type veth peer name eb netns "$NSP-wire"
LINKS+=("${P}cb")
for l in "${P}ca" "${P}cb"; do
  sysctl -qw "net.ipv6.conf.$l.disable_ipv6=1"
  ip link set "$l" up
done
nsx wire ip link add wire type bridge
nsx wire ip link set wire multicast off # no IGMP reports of its own on the cable
for e in ea eb; do
  nsx wire ip link set "$e" multicast off master wire
  nsx wire ethtool -K "$e" txvlan off >/dev/null 2>&1 || true # tags stay in the bytes
  nsx wire ip link set "$e" up
done
nsx wire ip link set wire up
note "cable: A ${P}ca == [ea | Linux bridge 'wire' (VLAN-unaware) | eb] == ${P}cb B"
note "namespace $NSP-wire only exists to let tcpdump watch the cable"
start_daemon B
ctl B add-br br1
ctl B add-port br1 vm4 --interface "${P}v4" --access 100
ctl B add-port br1 cable --type afxdp --interface "${P}cb" --trunk 100,200
ctl A add-port br0 cable --type afxdp --interface "${P}ca" --trunk 100,200
start_capture wire ea "$TMP/cable.icmp" 'icmp or arp'
CABLE_CAP=$CAPTURE_PID
note "wire: tcpdump -e -n -i ea 'icmp or arp' (what switch A puts on the cable and receives)"
ping_ok vm1 "$IP4" "VLAN 100 across the trunk: vm1 (host A) -> vm4 (host B)"
ping_ok vm4 "$IP2" "VLAN 100 across the trunk: vm4 (host B) -> vm2 (host A)"
ping_fails vm3 "$IP4" "VLAN 200 (A) -> VLAN 100 (B): vm3 -> vm4"
stop_capture "$CABLE_CAP"
note "cable capture (tcpdump -e, first lines):"
if [ -s "$TMP/cable.icmp" ]; then
  tidy_capture <"$TMP/cable.icmp" | head -n 8 | indent
else
  note "    (nothing captured)"
fi
n_icmp=$(grep -c 'ICMP echo' "$TMP/cable.icmp" || true)
n_icmp100=$(grep 'ICMP echo' "$TMP/cable.icmp" | grep -c 'vlan 100,' || true)
if [ "${n_icmp:-0}" -gt 0 ] && [ "$n_icmp" = "$n_icmp100" ]; then
  ok "all $n_icmp ICMP echo frames on the cable carry 802.1Q tag 'vlan 100'"
else
  bad "cable: $n_icmp100 of ${n_icmp:-0} ICMP echo frames tagged vlan 100 (want all, and > 0)"
fi
if grep -E 'vlan 100,' "$TMP/cable.icmp" | grep -q "$MAC3"; then
  bad "vm3's (VLAN 200) frames appeared on the cable as VLAN 100"
fi
if grep -q "$MAC3" "$TMP/cable.icmp"; then
  ok "vm3's ARP for vm4 crossed the cable only as VLAN 200 (and found nobody)"
fi
ctl B fdb show br1

# ---------------------------------------------------------------------------------------
step "5. TCP in VLAN 100 with default offloads (iperf3, 3 s each)"
# ---------------------------------------------------------------------------------------
note "every host sends with TX checksum offload and TSO on (ethtool -k: tx-checksumming on)"
(nsx_exec vm2 timeout 60 iperf3 -s -B "$IP2" >"$TMP/iperf3.server" 2>&1) &
BG_PIDS+=("$!")
for ((i = 0; i < 50; i++)); do
  nsx vm2 ss -ltn 2>/dev/null | grep -q ':5201 ' && break
  sleep 0.1
done
# tcp_rate NS LABEL: iperf3 from NS to vm2; prints and checks the receiver's rate.
tcp_rate() {
  local ns=$1 label=$2 out gbps
  out=$(nsx_exec "$ns" timeout 20 iperf3 -c "$IP2" -t 3 -J 2>&1) || true
  gbps=$(printf '%s' "$out" | python3 -c 'import json,sys
try: print("%.2f" % (json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"] / 1e9))
except Exception: print("0")')
  if awk -v g="$gbps" 'BEGIN { exit !(g > 0.1) }'; then
    ok "$label: $gbps Gbit/s"
  else
    bad "$label: TCP moved $gbps Gbit/s"
  fi
}
tcp_rate vm1 "vm1 -> vm2 (packet -> packet port)"
tcp_rate vm5 "vm5 -> vm2 (tap -> packet port)"
tcp_rate vm4 "vm4 (host B) -> vm2 (host A) across the AF_XDP trunk (superframes segmented in software)"
ctl A port stats

# ---------------------------------------------------------------------------------------
step "6. Host A's view: show, fdb, port stats, trace"
# ---------------------------------------------------------------------------------------
ctl A show
ctl A fdb show br0
ctl A port stats
ctl A trace br0 vm1 "dst=$MAC2,src=$MAC1"
if ctl_quiet A fdb show br0 | grep -qi "$MAC2"; then
  ok "fdb of br0 has vm2's MAC $MAC2 learned (known unicast for the trace above)"
else
  bad "fdb of br0 lacks vm2's MAC $MAC2"
fi

# ---------------------------------------------------------------------------------------
step "Result"
# ---------------------------------------------------------------------------------------
if [ "${#FAILS[@]}" -eq 0 ]; then
  printf '  PASS: every expected outcome held (%ss)\n' "$((SECONDS - START))"
  exit 0
fi
printf '  FAILED: %s expected outcome(s) did not hold:\n' "${#FAILS[@]}"
for f in "${FAILS[@]}"; do printf '    - %s\n' "$f"; done
for d in A B; do
  if [ -f "$TMP/vswitchd-$d.log" ]; then
    printf '\n---- vswitchd %s log (tail) ----\n' "$d"
    tail -n 20 "$TMP/vswitchd-$d.log"
  fi
done
exit 1
