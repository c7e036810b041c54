#!/usr/bin/env bash
# Makes sure Debian's chromium and chromium-driver are installed: the console's browser tests
# drive a real headless chromium through chromedriver.
set -euo pipefail

if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then
  exit 0
fi
echo "chromium or chromedriver not found: installing Debian's chromium and chromium-driver" >&2
sudo=""
[ "$(id -u)" -ne 0 ] && sudo="sudo"
$sudo apt-get update -qq >&2
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium chromium-driver >&2
command -v chromedriver >/dev/null 2>&1 || { echo "chromedriver is still missing after apt-get install" >&2; exit 1; }
