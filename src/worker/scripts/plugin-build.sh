# The plugin build's script: builds the plugin ("$@", the go build command), then the
# loading probe (.plugforge-probe/main.go, written by source-tar.ts) as a package of the
# plugin's own module in /work/src, so it sees the same go.mod, go.sum and vendor/, into
# /work/tmp/probe (PROBE_BINARY in plan.ts). $PLUGFORGE_PROBE_FLAGS: the probe's go build
# flags; $PLUGFORGE_PROBE_PREBUILT (optional): the image's prebuilt probe, copied instead.
# When a host is matched, the probe blank-imports every package the plugin links from a
# module the host links too (listed in .plugforge-probe/host-modules.txt): plugin.Open then
# compares those packages' hashes exactly as the host would. Internal packages cannot be
# imported (their importers are); main packages neither. A probe built is kept in the build
# cache (/cache/plugforge-probes, keyed by its flags, go.mod and package) and copied back
# next time: go links again only when it is out of date.
# Prints go's output, "probe: imports <package> (shared with the host)" lines, and "probe:
# prebuilt in the image" or "probe: up to date, kept from an earlier build" (PROBE_KEPT_MARK).
# The paths and marks are plan.ts's constants, kept equal by test/plan.test.ts.

"$@" || exit $?
cd /work/src
if [ -s .plugforge-probe/host-modules.txt ]; then { echo 'package main'; echo 'import ('; go list $PLUGFORGE_PROBE_FLAGS -deps -f '{{if and .Module (not .Module.Main) (ne .Name "main")}}{{.Module.Path}} {{.ImportPath}}{{end}}' . | awk 'FILENAME == ARGV[1] { host[$1] = 1; next } ($1 in host) && $2 !~ /(^|\/)internal(\/|$)/ { printf "\t_ \"%s\"\n", $2 }' .plugforge-probe/host-modules.txt -; echo ')'; } > .plugforge-probe/imports.go || exit $?; sed -n 's/^\t_ "\(.*\)"$/probe: imports \1 (shared with the host)/p' .plugforge-probe/imports.go; fi
if [ -n "${PLUGFORGE_PROBE_PREBUILT:-}" ] && [ -x "$PLUGFORGE_PROBE_PREBUILT" ]; then echo 'probe: prebuilt in the image'; exec cp "$PLUGFORGE_PROBE_PREBUILT" /work/tmp/probe; fi
kept=/cache/plugforge-probes/$({ echo "$PLUGFORGE_PROBE_FLAGS"; cat go.mod .plugforge-probe/*.go 2>/dev/null; } | sha256sum | cut -c1-32)
if [ -f "$kept" ]; then cp "$kept" /work/tmp/probe || rm -f /work/tmp/probe; fi
go build $PLUGFORGE_PROBE_FLAGS -buildvcs=false -o /work/tmp/probe ./.plugforge-probe || exit $?
if [ -f "$kept" ] && cmp -s "$kept" /work/tmp/probe; then echo 'probe: up to date, kept from an earlier build'; touch "$kept" 2>/dev/null; exit 0; fi
{ mkdir -p /cache/plugforge-probes && cp /work/tmp/probe "$kept.$$" && mv -f "$kept.$$" "$kept"; } 2>/dev/null || rm -f "$kept.$$"
