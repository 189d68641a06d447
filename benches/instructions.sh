#!/usr/bin/env bash
# Instructions the gateway executes per request, counted by callgrind: a yardstick the VM's
# noise does not move (the same binary and inputs give the same count). Runs the release
# binary (1 worker) on the shared benchmark's 20-token config in front of its upstream,
# sends the benchmark's request mix over 16 keep-alive connections, and reports the
# difference between a long and a short run, so start-up cancels out.
#
#   benches/instructions.sh [BIN]     # default target/release/scopegate
#
# What it cannot see: the kernel, cache misses, and instructions dearer than others
# (valgrind hides the CPU's SHA extensions, so SHA-256 runs in software here).
set -euo pipefail
cd "$(dirname "$0")/.."
bench=$(cd ../shared/bench && pwd)
bin=$(realpath "${1:-target/release/scopegate}")
short=${SHORT:-2000} long=${LONG:-12000}
port=18283 admin=19283
command -v valgrind >/dev/null || { echo "valgrind is not installed" >&2; exit 1; }
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; bash "$bench/servers.sh" stop >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
bash "$bench/servers.sh" start upstream >/dev/null
out="${BENCH_OUT:-$bench/out}"
# Beside the tokens file, which the config names relative to itself.
cfg="$out/scopegate/instructions.yaml"
sed -e "s/127.0.0.1:18083/127.0.0.1:$port/" -e "s/127.0.0.1:19901/127.0.0.1:$admin/" \
  "$out/scopegate/scopegate.yaml" > "$cfg"

count() {
  local n=$1
  TOKIO_WORKER_THREADS=1 timeout 600 valgrind --tool=callgrind \
    --callgrind-out-file="$work/cg.$n" "$bin" serve --config "$cfg" 2>"$work/log.$n" &
  local pid=$! deadline=$(( $(date +%s) + 120 ))
  until curl -sf "http://127.0.0.1:$admin/readyz" >/dev/null 2>&1; do
    [ "$(date +%s)" -lt "$deadline" ] || { echo "gateway not ready" >&2; exit 1; }
    sleep 0.1
  done
  python3 - "$port" "$n" "$out/mix.tsv" <<'PY'
import asyncio, sys
port, total, mix = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
reqs = []
for line in open(mix):
    if line.startswith("#") or not line.strip():
        continue
    method, path, auth, body = line.rstrip("\n").split("\t")[:4]
    head = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Basic {auth}\r\n"
    if body:
        head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n{body}"
    else:
        head += "\r\n"
    reqs.append(head.encode())
left = [total]
async def connection(k, conns):
    r, w = await asyncio.open_connection("127.0.0.1", port)
    i = k
    while left[0] > 0:
        left[0] -= 1
        w.write(reqs[i % len(reqs)])
        i += conns
        head = await asyncio.wait_for(r.readuntil(b"\r\n\r\n"), 60)
        length = 0
        for l in head.split(b"\r\n"):
            if l.lower().startswith(b"content-length:"):
                length = int(l.split(b":")[1])
        if length:
            await r.readexactly(length)
    w.close()
async def main():
    await asyncio.gather(*(connection(k, 16) for k in range(16)))
asyncio.run(main())
PY
  kill -TERM "$pid"
  wait "$pid" || true
  awk '/^(summary|totals):/ {print $2; exit}' "$work/cg.$n"
}

a=$(count "$short")
b=$(count "$long")
echo "instructions per request: $(( (b - a) / (long - short) ))  ($bin; $short and $long requests: $a and $b)"
