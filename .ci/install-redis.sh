#!/usr/bin/env bash
# Installs `redis-server` for tests/redis_limit.rs (shared rate limits), when missing.
# The tests start their own server on a free port; the system service is never enabled
# nor started here.
#
#   bash .ci/install-redis.sh
#
# Outside CI a failed install only warns (the tests then skip); with CI=true it fails.
set -euo pipefail

if command -v redis-server >/dev/null 2>&1; then
  echo "install-redis: redis-server is installed"
  exit 0
fi

NAME=install-redis
SKIPS="tests/redis_limit.rs will skip"
. "$(dirname "$0")/lib.sh"
need_apt_as_root redis-server

# Keep the package's maintainer scripts from starting the service: a policy-rc.d that
# denies every start, unless the machine already has one.
POLICY=/usr/sbin/policy-rc.d
ADDED_POLICY=0
if [ ! -e "$POLICY" ]; then
  printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$POLICY" >/dev/null
  $SUDO chmod 755 "$POLICY"
  ADDED_POLICY=1
fi
cleanup() {
  if [ "$ADDED_POLICY" = 1 ]; then
    $SUDO rm -f "$POLICY"
  fi
}
trap cleanup EXIT

echo "install-redis: installing redis-server (Debian package)"
apt_install redis-server

# On a machine running systemd the package enables its unit: undo that, the tests run
# their own servers.
if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
  $SUDO systemctl disable --now redis-server.service >/dev/null 2>&1 || true
fi

command -v redis-server >/dev/null 2>&1 || fail "redis-server still not on PATH after install"
echo "install-redis: $(redis-server --version)"
