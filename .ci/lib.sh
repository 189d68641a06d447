# Shared by the .ci/install-*.sh scripts (sourced, not run): the failure rule, the
# root-or-sudo prefix and the logged apt-get install they all use.
#
# Before sourcing, a script sets:
#   NAME   the prefix of its messages (e.g. install-redis)
#   SKIPS  what skips when the install fails outside CI (e.g. "tests/redis_limit.rs will skip")

# Reports a failed install. With CI=true it is an error (the suite must not silently skip
# what it cannot run); elsewhere a warning, and the tests that need the program skip.
fail() {
  echo "$NAME: $*" >&2
  if [ "${CI:-}" = "true" ]; then
    exit 1
  fi
  echo "$NAME: continuing; $SKIPS" >&2
  exit 0
}

# Sets SUDO to the prefix that runs apt-get as root ("" when root, `sudo -n` otherwise),
# or fails when there is no apt-get or no way to become root. $1 names what is installed.
need_apt_as_root() {
  command -v apt-get >/dev/null 2>&1 || fail "apt-get not available to install $1"
  SUDO=""
  if [ "$(id -u)" != "0" ]; then
    command -v sudo >/dev/null 2>&1 || fail "not root and no sudo: cannot install $1"
    SUDO="sudo -n"
  fi
}

# Installs Debian packages quietly (needs SUDO from need_apt_as_root); on failure shows the
# end of apt-get's output and fails.
apt_install() {
  local log
  log="$(mktemp)"
  if ! { $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq \
      && $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
        --no-install-recommends "$@"; } >"$log" 2>&1; then
    tail -n 30 "$log" >&2
    rm -f "$log"
    fail "apt-get install $* failed"
  fi
  rm -f "$log"
}
