#!/usr/bin/env bash
# The profile-guided release build: the same source and the same checks, laid out by the
# compiler for the paths the gateway really takes. On the shared benchmark it spends about a
# fifth less CPU per request than `cargo build --release` (BENCHMARKS.md, round 10).
#
#   benches/pgo.sh                 # -> target/pgo/scopegate
#   PGO_REQUESTS=200000 benches/pgo.sh
#   benches/pgo.sh train BIN       # step 2 alone, with any build of the gateway: what CI
#                                  # runs (tests/pgo_training.rs) so the mix keeps working
#
# Four steps, two release builds (about 10 minutes on 2 cores):
#   1. build the gateway instrumented to count its branches (-Cprofile-generate);
#   2. train it: the gateway, in front of `scopegate echo`, serves `benches/pgo_train.py`'s
#      mix (allowed GET/HEAD/POST, fixed-length and chunked bodies, every kind of refusal),
#      once with 1 worker and the access log on, once with 2 workers and the log off;
#   3. merge the counts with the llvm-profdata of rustc's own LLVM (rustup's llvm-tools);
#   4. build again with those counts (-Cprofile-use).
# Paths the training does not take (HTTP/2, TLS, the admin console) are compiled as cold
# code: correct as ever, perhaps a little slower than in a plain build.
#
# Needs: cargo, rustup (for llvm-tools, installed if missing) and python3. Both builds use
# their own target directories under target/pgo/, so the usual target/ stays warm.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
pgo=${PGO_DIR:-$root/target/pgo}
requests=${PGO_REQUESTS:-60000}
mode=${1:-build}

die() { echo "benches/pgo.sh: $*" >&2; exit 1; }
command -v python3 >/dev/null || die "python3 is needed for the training load"
case $mode in
  build) ;;
  train) [ -x "${2:-}" ] || die "usage: benches/pgo.sh train BIN (an executable scopegate)" ;;
  *) die "usage: benches/pgo.sh [build] | benches/pgo.sh train BIN" ;;
esac
host=$(rustc -vV | sed -n 's/^host: //p')
profdata=$(rustc --print sysroot)/lib/rustlib/$host/bin/llvm-profdata
if [ "$mode" = build ] && [ ! -x "$profdata" ]; then
  echo "== installing rustup's llvm-tools (an llvm-profdata that reads rustc's profiles)"
  rustup component add llvm-tools || die "cannot install llvm-tools; llvm-profdata must match rustc's LLVM ($(rustc -vV | sed -n 's/^LLVM version: //p'))"
fi

# --target: RUSTFLAGS then reach only the gateway, not build scripts and proc macros.
build() {
  local dir=$1 flags=$2
  RUSTFLAGS="$flags" CARGO_TARGET_DIR="$dir" \
    cargo build --release --locked --target "$host" --bin scopegate
}

profiles=$pgo/profiles
if [ "$mode" = build ]; then
  rm -rf "$profiles"
  mkdir -p "$profiles"
  echo "== 1/4 instrumented build"
  build "$pgo/instrumented" "-Cprofile-generate=$profiles"
  bin=$pgo/instrumented/$host/release/scopegate
else
  bin=$(realpath "$2")
fi

echo "== 2/4 training"
work=$(mktemp -d)
# `train`: an instrumented BIN's counts stay in the scratch folder, removed at the end.
[ "$mode" = train ] && profiles=$work/profiles
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
read -r port admin upstream < <(python3 -c '
import socket
socks = [socket.socket() for _ in range(3)]
for s in socks: s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in socks))')

# The example config's catalog shape, in front of the echo upstream. Rate limits and the
# brute-force throttle are out of reach, except for the one token meant to hit its limit.
write_config() {
  cat > "$work/scopegate.yaml" <<EOF
listen: 127.0.0.1:$port
admin_listen: 127.0.0.1:$admin
tokens_file: tokens.yaml
access_log: $1
rate_limit:
  requests_per_second: 1000000
  burst: 1000000
bruteforce:                 # the mix's refused credentials must not lock the client out
  max_failures: 100000000
  max_failures_per_address: 100000000
upstreams:
  main:
    url: http://127.0.0.1:$upstream
default_upstream: main
apis:
  campaigns:
    paths: ["/Mediapartners/{account}/Campaigns", "/Mediapartners/{account}/Campaigns/**"]
    upstream: main
  reports:
    paths: ["/Mediapartners/{account}/Reports/**"]
    upstream: main
  actions:
    paths: ["/Mediapartners/{account}/Actions/**"]
    upstream: main
  catalogs:
    paths: ["/Mediapartners/{account}/Catalogs/**"]
    upstream: main
EOF
}
write_config false

# Tokens made the operator's way (the CLI keeps only the hashes); their secrets go to the
# training client. The CLI runs are not profiled.
creds=$work/credentials.tsv
create() {
  local kind=$1; shift
  LLVM_PROFILE_FILE=$work/cli-%p.profraw "$bin" token create --config "$work/scopegate.yaml" --json "$@" |
    python3 -c 'import json, sys; t = json.load(sys.stdin); print(sys.argv[1], t["sid"], t["secret"], t["account"], sep="\t")' "$kind" >> "$creds"
}
for a in 1 2 3 4; do
  for t in 1 2 3; do
    create scoped --account "IRtrain$a" --name "train-$a-$t" --scope campaigns:GET,POST --scope reports:GET
  done
done
create legacy --account IRtrain1 --name train-legacy --legacy
create limited --account IRtrain2 --name train-limited --scope campaigns:GET --rate 5 --burst 5

LLVM_PROFILE_FILE=$work/echo-%p.profraw "$bin" echo --listen "127.0.0.1:$upstream" > "$work/echo.log" 2>&1 &
pids+=($!)

# One training round: the gateway with $1 workers and the access log $2, until SIGTERM
# (the profile is written as it exits).
train() {
  write_config "$2"
  LLVM_PROFILE_FILE="$profiles/gateway-%p-%m.profraw" TOKIO_WORKER_THREADS=$1 \
    "$bin" serve --config "$work/scopegate.yaml" > "$work/gateway.log" 2>&1 &
  local gw=$!
  pids+=("$gw")
  python3 benches/pgo_train.py "$port" "$creds" "$requests" 32 ||
    { tail -5 "$work/gateway.log" >&2; die "training round ($1 workers) failed"; }
  kill -TERM "$gw"
  wait "$gw" || die "the instrumented gateway did not exit cleanly; see its log above"
}
train 1 true
train 2 false
[ "$mode" = train ] && exit 0
ls "$profiles"/gateway-*.profraw >/dev/null 2>&1 || die "the training wrote no profile"

echo "== 3/4 merging the profiles"
"$profdata" merge -o "$pgo/scopegate.profdata" "$profiles"/gateway-*.profraw

echo "== 4/4 optimized build"
build "$pgo/optimized" "-Cprofile-use=$pgo/scopegate.profdata"
cp "$pgo/optimized/$host/release/scopegate" "$pgo/scopegate"
echo "built $pgo/scopegate"
