#!/usr/bin/env bash
# Installs what `make demo` and `make test` need on a fresh Debian machine.
# Idempotent: packages already present are not reinstalled, `apt-get update` runs
# at most once per call and only when something is missing.
# Usage: scripts/setup.sh [build|test|demo|qemu|bench]
# Profile `bench` (make tcprate) also tries to install Open vSwitch 3.1 with its userspace
# datapath (openvswitch-switch-dpdk) as a reference switch; if that fails it only warns
# (tcprate then reports the OVS cases as unavailable).
set -euo pipefail

profile=${1:-test}

# Build chain for xsk-rs (libxdp-sys + libbpf-sys) and the namespace tests' tools.
pkgs_build=(clang llvm libclang-dev libelf-dev zlib1g-dev libpcap-dev m4 pkg-config make)
pkgs_net=(iproute2 ethtool tcpdump iperf3 iputils-ping strace dnsmasq-base)
pkgs_qemu=(busybox-static cpio)
# vswitch-cni's tests: a real runtime (podman 4.3 with its CNI backend, runc) and the
# standard CNI plugins (host-local, static IPAM in /usr/lib/cni); containers run a static
# busybox (see pkgs_demo for why busybox-static only when no busybox is installed).
pkgs_cni=(podman containernetworking-plugins runc)
# Best effort (profile bench): a failure to install these is a warning, not an error.
pkgs_optional=()
# scripts/demo.sh: udhcpc as the DHCP client. Any busybox will do; installing
# busybox-static would remove an installed busybox (they conflict), so only when none is.
pkgs_demo=()
[ -x /bin/busybox ] || command -v busybox >/dev/null 2>&1 || pkgs_demo+=(busybox-static)

want=("${pkgs_build[@]}")
case "$profile" in
  build) ;;
  test) want+=("${pkgs_net[@]}" "${pkgs_cni[@]}" "${pkgs_demo[@]}") ;;
  demo) want+=("${pkgs_net[@]}" "${pkgs_demo[@]}") ;;
  qemu) want+=("${pkgs_net[@]}" "${pkgs_qemu[@]}") ;;
  bench) want+=("${pkgs_net[@]}"); pkgs_optional+=(openvswitch-switch-dpdk) ;;
  *) echo "setup.sh: unknown profile '$profile' (build|test|demo|qemu|bench)" >&2; exit 2 ;;
esac

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }

missing=()
for p in "${want[@]}"; do
  installed "$p" || missing+=("$p")
done
missing_optional=()
for p in "${pkgs_optional[@]}"; do
  installed "$p" || missing_optional+=("$p")
done
updated=

if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "setup.sh: missing packages ${missing[*]}; run as root (or install them)" >&2
    exit 1
  fi
  echo "setup.sh: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  updated=1
  apt-get install -y -qq --no-install-recommends "${missing[@]}" </dev/null
fi

if [ ${#missing_optional[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "setup.sh: warning: ${missing_optional[*]} not installed (needs root); skipping" >&2
  else
    echo "setup.sh: installing ${missing_optional[*]} (optional)"
    export DEBIAN_FRONTEND=noninteractive
    if ! { [ -n "$updated" ] || apt-get update -qq; } ||
      ! apt-get install -y -qq --no-install-recommends "${missing_optional[@]}" </dev/null; then
      echo "setup.sh: warning: could not install ${missing_optional[*]}; continuing without" >&2
    fi
  fi
fi

# libxdp loads programs without its dispatcher when bpffs is missing; mount it when we can.
if [ "$(id -u)" -eq 0 ] && ! mountpoint -q /sys/fs/bpf 2>/dev/null; then
  mount -t bpf bpf /sys/fs/bpf 2>/dev/null || true
fi
