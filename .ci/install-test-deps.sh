#!/usr/bin/env bash
# Installs the programs the test suite runs besides cargo, when they are missing:
#
#   prometheus, promtool   Debian package `prometheus`  (tests/metrics.rs: a real Prometheus
#                          scrapes the gateway; `promtool check metrics` on /metrics)
#   curl                   Debian package `curl`        (tests/tls.rs: a real client over TLS)
#   php                    Debian package `php-cli`     (tests/framework_overrides.rs: PHP's
#                          own form and multipart parsing under `php -S`)
#   rackup                 Debian packages `ruby-rack`, `ruby-webrick` (the same test:
#                          Rack's MethodOverride, as Rails runs it)
#   node, npm              Debian packages `nodejs`, `npm` (the same test: Express with
#                          method-override); `npm ci` then installs the pinned Express into
#                          tests/data/frameworks/express/node_modules
#
#   bash .ci/install-test-deps.sh      # .ci/test runs it before `cargo test`
#
# Idempotent: when everything is on PATH it installs nothing and does not touch apt.
# It only installs packages: it starts, stops and disables no service. (On a host running
# systemd, Debian's `prometheus` package enables its own prometheus.service on :9090; the
# tests never use it, they start their own Prometheus on a free loopback port.)
#
# With CI=true a failed install is an error. Elsewhere it is a warning, and the tests that
# need the missing program skip with a message saying so.
set -euo pipefail

missing=()
if ! command -v prometheus >/dev/null 2>&1 || ! command -v promtool >/dev/null 2>&1; then
  missing+=(prometheus)
fi
if ! command -v curl >/dev/null 2>&1; then
  missing+=(curl)
fi
if ! command -v php >/dev/null 2>&1; then
  missing+=(php-cli)
fi
if ! command -v rackup >/dev/null 2>&1 || ! ruby -e 'require "webrick"' >/dev/null 2>&1; then
  missing+=(ruby-rack ruby-webrick)
fi
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  missing+=(nodejs npm)
fi

# Express for tests/framework_overrides.rs, pinned by its package-lock.json.
express_modules() {
  local dir
  dir="$(dirname "$0")/../tests/data/frameworks/express"
  if [ -d "$dir/node_modules/express" ] || ! command -v npm >/dev/null 2>&1; then
    return 0
  fi
  echo "test deps: npm ci in tests/data/frameworks/express"
  (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error) \
    || fail "npm ci failed in tests/data/frameworks/express"
}

if [ "${#missing[@]}" -eq 0 ]; then
  NAME="test deps"
  SKIPS="tests/framework_overrides.rs will skip Express"
  . "$(dirname "$0")/lib.sh"
  express_modules
  echo "test deps: prometheus, promtool, curl, php, rackup, node and Express are installed"
  exit 0
fi

NAME="test deps"
SKIPS="tests that need ${missing[*]} will be skipped"
. "$(dirname "$0")/lib.sh"
need_apt_as_root "${missing[*]}"

echo "test deps: installing Debian packages: ${missing[*]}"
apt_install "${missing[@]}"

for tool in prometheus promtool curl php rackup node npm; do
  command -v "$tool" >/dev/null 2>&1 || fail "$tool is still not on PATH after installing ${missing[*]}"
done
express_modules
echo "test deps: $(prometheus --version 2>&1 | head -n 1)"
