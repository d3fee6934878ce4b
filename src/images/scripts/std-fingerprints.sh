#!/bin/sh
# The standard library of an image's toolchain, linked into one plugin the way plugforge's
# builds link it (the build's target settings in the environment; -trimpath and tags as the
# build's), from a copy of the image's precompiled standard library: its package
# fingerprints are what a host built with the same bits carries (src/images/std-fingerprints.ts).
# The plugin is the one images/linux-amd64/precompile-std.sh builds at image build and
# removes; written out again here, because images already built carry no way to keep it.
#
#   sh -c "$SCRIPT" std [-trimpath] [tag,tag]    writes /var/tmp/plugforge-std/std.so
set -eu
flag=${1:-}
tags=${2:-}
work=/var/tmp/plugforge-std
rm -rf "$work"
mkdir -p "$work/tmp"
cp -r "$PLUGFORGE_STD_CACHE" "$work/cache"
cd "$work"
printf 'module plugforge.local/std\n\ngo 1.21\n' > go.mod
{
  echo 'package main'
  echo 'import ('
  go list -e -f '{{if and (not .Error) (ne .Name "main")}}{{.ImportPath}}{{end}}' std | grep -v -e internal -e '^vendor/' | sed 's/.*/\t_ "&"/'
  echo ')'
  echo 'func main() {}'
} > main.go
# Not /tmp: the linker maps its output in go's work directory, and /tmp is a small tmpfs here.
export GOCACHE="$work/cache" GOFLAGS= GOPROXY=off HOME="$work" TMPDIR="$work/tmp"
go build -buildvcs=false -buildmode=plugin $flag ${tags:+-tags "$tags"} -o "$work/std.so" .
