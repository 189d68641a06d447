#!/usr/bin/env bash
# Start-up time, full-reload time and resident memory of the release binary for 20, 1,000
# and 100,000 tokens (the shared benchmark's token generator and renderer), plus resident
# memory with 10,000 idle keep-alive connections. Loopback only; every step is bounded.
#
# The first start finds no tokens cache (a fresh folder) and writes one for a tokens file of
# 1 MiB or more; the SIGHUP reload and the restart after it read that cache (the files are
# unchanged), as a restart or a reload of an unchanged tokens file does in production.
#
#   benches/memory.sh            # prints one table
set -euo pipefail
cd "$(dirname "$0")/.."
bench=${SCOPEGATE_BENCH:-../shared/bench}  # a worktree elsewhere points it at the shared folder
bin=${SCOPEGATE_BIN:-target/release/scopegate}
[ -x "$bin" ] || cargo build --release --locked
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
port=18183 admin=19183

rss_kib() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
now() { date +%s.%N; }
generation() { curl -s "http://127.0.0.1:$admin/generation" | tr -dc '0-9'; }

wait_ready() {
  local deadline=$(( $(date +%s) + 120 ))
  until curl -sf "http://127.0.0.1:$admin/readyz" >/dev/null 2>&1; do
    [ "$(date +%s)" -lt "$deadline" ] || { echo "gateway not ready" >&2; exit 1; }
    sleep 0.01
  done
}

echo "| tokens | first start to ready (s) | full reload (s) | restart to ready (s) | RSS after first start (MiB) | RSS after restart (MiB) |"
echo "|---:|---:|---:|---:|---:|---:|"
for n in 20 1000 100000; do
  out="$work/$n"; mkdir -p "$out"
  python3 "$bench/gen_tokens.py" -n "$n" --seed 7 -o "$out/tokens.tsv" >/dev/null
  python3 "$bench/render.py" --tokens "$out/tokens.tsv" --out "$out" >/dev/null
  cfg="$out/scopegate/scopegate.yaml"
  sed -i -e "s/127.0.0.1:18083/127.0.0.1:$port/" -e "s/127.0.0.1:19901/127.0.0.1:$admin/" "$cfg"
  # The files just written (52 MB at 100,000 tokens) are flushed first: a start measured
  # while the kernel writes them back ran every phase two to three times slower here.
  sync
  t0=$(now)
  "$bin" serve --config "$cfg" 2>"$out/log" &
  pid=$!
  wait_ready
  t1=$(now)
  rss=$(rss_kib $pid)
  g0=$(generation)
  t2=$(now)
  kill -HUP $pid
  until [ "$(generation)" -gt "$g0" ]; do sleep 0.005; done
  t3=$(now)
  kill -TERM $pid; wait $pid || true
  t4=$(now)
  "$bin" serve --config "$cfg" 2>>"$out/log" &
  pid=$!
  wait_ready
  t5=$(now)
  rss2=$(rss_kib $pid)
  kill -TERM $pid; wait $pid || true
  printf "| %s | %.3f | %.3f | %.3f | %.1f | %.1f |\n" "$n" "$(echo "$t1 - $t0" | bc)" "$(echo "$t3 - $t2" | bc)" \
    "$(echo "$t5 - $t4" | bc)" "$(echo "$rss / 1024" | bc -l)" "$(echo "$rss2 / 1024" | bc -l)"
done

# 10,000 idle keep-alive connections (header_read raised so they stay open while measured).
out="$work/20"; cfg="$out/scopegate/scopegate.yaml"
printf 'timeouts:\n  header_read: 120s\n' >> "$cfg"
[ "$(ulimit -n)" -ge 11000 ] || ulimit -n 11000
"$bin" serve --config "$cfg" 2>"$out/log2" &
pid=$!
wait_ready
before=$(rss_kib $pid)
python3 - "$port" "$out/tokens.tsv" <<'PY'
import base64, socket, sys, time
port = int(sys.argv[1])
sid, secret = open(sys.argv[2]).read().splitlines()[1].split("\t")[:2]
auth = base64.b64encode(f"{sid}:{secret}".encode()).decode()
req = f"GET /api/v1/public/x HTTP/1.1\r\nHost: bench\r\nAuthorization: Basic {auth}\r\n\r\n".encode()
socks = []
for i in range(10000):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    socks.append(s)
# one request on every 10th connection, so some have served traffic and some never did
for s in socks[::10]:
    s.sendall(req)
    s.recv(4096)
open("/tmp/scopegate-idle-ready", "w").write("1")
time.sleep(3)
PY
after=$(rss_kib $pid)
printf "\nRSS with 10,000 idle keep-alive connections: %.1f MiB (%.1f MiB before them, %.2f KiB per connection)\n" \
  "$(echo "$after / 1024" | bc -l)" "$(echo "$before / 1024" | bc -l)" "$(echo "($after - $before) / 10000" | bc -l)"
kill -TERM $pid; wait $pid || true
