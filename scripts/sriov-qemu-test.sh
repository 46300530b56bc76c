#!/usr/bin/env bash
# SR-IOV VF management against a real PF driver: QEMU's igb model (Intel 82576 with
# SR-IOV) driven by the Debian kernel's igb driver, configured with our vswitchctl.
#
# Inside the VM: create 3 VFs; VF0 access VLAN 10 QoS 3, VF1 access VLAN 20 + MAC +
# spoofchk off + trust on, VF2 trunk; read back with `vswitchctl vf show --json` and with
# iproute2 `ip -j link show`; probe the settings igb may not implement; send invalid
# requests (must exit non-zero and change nothing); `vf restore --all` (must return
# every VF to the state printed before). Then vswitch-cni attaches VF 1 (its igbvf
# netdev) to a pod namespace with VLAN 30, a MAC, spoofchk off, trust on and MTU 1400,
# and DEL puts the netdev and the VF back exactly. The VM prints each result between markers on
# its serial console; this script checks them on the host (python3) and prints
# PASS/FAIL. Exit status: 0 pass, 1 fail.
#
# Idempotent, unattended, root. Caches the kernel package in target/sriov-qemu/.
# Env: SRIOV_QEMU_TIMEOUT (seconds, default 300), CARGO (default cargo).
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
export LC_ALL=C

cd "$(dirname "$0")/.."
repo=$(pwd)
cache="$repo/target/sriov-qemu"
timeout_s=${SRIOV_QEMU_TIMEOUT:-300}
CARGO=${CARGO:-cargo}
started=$(date +%s)

fail() {
  echo "sriov-qemu-test: FAIL: $*" >&2
  exit 1
}
step() { echo "sriov-qemu-test: $*"; }

[ "$(id -u)" -eq 0 ] || fail "must run as root (apt-get, sysfs, qemu)"
mkdir -p "$cache"

# ---- 1. host packages (installed only when missing) -------------------------------
apt_updated=0
apt_update() {
  if [ "$apt_updated" -eq 0 ]; then
    apt-get update -qq </dev/null
    apt_updated=1
  fi
}
have_pkg() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }

qemu_has_igb() {
  command -v qemu-system-x86_64 >/dev/null 2>&1 &&
    qemu-system-x86_64 -device help 2>/dev/null | grep -q '"igb"'
}

if ! qemu_has_igb; then
  # QEMU >= 8.0 has the igb model; bookworm has 7.2, bookworm-backports has 10.
  sources=/etc/apt/sources.list.d/debian.sources
  if ! grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
    step "enabling bookworm-backports"
    if [ -f "$sources" ] && grep -q '^Suites: bookworm bookworm-updates$' "$sources"; then
      sed -i 's/^Suites: bookworm bookworm-updates$/Suites: bookworm bookworm-updates bookworm-backports/' "$sources"
    else
      echo "deb http://deb.debian.org/debian bookworm-backports main" \
        >/etc/apt/sources.list.d/bookworm-backports.list
    fi
    apt_updated=0
  fi
  step "installing qemu-system-x86 from bookworm-backports"
  apt_update
  apt-get install -y -qq -t bookworm-backports qemu-system-x86 </dev/null
  qemu_has_igb || fail "qemu-system-x86_64 has no igb device after install"
fi

