#!/bin/sh
# The standard library compiled once, at image build, for this image's target in plugin
# mode, with and without -trimpath, as plugforge's builds compile it (GO386=sse2 on 386,
# as they use): the seed of a tenant's build cache. A tenant's new, empty cache starts as a
# copy of it (src/runtime/docker-runtime.ts, prepareCache), so a never-seen plugin compiles
# only itself and its dependencies, and no tenant writes into what another reads.
#
#   PLUGFORGE_STD_CACHE=/usr/local/lib/plugforge/std-cache/<target> sh precompile-std.sh
set -eu
: "${PLUGFORGE_STD_CACHE:?the image sets PLUGFORGE_STD_CACHE}"
work=$(mktemp -d)
cd "$work"
printf 'module plugforge.local/std\n\ngo 1.21\n' > go.mod
# One plugin that imports every importable package of the standard library (not internal,
# not vendored, not a command), so one build compiles them all.
{
  echo 'package main'
  echo 'import ('
  go list -e -f '{{if and (not .Error) (ne .Name "main")}}{{.ImportPath}}{{end}}' std | grep -v -e internal -e '^vendor/' | sed 's/.*/\t_ "&"/'
  echo ')'
  echo 'func main() {}'
} > main.go
export GOCACHE="$PLUGFORGE_STD_CACHE" GOFLAGS= GOPROXY=off HOME="$work"
go build -buildvcs=false -buildmode=plugin -o std.so .
go build -buildvcs=false -buildmode=plugin -trimpath -o std.so .
cd /
rm -rf "$work"
chmod -R a+rX "$PLUGFORGE_STD_CACHE"
echo "plugforge: standard library precompiled for $(go env GOOS)/$(go env GOARCH) in plugin mode: $(du -sh "$PLUGFORGE_STD_CACHE" | cut -f1) in $PLUGFORGE_STD_CACHE"
