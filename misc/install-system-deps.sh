#!/bin/sh
# Install the Debian packages the server and its ImageBuilders need (and, with
# the argument "test" or "bench", what the tests or the benchmarks need too), when
# they are missing and we may (root). Safe to run again: it installs nothing when
# everything is there.
set -eu

need=""
command -v redis-server >/dev/null 2>&1 || need="$need redis-server"
command -v bwrap >/dev/null 2>&1 || need="$need bubblewrap"
command -v mksquashfs >/dev/null 2>&1 || need="$need squashfs-tools"
command -v zstd >/dev/null 2>&1 || need="$need zstd"
command -v xz >/dev/null 2>&1 || need="$need xz-utils"
command -v mke2fs >/dev/null 2>&1 || need="$need e2fsprogs"
command -v make >/dev/null 2>&1 || need="$need make"
python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || need="$need python3-venv"
# The ImageBuilders run the system's python3 inside their sandbox.
[ -x /usr/bin/python3 ] || need="$need python3"
# The tests and `make bench` run hosts as network namespaces (ip netns).
command -v ip >/dev/null 2>&1 || [ -x /usr/sbin/ip ] || [ -x /sbin/ip ] || need="$need iproute2"
if [ "${1:-}" = test ]; then
    # The tests of the web page (headless Chromium), the nginx configuration, the
    # compose file and the systemd units.
    command -v chromium >/dev/null 2>&1 || need="$need chromium"
    command -v chromedriver >/dev/null 2>&1 || need="$need chromium-driver"
    [ -x /usr/sbin/nginx ] || need="$need nginx-light"
    command -v docker-compose >/dev/null 2>&1 || need="$need docker-compose"
    command -v systemd-analyze >/dev/null 2>&1 || need="$need systemd"
fi
if [ "${1:-}" = bench ]; then
    # bench.cached_answers loads the server with wrk, direct and behind nginx.
    command -v wrk >/dev/null 2>&1 || need="$need wrk"
    [ -x /usr/sbin/nginx ] || need="$need nginx-light"
fi

[ -z "$need" ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
    echo "missing Debian packages:$need" >&2
    echo "install them with: sudo apt-get install$need" >&2
    exit 1
fi
echo "installing Debian packages:$need" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
# shellcheck disable=SC2086
apt-get install -y -q --no-install-recommends $need
