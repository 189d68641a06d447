#!/usr/bin/env bash
# The repeatable performance run: builds release, runs the criterion decision benchmark,
# then ../shared/bench/compare.sh with scopegate beside nginx, HAProxy and the control (the
# smallest hyper proxy doing the same job, `benches/control_proxy.rs`: the framework's
# floor), and prints the tables. Never run it while anything else compiles: on 2 cores that halves the figures.
#
#   benches/run.sh                 # 20 tokens, 1 worker each (the like-for-like run)
#   TOKENS=1000 benches/run.sh     # any compare.sh knob passes through
#   SKIP_CRITERION=1 benches/run.sh
#   WORKERS=2 benches/run.sh       # 2 nginx workers, 2 HAProxy threads, 2 scopegate and control workers
#   NO_CONTROL=1 benches/run.sh    # without the control target
#   PGO=1 benches/run.sh           # scopegate from the profile-guided build (benches/pgo.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
bench_dir=../shared/bench
[ -d "$bench_dir" ] || { echo "benches/run.sh: $bench_dir not found (the shared benchmark sits beside the checkout)" >&2; exit 2; }

cargo build --release --locked --bin scopegate --example control-proxy
if [ -z "${SKIP_CRITERION:-}" ]; then
  cargo bench --locked --bench decision -- --noplot 2>&1 | grep -E "^decision|time:" || true
fi
if ! command -v wrk >/dev/null || ! command -v nginx >/dev/null || ! command -v haproxy >/dev/null; then
  echo "installing the benchmark's tools (nginx, haproxy, wrk) with $bench_dir/setup.sh"
  bash "$bench_dir/setup.sh"
fi
export SCOPEGATE_BIN="$PWD/target/release/scopegate"
if [ -n "${PGO:-}" ]; then
  bash benches/pgo.sh
  SCOPEGATE_BIN="$PWD/target/pgo/scopegate"
fi
export SCOPEGATE_THREADS="${SCOPEGATE_THREADS:-${WORKERS:-1}}"
if [ -z "${NO_CONTROL:-}" ]; then
  # compare.sh starts it in its own session, verifies it like the others and measures its CPU.
  export EXTRA_NAME=control EXTRA_PORT="${CONTROL_PORT:-18084}"
  export EXTRA_START="$PWD/target/release/examples/control-proxy --listen 127.0.0.1:$EXTRA_PORT --upstream \"\$BENCH_UPSTREAM\" --tokens \"\$BENCH_TOKENS\" --threads $SCOPEGATE_THREADS"
fi
exec bash "$bench_dir/compare.sh"
