#!/bin/sh
# install-deps.sh: install the Debian packages hearsay needs to build, test
# and run, skipping those already installed. Works as root or through sudo.
#   scripts/install-deps.sh          what make test needs
#   scripts/install-deps.sh bench    and gnuplot, for bench-cluster's plot
set -eu

PKGS="build-essential pkg-config lua5.4 liblua5.4-dev libuv1-dev lua-cjson
lua-busted lua-check clang-format libmsgpack-dev libcjson-dev libssl-dev zlib1g-dev serf iproute2 procps"
# The fuzz targets (clang with libFuzzer and the sanitizer runtimes,
# llvm-symbolizer for readable reports) and the leak check (valgrind).
PKGS="$PKGS clang libclang-rt-dev llvm valgrind"
if [ "${1:-}" = "bench" ]; then
    PKGS="$PKGS gnuplot-nox"
fi

missing=""
for p in $PKGS; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed"; then
        missing="$missing $p"
    fi
done

if [ -z "$missing" ]; then
    echo "install-deps: all packages present"
    exit 0
fi

if [ "$(id -u)" -eq 0 ]; then
    SUDO=""
elif command -v sudo >/dev/null 2>&1; then
    SUDO="sudo"
else
    echo "install-deps: need root or sudo to install:$missing" >&2
    exit 1
fi

echo "install-deps: installing$missing"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing
