#!/usr/bin/env bash
# Runs every test of tb_weightnorm, installing first what the tests need:
# Chromium from the OS packages, the frontend's npm packages, and the Python
# package with its test extras (which builds the frontend bundle).
set -euo pipefail
cd "$(dirname "$0")"
PYTHON="${PYTHON:-python3}"

if [ ! -x /usr/bin/chromium ]; then
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
fi

(cd tb_weightnorm_frontend && npm ci --no-audit --no-fund)
"$PYTHON" -m pip install --quiet -e ".[test]"

(cd tb_weightnorm_frontend && npm run typecheck && npm test)
"$PYTHON" -m pytest -q "$@"
