# vswitch: the two commands a user needs are `make demo` and `make test`.
# Both install what they need (scripts/setup.sh, idempotent) and then build.
SHELL := /bin/bash
CARGO ?= cargo
export CARGO_TERM_COLOR ?= never

.PHONY: all setup build demo test test-unit test-sriov lint bench pktrate tcprate latency scale soak fuzz clean

all: build

setup:
	@bash scripts/setup.sh test

build: setup
	$(CARGO) build --workspace --release

## demo: the seeds' scenario on real interfaces (namespaces, AF_XDP and tap ports, dnsmasq,
## two vswitchd hosts joined by a trunk), driven by vswitchctl; see docs/demo.md.
demo: setup
	@bash scripts/setup.sh demo
	$(CARGO) build --release -p vswitch-ctl
	bash scripts/demo.sh

## test: everything CI runs: format, lints, unit/property/acceptance tests, fuzz-corpus replay.
test: setup lint test-unit test-sriov

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

test-unit:
	$(CARGO) test --workspace --all-targets
	$(CARGO) test --workspace --doc

## test-sriov: SR-IOV VF management against a real PF driver (QEMU igb), see sriov/README.md.
test-sriov:
	bash scripts/sriov-qemu-test.sh

## bench: criterion benchmarks (numbers go into README.md's performance table).
bench: setup
	$(CARGO) bench -p vswitch-benches

## pktrate: packet rate of the switch vs a direct veth pair and the Linux bridge (root;
## e.g. PKTRATE_ARGS="--seconds 5 --repeat 3 --zero-loss-check --zero-loss-seconds 30").
PKTRATE_ARGS ?=
pktrate: setup
	$(CARGO) run --release -p vswitch-benches --bin pktrate -- $(PKTRATE_ARGS)

## scale: ports per bridge: add/del-port times, RSS and open files per port, show/stats/
## metrics times with all configured (root), e.g. SCALE_ARGS="--ports 1000".
SCALE_ARGS ?=
scale:
	@bash scripts/setup.sh
	$(CARGO) build --release -p vswitch-ctl -p vswitch-benches
	$(CARGO) run --release -p vswitch-benches --bin scale -- $(SCALE_ARGS)

## tcprate: TCP throughput (iperf3, 1 and 4 streams) and ping RTT between two namespaces
## through a veth pair, the Linux bridge, vswitch and Open vSwitch 3.1's userspace datapath
## (root; installs OVS if it can; docs/tcprate.md), e.g.
## TCPRATE_ARGS="--repeat 3 --seconds 5 --cases direct,bridge,vswitch-tap --json tcprate.json".
TCPRATE_ARGS ?=
tcprate:
	@bash scripts/setup.sh bench
	$(CARGO) build --release -p vswitch-ctl -p vswitch-benches
	$(CARGO) run --release -p vswitch-benches --bin tcprate -- $(TCPRATE_ARGS)

## latency: ping RTT p50/p99/p99.9 between two namespaces, idle and under 64-byte UDP at 50%
## of each path's flood rate, through a veth pair, the Linux bridge, vswitch in each poll
## mode (spin, adaptive, sleep) and OVS with AF_XDP ports, plus the switch daemon's idle CPU
## (root; docs/tcprate.md), e.g. LATENCY_ARGS="--repeat 3 --json latency.json".
LATENCY_ARGS ?=
latency:
	@bash scripts/setup.sh bench
	$(CARGO) build --release -p vswitch-ctl -p vswitch-benches
	$(CARGO) run --release -p vswitch-benches --bin tcprate -- --latency $(LATENCY_ARGS)

## soak: SOAK_SECONDS (default 60) of mixed traffic with 2 workers at half the measured
## maximum (SOAK_PPS per sender overrides): zero loss, no memory
## growth, counters balanced (tests/tests/soak.rs).
soak: setup
	$(CARGO) test --release -p vswitch-tests --test soak -- --ignored --nocapture

## fuzz: run each fuzz target for FUZZ_SECONDS (default 600) with cargo-fuzz on stable.
FUZZ_SECONDS ?= 600
fuzz: setup
	bash scripts/fuzz.sh $(FUZZ_SECONDS)

clean:
	$(CARGO) clean
