#!/usr/bin/env bash
# The whole test suite: buf lint of the contract, formatting, clippy with -D warnings, and every
# unit, integration and end-to-end test against real nats-server processes the tests start, with
# the console's tests in a real headless chromium (installed from Debian when missing).
set -euo pipefail
cd "$(dirname "$0")/.."

NATS_SERVER_BIN=$(scripts/ensure-nats.sh)
export NATS_SERVER_BIN
echo "using $("$NATS_SERVER_BIN" --version) at $NATS_SERVER_BIN"
# The console's browser tests need a real headless chromium.
scripts/ensure-chromium.sh
echo "using $(chromium --version 2>/dev/null | head -1) with chromedriver"

# The contract follows buf's STANDARD lint rules; buf comes from its npm registry package.
buf=.tools/node_modules/.bin/buf
if [ ! -x "$buf" ]; then
  if ! command -v npm >/dev/null 2>&1; then
    sudo=""
    [ "$(id -u)" -ne 0 ] && sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq npm
  fi
  npm install --prefix .tools --no-audit --no-fund --silent @bufbuild/buf@1.75.0
fi
"$buf" lint
echo "buf lint: ok"

cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --locked --no-fail-fast
else
  cargo test --workspace --locked --no-fail-fast
fi
