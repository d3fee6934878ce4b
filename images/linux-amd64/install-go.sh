#!/bin/sh
# Installs a Go toolchain at /usr/local/go, plus gcc and libc headers for cgo.
# usage: install-go.sh GO_VERSION GO_SOURCE [GO_SHA256] [GO_DOWNLOAD_URL]
# Every failing step names what failed, so a build log says which package to look at.
set -eu

version=$1
source=$2
sha256=${3:-}
url=${4:-https://go.dev/dl}

fail() { echo "plugforge: $*" >&2; exit 1; }

minor=$(echo "$version" | cut -d. -f1,2)
case "$version" in
  [0-9]*.[0-9]*) ;;
  *) fail "GO_VERSION '$version' is not a Go version such as 1.22 or 1.22.12" ;;
esac

export DEBIAN_FRONTEND=noninteractive

apt_install() {
  # One package per name in the error, so "which package" is never a guess.
  apt-get install -y --no-install-recommends "$@" || {
    for p in "$@"; do
      apt-cache policy "${p%%/*}" 2>/dev/null | grep -q 'Candidate: [0-9]' || fail "apt: package $p is not available from the configured Debian suites"
    done
    fail "apt: installing $* failed (see the apt output above)"
  }
}

case "$source" in
  debian)
    case "$minor" in
      1.21|1.22|1.23) suite=bookworm-backports ;;
      1.24) suite=trixie ;;
      1.25|1.26|1.27) suite=trixie-backports ;;
      *) fail "Go $minor is not packaged by Debian for this image; supported: 1.21, 1.22, 1.23, 1.24, 1.25, 1.26, 1.27 (or build with GO_SOURCE=official)" ;;
    esac
    echo "deb http://deb.debian.org/debian $suite main" > /etc/apt/sources.list.d/plugforge-go.list
    # Only the Go packages may come from trixie (or its backports): everything else stays
    # bookworm. The Go packages depend on nothing but their own -src package.
    case "$suite" in
      trixie*) printf 'Package: *\nPin: release n=%s\nPin-Priority: 100\n' "$suite" > /etc/apt/preferences.d/plugforge-trixie ;;
    esac
    apt-get update || fail "apt-get update failed: is the Debian mirror reachable from containers?"
    apt_install ca-certificates gcc libc6-dev "golang-$minor-go/$suite"
    # Debian installs at /usr/lib/go-<minor> with src/api/misc/test as links into
    # /usr/share/go-<minor>; make a self-contained copy at the official GOROOT.
    mkdir -p /usr/local/go
    cp -a "/usr/lib/go-$minor/." /usr/local/go/
    for d in api misc src test pkg/include; do
      if [ -L "/usr/local/go/$d" ]; then
        target=$(readlink -f "/usr/lib/go-$minor/$d")
        rm "/usr/local/go/$d"
        cp -a "$target" "/usr/local/go/$d"
      fi
    done
    apt-get purge -y "golang-$minor-go" "golang-$minor-src" >/dev/null
    rm -f /etc/apt/sources.list.d/plugforge-go.list /etc/apt/preferences.d/plugforge-trixie
    ;;
  go-release)
    # The Go toolchain module's tree, fetched and verified by the go command before this
    # build (src/images/toolchain-module.ts), is at /usr/local/go of the BASE image.
    [ -f /usr/local/go/bin/go ] || fail "GO_SOURCE=go-release needs the verified toolchain at /usr/local/go of the BASE image; plugforge images build puts it there"
    apt-get update || fail "apt-get update failed: is the Debian mirror reachable from containers?"
    apt_install ca-certificates gcc libc6-dev
    ;;
  official)
    case "$version" in
      *.*.*) ;;
      *) fail "GO_SOURCE=official needs an exact GO_VERSION such as 1.22.12, not '$version'" ;;
    esac
    [ -n "$sha256" ] || fail "GO_SOURCE=official needs GO_SHA256 (from https://go.dev/dl/)"
    apt-get update || fail "apt-get update failed: is the Debian mirror reachable from containers?"
    apt_install ca-certificates curl gcc libc6-dev
    file="go$version.linux-amd64.tar.gz"
    curl -fsSL -o "/tmp/$file" "$url/$file" || fail "download of $url/$file failed"
    echo "$sha256  /tmp/$file" | sha256sum -c - || fail "checksum of $file does not match GO_SHA256"
    tar -C /usr/local -xzf "/tmp/$file"
    rm -f "/tmp/$file"
    ;;
  *) fail "GO_SOURCE must be 'debian', 'go-release' or 'official', not '$source'" ;;
esac

rm -rf /var/lib/apt/lists/*

installed=$(/usr/local/go/bin/go env GOVERSION)
case "$version" in
  *.*.*) [ "$installed" = "go$version" ] || fail "asked for Go $version but $source provides $installed" ;;
  *) case "$installed" in "go$minor"|"go$minor".*) ;; *) fail "asked for Go $minor but $source provides $installed" ;; esac ;;
esac
[ "$(/usr/local/go/bin/go env GOROOT)" = /usr/local/go ] || fail "GOROOT is $(/usr/local/go/bin/go env GOROOT), expected /usr/local/go"
echo "plugforge: installed $installed at /usr/local/go"
