#!/usr/bin/env bash
# Installs what the browser tests need from Debian: Chromium at /usr/bin/chromium (driven by playwright-core).
# Idempotent: does nothing when it is already there. Called by .ci/run before the tests; run it by hand once on a
# development machine (as root, or with sudo).
set -euo pipefail

if [ -x /usr/bin/chromium ]; then
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    exec sudo -n "$0" "$@"
  fi
  echo "install-test-deps: /usr/bin/chromium is missing and installing it needs root." >&2
  echo "  Run: sudo bash scripts/install-test-deps.sh   (or: apt-get install -y chromium)" >&2
  exit 1
fi

export DEBIAN_FRONTEND=noninteractive
echo "install-test-deps: installing Debian's chromium for the dashboard browser tests"
apt-get update -qq
apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
/usr/bin/chromium --version
