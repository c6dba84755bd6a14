#!/bin/sh
# deps.sh - make sure the Debian packages sagebridge builds and tests with are installed.
#
# Usage: tools/deps.sh [build|test]
#   build  libraries and tools needed to compile ./sagebridge (python3: the profile-guided
#          build trains on an export bench/gen-orders.py generates)
#   test   the above plus what the test suite uses (cmocka, xmllint)
#
# As root it installs what is missing with apt-get; otherwise it prints the exact
# command to run and exits 1.  It prints nothing when everything is present.
set -eu
want=${1:-build}
pkgs="gcc make pkg-config libyajl-dev libcsv-dev libxml2-dev libarchive-dev libisal-dev \
libcurl4-openssl-dev libsqlite3-dev libssl-dev libinih-dev python3"
if [ "$want" = test ]; then
    pkgs="$pkgs libcmocka-dev libxml2-utils"
fi
missing=""
for p in $pkgs; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed'; then
        missing="$missing $p"
    fi
done
[ -z "$missing" ] && exit 0
echo "sagebridge: missing Debian packages:$missing" >&2
if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2 || true
    # shellcheck disable=SC2086
    apt-get install -y -qq --no-install-recommends $missing >&2
    exit 0
fi
echo "sagebridge: run as root:  apt-get update && apt-get install -y$missing" >&2
exit 1
