#!/usr/bin/env bash
# Installs Python's `aiosmtpd` (a real SMTP server) for tests/notify.rs, when missing.
# The tests start their own server on a free port (tests/support/smtp_sink.py).
#
#   bash .ci/install-aiosmtpd.sh
#
# Outside CI a failed install only warns (the SMTP tests then skip); with CI=true it fails,
# and so do the tests.
set -euo pipefail

PY="${PYTHON:-python3}"

NAME=install-aiosmtpd
SKIPS="the SMTP tests in tests/notify.rs will skip"
. "$(dirname "$0")/lib.sh"

command -v "$PY" >/dev/null 2>&1 || fail "$PY not found"
if "$PY" -c 'import aiosmtpd' >/dev/null 2>&1; then
  exit 0
fi

LOG="$(mktemp)"
echo "install-aiosmtpd: installing aiosmtpd with pip"
if ! "$PY" -m pip install --quiet --disable-pip-version-check aiosmtpd >"$LOG" 2>&1; then
  # Debian's externally managed Python refuses a plain pip install; its package works too.
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = "0" ] \
    && env DEBIAN_FRONTEND=noninteractive apt-get update -qq >>"$LOG" 2>&1 \
    && env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      python3-aiosmtpd >>"$LOG" 2>&1; then
    :
  else
    tail -n 20 "$LOG" >&2
    rm -f "$LOG"
    fail "pip install aiosmtpd failed"
  fi
fi
rm -f "$LOG"
"$PY" -c 'import aiosmtpd' >/dev/null 2>&1 || fail "aiosmtpd still not importable by $PY"
echo "install-aiosmtpd: aiosmtpd $("$PY" -c 'import aiosmtpd; print(aiosmtpd.__version__)')"