want=()
# busybox-static conflicts with busybox: any busybox binary will do (a dynamic one gets
# its libraries copied like the other binaries), install the static one only if none.
[ -x /bin/busybox ] || want+=(busybox-static)
have_pkg cpio || want+=(cpio)
have_pkg iproute2 || want+=(iproute2)
command -v /usr/bin/python3 >/dev/null 2>&1 || want+=(python3)
if [ ${#want[@]} -gt 0 ]; then
  step "installing ${want[*]}"
  apt_update
  apt-get install -y -qq --no-install-recommends "${want[@]}" </dev/null
fi
PY=/usr/bin/python3

# ---- 2. the Debian kernel (cached) ------------------------------------------------
deb=$(ls "$cache"/linux-image-*_amd64.deb 2>/dev/null | head -n1 || true)
if [ -z "$deb" ]; then
  apt_update
  pkg=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-/{print $2; exit}')
  [ -n "$pkg" ] || fail "cannot resolve the linux-image-amd64 package"
  step "downloading $pkg into $cache"
  (cd "$cache" && apt-get download -qq "$pkg" </dev/null 2>&1 | grep -v 'unsandboxed' || true)
  deb=$(ls "$cache"/linux-image-*_amd64.deb 2>/dev/null | head -n1 || true)
  [ -n "$deb" ] || fail "kernel package download failed"
fi
kroot="$cache/kernel"
if [ ! -f "$kroot/.extracted-$(basename "$deb")" ]; then
  rm -rf "$kroot"
  mkdir -p "$kroot"
  dpkg -x "$deb" "$kroot"
  touch "$kroot/.extracted-$(basename "$deb")"
fi
vmlinuz=$(ls "$kroot"/boot/vmlinuz-* | head -n1)
modfind() {
  local m
  m=$(find "$kroot/lib/modules" -name "$1" | head -n1)
  [ -n "$m" ] || fail "module $1 not found in $deb"
  echo "$m"
}

# ---- 3. our binary ---------------------------------------------------------------
step "building vswitchctl (release)"
"$CARGO" build --release -q -p vswitch-ctl
vswitchctl="${CARGO_TARGET_DIR:-$repo/target}/release/vswitchctl"
[ -x "$vswitchctl" ] || fail "no $vswitchctl after build"
cniplugin="$(dirname "$vswitchctl")/vswitch-cni"
[ -x "$cniplugin" ] || fail "no $cniplugin after build"

# ---- 4. initramfs ----------------------------------------------------------------
stage="$cache/initramfs"
rm -rf "$stage"
mkdir -p "$stage"/{bin,sbin,usr/bin,usr/sbin,proc,sys,dev,tmp,run,var/lib,opt/iproute2,lib/modules}

# copy_bin SRC DEST: the binary and every shared library ldd lists, at their own paths.
copy_bin() {
  install -D -m 0755 "$1" "$stage$2"
  local libs
  # A static binary has none (ldd then fails: not an error here).
  libs=$(ldd "$1" 2>/dev/null | grep -oE '/[^ ]+' || true)
  for lib in $libs; do
    [ -e "$lib" ] || continue
    cp -L --parents "$lib" "$stage" || fail "copying $lib"
  done
}
copy_bin /bin/busybox /bin/busybox
# busybox's `ip` applet shadows iproute2 in busybox sh: iproute2 lives off PATH.
copy_bin "$(command -v ip)" /opt/iproute2/ip
copy_bin "$vswitchctl" /usr/bin/vswitchctl
copy_bin "$cniplugin" /usr/bin/vswitch-cni
for m in dca.ko i2c-algo-bit.ko igb.ko igbvf.ko; do
  cp "$(modfind "$m")" "$stage/lib/modules/$m"
done

cat >"$stage/init" <<'INIT'
#!/bin/busybox sh
/bin/busybox --install -s
export PATH=/usr/bin:/bin:/sbin:/usr/sbin
IP=/opt/iproute2/ip
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
echo 3 > /proc/sys/kernel/printk
for m in dca i2c-algo-bit igb; do insmod /lib/modules/$m.ko || echo "@@ERROR insmod $m"; done

# mark NAME CMD...: run CMD, print its stdout between markers and its exit code.
mark() {
  name=$1; shift
  echo "@@BEGIN $name"
  "$@" 2>/tmp/err
  rc=$?
  echo "@@END $name"
  echo "@@RC $name $rc"
  echo "@@STDERR $name $(tr '\n' ' ' </tmp/err)"
}

pf=""
i=0
while [ -z "$pf" ] && [ $i -lt 50 ]; do
  for d in /sys/class/net/*; do
    [ "$(basename "$(readlink $d/device/driver 2>/dev/null)")" = igb ] && pf=$(basename $d)
  done
  [ -n "$pf" ] || { sleep 0.2; i=$((i+1)); }
done
echo
echo "@@PF $pf"
if [ -n "$pf" ]; then
  # igb accepts VF rates only with the link up (it checks them against the speed), and
  # enabling VFs resets the PF: wait (bounded) for carrier after each.
  wait_link() {
    i=0
    while [ "$(cat /sys/class/net/$pf/carrier 2>/dev/null)" != 1 ] && [ $i -lt 100 ]; do
      sleep 0.1; i=$((i+1))
    done
  }
  $IP link set "$pf" up
  wait_link
  mark caps vswitchctl vf caps "$pf" --json
  mark numvfs vswitchctl vf numvfs "$pf" 3
  wait_link
  echo "@@SPEED $(cat /sys/class/net/$pf/speed 2>/dev/null)"
  mark orig_ours vswitchctl vf show "$pf" --json
  mark orig_ip $IP -j link show "$pf"

  # Settings igb may not implement: each must either work or fail with a clear error.
  mark probe_state vswitchctl vf set "$pf" 0 --state enable
  mark probe_8021ad vswitchctl vf set "$pf" 0 --access 10 --proto 802.1ad
  mark probe_max_rate vswitchctl vf set "$pf" 2 --max-rate 100
  mark probe_min_rate vswitchctl vf set "$pf" 2 --min-rate 10 --max-rate 100
  mark probe_trunk_list vswitchctl vf set "$pf" 2 --trunk 10,20
  # The same rate through iproute2: the driver, not our request, decides.
  mark probe_ip_max_rate $IP link set "$pf" vf 2 max_tx_rate 100

  mark set_vf0 vswitchctl vf set "$pf" 0 --access 10 --qos 3
  mark set_vf1 vswitchctl vf set "$pf" 1 --access 20 --mac 02:00:00:00:00:21 --spoofchk off --trust on
  mark set_vf2 vswitchctl vf set "$pf" 2 --trunk
  mark set_ours vswitchctl vf show "$pf" --json
  mark set_ip $IP -j link show "$pf"
  mark set_text $IP link show "$pf"
  mark diff vswitchctl vf diff "$pf" --json

  mark invalid_vlan vswitchctl vf set "$pf" 0 --access 4095
  mark invalid_qos vswitchctl vf set "$pf" 2 --qos 3
  mark after_invalid_ours vswitchctl vf show "$pf" --json

  mark restore vswitchctl vf restore "$pf" --all
  mark restored_ours vswitchctl vf show "$pf" --json
  mark restored_ip $IP -j link show "$pf"
  mark diff_after vswitchctl vf diff "$pf" --json

  # vswitch-cni with VF 1: the igbvf driver gives the VFs their netdevs.
  insmod /lib/modules/igbvf.ko || echo "@@ERROR insmod igbvf"
  vfpci=$(basename "$(readlink /sys/class/net/$pf/device/virtfn1)")
  i=0
  while [ -z "$(ls /sys/bus/pci/devices/$vfpci/net 2>/dev/null)" ] && [ $i -lt 100 ]; do
    sleep 0.1; i=$((i+1))
  done
  vfdev=$(ls /sys/bus/pci/devices/$vfpci/net 2>/dev/null | head -n1)
  echo "@@VFDEV $vfpci $vfdev"
  $IP link set "$vfdev" up
  mark cni_before_link $IP -j link show "$vfdev"
  mark cni_before_pf vswitchctl vf show "$pf" 1 --json
  unshare -n sleep 600 &
  podpid=$!
  sleep 0.5
  podns=/proc/$podpid/ns/net
  echo "@@PODNS $podns"
  conf='{"cniVersion":"1.1.0","name":"vfnet","type":"vswitch-cni","deviceID":"'$vfpci'","vlan":30,"spoofchk":"off","trust":"on","mac":"02:00:00:00:00:31","mtu":1400,"stateDir":"/tmp/cni"}'
  cni() {
    echo "$conf" | CNI_COMMAND=$1 CNI_CONTAINERID=vfpod1 CNI_NETNS=$podns CNI_IFNAME=net1 \
      CNI_PATH=/usr/bin vswitch-cni
  }
  mark cni_add cni ADD
  mark cni_vf vswitchctl vf show "$pf" 1 --json
  mark cni_pod nsenter -t $podpid -n $IP -j link show net1
  mark cni_host_gone $IP link show "$vfdev"
  mark cni_del cni DEL
  mark cni_del_again cni DEL
  mark cni_after_link $IP -j link show "$vfdev"
  mark cni_after_pf vswitchctl vf show "$pf" 1 --json
  mark cni_pod_after nsenter -t $podpid -n $IP link show net1
  kill $podpid
  # The pod dies without a DEL: the kernel returns the VF's netdev to the host (as net1,
  # down); a later DEL still puts name, MAC, MTU and settings back.
  unshare -n sleep 600 &
  podpid=$!
  sleep 0.5
  podns=/proc/$podpid/ns/net
  mark cni_add2 cni ADD
  kill $podpid
  wait $podpid 2>/dev/null
  i=0
  while [ -z "$(ls /sys/bus/pci/devices/$vfpci/net 2>/dev/null)" ] && [ $i -lt 100 ]; do
    sleep 0.1; i=$((i+1))
  done
  echo "@@RETURNED $(ls /sys/bus/pci/devices/$vfpci/net 2>/dev/null)"
  mark cni_del_gone cni DEL
  mark cni_gone_link $IP -j link show "$vfdev"
  mark cni_gone_pf vswitchctl vf show "$pf" 1 --json
fi
echo "@@DONE"
poweroff -f
INIT
chmod +x "$stage/init"
initrd="$cache/initramfs.cpio.gz"
(cd "$stage" && find . | cpio -o -H newc --quiet | gzip -1) >"$initrd"

# ---- 5. boot ---------------------------------------------------------------------
log="$cache/console.log"
step "booting $(basename "$vmlinuz") under QEMU igb (timeout ${timeout_s}s, log $log)"
set +e
timeout --kill-after=10 "$timeout_s" qemu-system-x86_64 \
  -accel tcg -machine q35 -m 1024 -smp 1 -nographic -no-reboot \
  -kernel "$vmlinuz" -initrd "$initrd" \
  -append "console=ttyS0 quiet loglevel=3 panic=-1" \
  -netdev user,id=n0,restrict=on \
  -device pcie-root-port,id=rp1,slot=1 \
  -device igb,bus=rp1,netdev=n0 \
  </dev/null >"$log" 2>&1
qrc=$?
set -e
[ "$qrc" -ne 124 ] && [ "$qrc" -ne 137 ] || fail "QEMU timed out after ${timeout_s}s (see $log)"
grep -q '^@@DONE' <(tr -d '\r' <"$log") || fail "VM did not finish (qemu exit $qrc, see $log)"

# ---- 6. verdict ------------------------------------------------------------------
set +e
"$PY" - "$log" "$(( $(date +%s) - started ))" <<'PYEOF'
import json, re, sys

log_path, elapsed = sys.argv[1], sys.argv[2]
raw = open(log_path, encoding="utf-8", errors="replace").read().replace("\r", "")
# The serial console starts with terminal resets (ESC c, ESC [ ... ): drop them.
lines = re.sub(r"\x1b(\[[0-9;?]*[A-Za-z]|[A-Za-z])", "", raw).split("\n")

blocks, rcs, errs, meta = {}, {}, {}, {}
cur = None
for ln in lines:
    # A marker can be glued to firmware output that had no newline ("Booting from
    # ROM..@@PF eth0"): start the line at the marker.
    k = ln.find("@@")
    if k > 0:
        ln = ln[k:]
    m = re.match(r"^@@BEGIN (\S+)$", ln)
    if m:
        cur, blocks[m.group(1)] = m.group(1), []
        continue
    m = re.match(r"^@@END (\S+)$", ln)
    if m:
        cur = None
        continue
    m = re.match(r"^@@RC (\S+) (\d+)$", ln)
    if m:
        rcs[m.group(1)] = int(m.group(2))
        continue
    m = re.match(r"^@@STDERR (\S+) ?(.*)$", ln)
    if m:
        errs[m.group(1)] = m.group(2).strip()
        continue
    m = re.match(r"^@@(PF|SPEED|ERROR|VFDEV|PODNS|RETURNED) ?(.*)$", ln)
    if m:
        meta.setdefault(m.group(1), []).append(m.group(2).strip())
        continue
    if cur is not None:
        blocks[cur].append(ln)

failures, passes, notes = [], [], []

def check(cond, what):
    (passes if cond else failures).append(what)
    return cond

def text(name):
    return "\n".join(blocks.get(name, []))

def js(name):
    try:
        return json.loads(text(name))
    except Exception as e:
        failures.append(f"{name}: not JSON ({e}): {text(name)[:300]!r}")
        return None

pf = (meta.get("PF") or [""])[0]
if not check(bool(pf), "igb PF found in the VM") or meta.get("ERROR"):
    failures.append(f"VM errors: {meta.get('ERROR')}")

def ours_norm(view):
    out = []
    for v in view["vfs"]:
        out.append(dict(vf=v["vf"], mac=v["mac"].lower(), vlan=v["vlan"], qos=v["qos"],
                        proto=v["proto"], spoofchk=v["spoofchk"], trust=v["trust"],
                        link_state=v["link_state"], min_tx_rate=v["min_tx_rate"],
                        max_tx_rate=v["max_tx_rate"]))
    return out

def ip_norm(links):
    link = links[0]
    out = []
    for v in link.get("vfinfo_list", []):
        vl = (v.get("vlan_list") or [{}])[0]
        out.append(dict(vf=v["vf"], mac=v["address"].lower(), vlan=vl.get("vlan", 0),
                        qos=vl.get("qos", 0), proto=vl.get("protocol", "802.1Q"),
                        spoofchk=v.get("spoofchk"), trust=v.get("trust"),
                        link_state=v.get("link_state"),
                        min_tx_rate=v.get("rate", {}).get("min_tx", 0),
                        max_tx_rate=v.get("rate", {}).get("max_tx", 0)))
    return out

def agree(ours_name, ip_name):
    o, i = js(ours_name), js(ip_name)
    if o is None or i is None:
        return None
    on, inn = ours_norm(o), ip_norm(i)
    if not check(on == inn, f"{ours_name} agrees with iproute2 ({len(on)} VFs)"):
        failures.append(f"  ours:     {on}\n  iproute2: {inn}")
    return on

caps = js("caps")
if caps:
    check(caps.get("driver") == "igb", "vf caps reports driver igb")
    check(caps["trunk"]["allow_list"] == "none", "vf caps: igb has no trunk allow-list backend")
check(rcs.get("numvfs") == 0, "vf numvfs PF 3 succeeds")

orig = agree("orig_ours", "orig_ip")
if orig is not None:
    check(len(orig) == 3, "3 VFs exist after numvfs")

# Probes: a setting either works or fails with an error naming pf, vf and setting.
probe_results = {}
for name, vf, setting in [("probe_state", 0, "state"), ("probe_8021ad", 0, "vlan"),
                          ("probe_max_rate", 2, "rate"), ("probe_min_rate", 2, "rate")]:
    rc, err = rcs.get(name), errs.get(name, "")
    if rc == 0:
        probe_results[name] = "supported"
        passes.append(f"{name}: accepted by igb")
    else:
        ok = rc == 1 and err.startswith(f"vswitchctl: pf {pf} vf {vf}: set {setting}: ")
        check(ok, f"{name}: refused with a clear error: {err}")
        probe_results[name] = "refused: " + err.split(f"set {setting}: ", 1)[-1]
check((rcs.get("probe_ip_max_rate") == 0) == (probe_results.get("probe_max_rate") == "supported"),
      f"max rate: iproute2 gets the same answer from igb ({errs.get('probe_ip_max_rate') or 'accepted'})")
rc, err = rcs.get("probe_trunk_list"), errs.get("probe_trunk_list", "")
check(rc == 1 and "no trunk backend" in err,
      f"trunk allow-list on igb is an explicit error, not a silent downgrade: {err}")

for n in ("set_vf0", "set_vf1", "set_vf2"):
    check(rcs.get(n) == 0, f"{n} exits 0 ({errs.get(n, '')})")
cur = agree("set_ours", "set_ip")
if cur is not None and len(cur) == 3:
    v0, v1, v2 = cur
    check((v0["vlan"], v0["qos"], v0["proto"]) == (10, 3, "802.1Q"), "VF0 access VLAN 10 QoS 3 (read back by both)")
    check((v1["vlan"], v1["qos"]) == (20, 0), "VF1 access VLAN 20")
    check(v1["mac"] == "02:00:00:00:00:21", "VF1 MAC 02:00:00:00:00:21")
    check(v1["spoofchk"] is False, "VF1 spoofchk off")
    check(v1["trust"] is True, "VF1 trust on")
    check(v2["vlan"] == 0 and v2["qos"] == 0, "VF2 trunk (vlan 0)")
    if probe_results.get("probe_max_rate") == "supported":
        check(v2["max_tx_rate"] == 100, "VF2 max_tx_rate 100 (read back by both)")
setv = js("set_ours")
if setv:
    check([v["journaled"] for v in setv["vfs"]] == [True, True, True], "all three VFs journaled")
diff = js("diff")
if diff is not None:
    check(len(diff) > 0 and all(d["in_sync"] for d in diff),
          f"vf diff: every desired setting in sync ({len(diff)} rows)")

check(rcs.get("invalid_vlan") == 2, f"VLAN 4095 exits 2: {errs.get('invalid_vlan')}")
check(rcs.get("invalid_qos") == 2, f"QoS without VLAN exits 2: {errs.get('invalid_qos')}")
check(js("after_invalid_ours") == setv, "invalid requests changed nothing")

check(rcs.get("restore") == 0, f"vf restore --all exits 0 ({errs.get('restore', '')})")
restored = agree("restored_ours", "restored_ip")
if restored is not None and orig is not None:
    if not check(restored == orig, "every VF back to its original state"):
        failures.append(f"  before: {orig}\n  after:  {restored}")
rv = js("restored_ours")
if rv:
    check(not any(v["journaled"] for v in rv["vfs"]), "journal entries removed after restore")
check(js("diff_after") == [], "vf diff empty after restore")

# vswitch-cni with VF 1 and its igbvf netdev.
vfdev = (meta.get("VFDEV") or [""])[0].split()
podns = (meta.get("PODNS") or [""])[0]
if check(len(vfdev) == 2, f"VF 1 has a netdev under igbvf ({vfdev})"):
    vfpci, dev = vfdev
    before_link = (js("cni_before_link") or [{}])[0]
    before_vf = js("cni_before_pf")
    check(rcs.get("cni_add") == 0, f"vswitch-cni ADD of VF 1 exits 0 ({errs.get('cni_add', '')})")
    res = js("cni_add")
    if res:
        check(res.get("interfaces") == [{"name": "net1", "mac": "02:00:00:00:00:31", "mtu": 1400,
                                         "sandbox": podns, "pciID": vfpci}],
              f"ADD result names net1 in the pod with MAC, MTU and PCI address: {res}")
    vf = js("cni_vf")
    if vf:
        v = vf[0]
        check((v["vlan"], v["mac"].lower(), v["spoofchk"], v["trust"], v["journaled"])
              == (30, "02:00:00:00:00:31", False, True, True),
              f"VF 1 set by the plugin on igb: vlan 30, MAC, spoofchk off, trust on, journaled ({v})")
    pod = js("cni_pod")
    if pod:
        check((pod[0]["ifname"], pod[0]["mtu"], pod[0]["address"].lower())
              == ("net1", 1400, "02:00:00:00:00:31"),
              f"the pod has the VF's netdev as net1, MTU 1400, the MAC ({pod[0].get('ifname')})")
    check(rcs.get("cni_host_gone", 0) != 0, f"{dev} left the host namespace")
    check(rcs.get("cni_del") == 0, f"vswitch-cni DEL exits 0 ({errs.get('cni_del', '')})")
    check(rcs.get("cni_del_again") == 0, f"a second DEL exits 0 ({errs.get('cni_del_again', '')})")
    after_link = (js("cni_after_link") or [{}])[0]
    check([after_link.get(k) for k in ("ifname", "mtu", "address")]
          == [before_link.get(k) for k in ("ifname", "mtu", "address")],
          f"{dev} back in the host with its name, MTU and MAC ({after_link.get('address')})")
    check("UP" in after_link.get("flags", []), f"{dev} up again, as before")
    after_vf = js("cni_after_pf")
    if after_vf is not None and before_vf is not None:
        norm = lambda x: [dict(v, journaled=None) for v in x]
        check(norm(after_vf) == norm(before_vf) and not after_vf[0]["journaled"],
              "VF 1 settings exactly as before ADD, journal entry gone")
    check(rcs.get("cni_pod_after", 0) != 0, "net1 gone from the pod")
    check(rcs.get("cni_add2") == 0, f"second ADD exits 0 ({errs.get('cni_add2', '')})")
    check((meta.get("RETURNED") or [""])[0] == "net1",
          f"the dead pod's VF netdev came back to the host as net1 ({meta.get('RETURNED')})")
    check(rcs.get("cni_del_gone") == 0,
          f"DEL after the pod's namespace is gone exits 0 ({errs.get('cni_del_gone', '')})")
    gone_link = (js("cni_gone_link") or [{}])[0]
    check([gone_link.get(k) for k in ("ifname", "mtu", "address")]
          == [before_link.get(k) for k in ("ifname", "mtu", "address")]
          and "UP" in gone_link.get("flags", []),
          f"{dev} restored from the dead pod: name, MTU, MAC, up ({gone_link.get('address')})")
    gone_vf = js("cni_gone_pf")
    if gone_vf is not None and before_vf is not None:
        norm = lambda x: [dict(v, journaled=None) for v in x]
        check(norm(gone_vf) == norm(before_vf) and not gone_vf[0]["journaled"],
              "VF 1 settings exactly as before the second ADD")

print("---- sriov-qemu-test: igb results ----")
print("set_text (iproute2 view after set):")
for ln in blocks.get("set_text", []):
    print("   ", ln)
for k, v in probe_results.items():
    print(f"  {k}: {v}")
print(f"  link speed in VM: {(meta.get('SPEED') or ['?'])[0]} Mb/s")
for p in passes:
    print("  ok   ", p)
for f in failures:
    print("  FAIL ", f)
status = "PASS" if not failures else "FAIL"
print(f"sriov-qemu-test: {status} in {elapsed}s")
print(f"sriov-qemu: {len(passes)} passed, {len(failures)} failed")
sys.exit(0 if not failures else 1)
PYEOF
rc=$?
set -e
exit $rc
