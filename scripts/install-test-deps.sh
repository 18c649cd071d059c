#!/usr/bin/env bash
# Installs what the tests and benchmarks need from Debian: Chromium at /usr/bin/chromium (driven by playwright-core,
# dashboard tests), pebble (ACME test server, sites) and wrk (npm run bench:sites).
# Idempotent: does nothing when they are already there. Called by .ci/run before the tests; run it by hand once on a
# development machine (as root, or with sudo).
set -euo pipefail

if [ -x /usr/bin/chromium ] && command -v pebble >/dev/null 2>&1 && command -v wrk >/dev/null 2>&1; then
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    exec sudo -n "$0" "$@"
  fi
  echo "install-test-deps: chromium, pebble or wrk is missing and installing them needs root." >&2
  echo "  Run: sudo bash scripts/install-test-deps.sh   (or: apt-get install -y chromium pebble wrk)" >&2
  exit 1
fi

export DEBIAN_FRONTEND=noninteractive
echo "install-test-deps: installing Debian's chromium (dashboard browser tests), pebble (ACME) and wrk (bench:sites)"
apt-get update -qq
apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core pebble wrk >/dev/null
/usr/bin/chromium --version
