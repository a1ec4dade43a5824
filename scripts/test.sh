#!/usr/bin/env bash
# Installs everything the tests need and runs them. In CI (CI=true) Debian's Chromium is
# installed for the browser test; elsewhere that test runs if /usr/bin/chromium exists.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh requirements-dev.txt
if [ "${CI:-}" = "true" ] && ! command -v chromium >/dev/null 2>&1; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi
exec .venv/bin/python -m pytest "$@"
