#!/usr/bin/env bash
# Headless Chromium for the console's browser tests (console TestBrowser*).
#
#   scripts/chromium.sh     install Debian's chromium when it is missing, then
#                           print the path of the binary
#
# Idempotent: with /usr/bin/chromium present it only prints the path.
set -euo pipefail

die() { echo "chromium.sh: $*" >&2; exit 1; }

bin=/usr/bin/chromium
if [ ! -x "$bin" ]; then
	[ "$(id -u)" = 0 ] || die "Chromium is not installed, and installing it needs root"
	echo "chromium.sh: installing Chromium from Debian's packages" >&2
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq >&2
	apt-get install -y -qq chromium >&2
	[ -x "$bin" ] || die "no $bin after installing chromium"
fi
echo "$bin"
