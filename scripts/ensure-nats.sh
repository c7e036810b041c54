#!/usr/bin/env bash
# Prints the path of nats-server, installing Debian's package first when it is missing.
# The hub needs JetStream from nats-server 2.9 or newer.
set -euo pipefail

find_nats() {
  if [ -n "${NATS_SERVER_BIN:-}" ] && [ -x "$NATS_SERVER_BIN" ]; then echo "$NATS_SERVER_BIN"; return 0; fi
  command -v nats-server 2>/dev/null && return 0
  for p in /usr/sbin/nats-server /usr/local/bin/nats-server; do
    [ -x "$p" ] && { echo "$p"; return 0; }
  done
  return 1
}

if ! bin=$(find_nats); then
  echo "nats-server not found: installing Debian's nats-server package" >&2
  sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq nats-server >&2
  bin=$(find_nats) || { echo "nats-server is still missing after apt-get install" >&2; exit 1; }
fi

version=$("$bin" --version | grep -oE '[0-9]+\.[0-9]+\.[0-9]+' | head -1)
major=${version%%.*}; rest=${version#*.}; minor=${rest%%.*}
if [ "$major" -lt 2 ] || { [ "$major" -eq 2 ] && [ "$minor" -lt 9 ]; }; then
  echo "nats-server $version at $bin is too old: the hub needs 2.9 or newer" >&2
  exit 1
fi
echo "$bin"
