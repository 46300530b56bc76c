#!/usr/bin/env bash
# Runs every cargo-fuzz target (datapath: parse, pipeline, offload; ctl: proto, config) for N
# seconds each (default 600) on stable Rust (`--sanitizer none`). New corpus entries land
# in <crate>/fuzz/corpus/<target>/ and are replayed by `make test`
# (datapath/tests/fuzz_corpus.rs, ctl/tests/fuzz_corpus.rs). Crashes land in
# <crate>/fuzz/artifacts/<target>/ and make this script fail.
set -euo pipefail
secs=${1:-600}
root="$(cd "$(dirname "$0")/.." && pwd)"
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
status=0
for crate in datapath ctl; do
  cd "$root/$crate/fuzz"
  for target in $(cargo fuzz list); do
    echo "== fuzz $crate/$target for ${secs}s"
    mkdir -p "corpus/$target"
    if ! cargo fuzz run "$target" --sanitizer none "corpus/$target" -- \
        -max_total_time="$secs" -max_len=4096 -print_final_stats=1 2>&1 | tail -n 12; then
      status=1
    fi
  done
done
exit $status
