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

NAME=install-chromium
SKIPS="tests/console_browser.rs will skip"
. "$(dirname "$0")/lib.sh"
need_apt_as_root chromium

echo "install-chromium: installing chromium and chromium-driver (Debian packages)"
apt_install chromium chromium-driver

command -v chromium >/dev/null 2>&1 || fail "chromium still not on PATH after install"
command -v chromedriver >/dev/null 2>&1 || fail "chromedriver still not on PATH after install"
echo "install-chromium: $(chromium --version 2>/dev/null || true); $(chromedriver --version)"
