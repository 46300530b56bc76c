#!/usr/bin/env bash
# Installs what `make demo` and `make test` need on a fresh Debian machine.
# Idempotent: packages already present are not reinstalled, `apt-get update` runs
# at most once per call and only when something is missing.
# Usage: scripts/setup.sh [build|test|demo|qemu]
set -euo pipefail

profile=${1:-test}

# Build chain for xsk-rs (libxdp-sys + libbpf-sys) and the namespace tests' tools.
pkgs_build=(clang llvm libclang-dev libelf-dev zlib1g-dev libpcap-dev m4 pkg-config make)
pkgs_net=(iproute2 ethtool tcpdump iperf3 iputils-ping strace dnsmasq-base)
pkgs_qemu=(busybox-static cpio)
# scripts/demo.sh: udhcpc as the DHCP client. Any busybox will do; installing
# busybox-static would remove an installed busybox (they conflict), so only when none is.
pkgs_demo=()
[ -x /bin/busybox ] || command -v busybox >/dev/null 2>&1 || pkgs_demo+=(busybox-static)

want=("${pkgs_build[@]}")
case "$profile" in
  build) ;;
  test) want+=("${pkgs_net[@]}") ;;
  demo) want+=("${pkgs_net[@]}" "${pkgs_demo[@]}") ;;
  qemu) want+=("${pkgs_net[@]}" "${pkgs_qemu[@]}") ;;
  *) echo "setup.sh: unknown profile '$profile' (build|test|demo|qemu)" >&2; exit 2 ;;
esac

missing=()
for p in "${want[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "setup.sh: missing packages ${missing[*]}; run as root (or install them)" >&2
    exit 1
  fi
  echo "setup.sh: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" </dev/null
fi

# libxdp loads programs without its dispatcher when bpffs is missing; mount it when we can.
if [ "$(id -u)" -eq 0 ] && ! mountpoint -q /sys/fs/bpf 2>/dev/null; then
  mount -t bpf bpf /sys/fs/bpf 2>/dev/null || true
fi
