#!/usr/bin/env bash
# Runs the gateway against a local JetStream server:
#  - installs nats-server (Debian package) when it is missing;
#  - generates development credentials in .timpora/ (a local CA, one client certificate and one
#    token per demo agency identity, a pseudonymisation key, the config) unless they exist;
#  - starts nats-server with JetStream on 127.0.0.1:4222, its store in .timpora/nats
#    (or uses a server already listening there);
#  - provisions the topology and serves the gateway (mutual TLS) on 127.0.0.1:50051 until Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."

nats=$(scripts/ensure-nats.sh)
cargo build --release --locked --bin timpora
timpora=target/release/timpora
data=${TIMPORA_DATA_DIR:-.timpora}
export TIMPORA_DATA_DIR=$data

"$timpora" dev init
mkdir -p "$data/nats"
if (exec 3<>/dev/tcp/127.0.0.1/4222) 2>/dev/null; then
  echo "using the NATS server already listening on 127.0.0.1:4222"
else
  "$nats" -a 127.0.0.1 -p 4222 -js -sd "$data/nats" -l "$data/nats.log" &
  nats_pid=$!
  trap 'kill "$nats_pid" 2>/dev/null; wait "$nats_pid" 2>/dev/null || true' EXIT
  for _ in $(seq 100); do
    (exec 3<>/dev/tcp/127.0.0.1/4222) 2>/dev/null && break
    sleep 0.1
  done
fi
"$timpora" bus init
cat <<MSG

gateway starting on https://localhost:50051 (mutual TLS; development credentials in $data/)
  publish:   target/release/timpora publish examples/imigrasi-kanim-kendari.ndjson --identity imigrasi/kanim-kendari
  subscribe: target/release/timpora subscribe --identity polri/polda-sultra
  status:    target/release/timpora bus status
Ctrl-C stops it.

MSG
"$timpora" gateway
