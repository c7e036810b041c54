#!/usr/bin/env bash
# Runs the hub with its demo (`timpora up --demo`): gateway, correlator, console and the
# scenario simulator in one process, nats-server as its child. Extra arguments go to `timpora up`
# (e.g. `scripts/run.sh --seed 7 --rate 10`).
#  - installs nats-server (Debian package) when it is missing;
#  - on first use generates development credentials in .timpora/ (a local CA, one client
#    certificate and one token per demo agency identity, a pseudonymisation key, the config);
#  - starts nats-server with JetStream on 127.0.0.1:4222, its store in .timpora/nats (or uses a
#    server already listening there), provisions the topology, and serves the gateway (mutual
#    TLS) on 127.0.0.1:50051, the correlator, the console on http://127.0.0.1:8080 and the
#    simulated agencies until Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."

NATS_SERVER_BIN=$(scripts/ensure-nats.sh)
export NATS_SERVER_BIN
cargo build --release --locked --bin timpora
export TIMPORA_DATA_DIR=${TIMPORA_DATA_DIR:-.timpora}

args=()
if (exec 3<>/dev/tcp/127.0.0.1/4222) 2>/dev/null; then
  echo "using the NATS server already listening on 127.0.0.1:4222"
  args=(--nats-url nats://127.0.0.1:4222)
fi
exec target/release/timpora up --demo "${args[@]}" "$@"
