#!/bin/sh
# Downloads and verifies one release of the Go toolchain module, then lays it out as a
# GOROOT at /out/go. The go command does the download and every check: the zip's hash
# against the go.sum lines in $PLUGFORGE_GO_SUM (pinned by the operator) and, unless
# GOSUMDB=off, against the checksum database. Its -json answer is printed either way.
#   usage: fetch-toolchain.sh golang.org/toolchain@v0.0.1-go1.22.5.linux-amd64
set -eu
mv=$1
mkdir -p /out/fetch
cd /out/fetch
printf 'module plugforge.invalid/toolchain-fetch\n\ngo 1.21\n' > go.mod
printf '%s\n' "${PLUGFORGE_GO_SUM:-}" > go.sum
status=0
go mod download -json "$mv" > /out/download.json || status=$?
cat /out/download.json
[ "$status" = 0 ] || exit 3
dir=$(sed -n 's/^\t"Dir": "\(.*\)",\{0,1\}$/\1/p' /out/download.json)
[ -n "$dir" ] && [ -f "$dir/bin/go" ] || { echo "plugforge: $mv holds no bin/go" >&2; exit 4; }
cp -a "$dir" /out/go
# What the go command itself does on the first use of a downloaded toolchain
# (cmd/go/internal/toolchain): module zips keep no file modes, so the commands get their
# exec bits back; go.mod files below the root travel as _go.mod and are put back.
chmod -R a+rX,go-w /out/go
find /out/go/bin /out/go/pkg/tool -type f -exec chmod 0755 {} +
find /out/go -name _go.mod | while read -r f; do
  [ -e "${f%_go.mod}go.mod" ] || cp "$f" "${f%_go.mod}go.mod"
done
