#!/bin/sh
# Makes the base image the builder Dockerfiles start FROM (debian:bookworm by default)
# without a container registry: debootstrap a minimal Debian and `docker import` it.
#
#   images/base/make-debian-base.sh [SUITE] [TAG]      e.g.  bookworm debian:bookworm
#
# Needs root, debootstrap (installed from Debian's packages if missing) and the Debian
# mirror. The apt package cache and lists are left out of the import (about 117 MB, ~30 s).
# Where a registry is reachable, `docker pull debian:bookworm` does the same job.
set -eu

suite=${1:-bookworm}
tag=${2:-debian:$suite}
mirror=${PLUGFORGE_DEBIAN_MIRROR:-http://deb.debian.org/debian}

fail() { echo "make-debian-base: $*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || fail "debootstrap needs root. Run as root, or on a machine with a registry: docker pull $tag"
command -v docker >/dev/null 2>&1 || fail "docker client not found"
docker info >/dev/null 2>&1 || fail "the Docker engine does not answer (start dockerd first)"

if ! command -v debootstrap >/dev/null 2>&1; then
  command -v apt-get >/dev/null 2>&1 || fail "debootstrap is missing and there is no apt-get to install it; install debootstrap by hand"
  echo "make-debian-base: installing debootstrap"
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends debootstrap >/dev/null 2>&1 || {
    apt-get update >/dev/null 2>&1 || fail "apt-get update failed: is $mirror reachable?"
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends debootstrap >/dev/null || fail "could not install debootstrap with apt-get"
  }
fi

work=$(mktemp -d /tmp/plugforge-base.XXXXXX)
trap 'rm -rf "$work"' EXIT INT TERM
rootfs="$work/rootfs"

echo "make-debian-base: debootstrap --variant=minbase $suite from $mirror (about 30 s)"
start=$(date +%s)
if ! debootstrap --variant=minbase "$suite" "$rootfs" "$mirror" >"$work/debootstrap.log" 2>&1; then
  tail -n 20 "$work/debootstrap.log" >&2
  fail "debootstrap failed (log above): is $mirror reachable?"
fi

# The official image's defaults, so FROM-lines behave the same with either.
echo "deb $mirror $suite main" > "$rootfs/etc/apt/sources.list"
echo "make-debian-base: importing as $tag"
tar -C "$rootfs" \
    --exclude='./var/cache/apt/archives/*.deb' \
    --exclude='./var/cache/apt/*.bin' \
    --exclude='./var/lib/apt/lists/*_*' \
    -c . | docker import \
      --change 'CMD ["bash"]' \
      --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
      --message "plugforge: debootstrap --variant=minbase $suite" - "$tag" >/dev/null \
  || fail "docker import failed"
echo "make-debian-base: $tag ready in $(( $(date +%s) - start )) s ($(docker image inspect -f '{{.Size}}' "$tag" | awk '{printf "%d MB", $1/1000/1000}'))"
