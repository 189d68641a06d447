#!/usr/bin/env bash
# Installs headless Chromium and its WebDriver (`chromium`, `chromium-driver`, Debian
# packages) for tests/console_browser.rs, which drives the admin console in a real browser.
#
#   bash .ci/install-chromium.sh
#
# Outside CI a failed install only warns (the browser test then skips); with CI=true it
# fails, and so does the test.
set -euo pipefail

if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then
  exit 0
fi

fail() {
  echo "install-chromium: $*" >&2
  if [ "${CI:-}" = "true" ]; then
    exit 1
  fi
  echo "install-chromium: continuing; tests/console_browser.rs will skip" >&2
  exit 0
}

command -v apt-get >/dev/null 2>&1 || fail "apt-get not available to install chromium"
SUDO=""
if [ "$(id -u)" != "0" ]; then
  command -v sudo >/dev/null 2>&1 || fail "not root and no sudo: cannot install chromium"
  SUDO="sudo -n"
fi

LOG="$(mktemp)"
echo "install-chromium: installing chromium and chromium-driver (Debian packages)"
if ! { $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq \
    && $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      chromium chromium-driver; } >"$LOG" 2>&1; then
  tail -n 20 "$LOG" >&2
  rm -f "$LOG"
  fail "apt-get install chromium chromium-driver failed"
fi
rm -f "$LOG"

command -v chromium >/dev/null 2>&1 || fail "chromium still not on PATH after install"
command -v chromedriver >/dev/null 2>&1 || fail "chromedriver still not on PATH after install"
echo "install-chromium: $(chromium --version 2>/dev/null || true); $(chromedriver --version)"
