# The dependency step when a host is matched, no arguments ($PLUGFORGE_LIST_FLAGS: the
# -tags flag of the host, or empty). The download may raise versions alignment lowered
# (minimal version selection; go mod download writes the result into the container's
# go.mod), so the modules the plugin's packages really link are listed after it (offline),
# with the module graph to say who asked for each version. -mod=mod: an aligned go.mod need
# not be tidy.
# Prints, each after its mark line (DEPS_MARK in plan.ts, kept equal by test/plan.test.ts):
# {"plugforge":"cached"} and {"plugforge":"download"} (go mod download -json objects),
# {"plugforge":"linked"} ("<module> <version>" lines; {"plugforge":"list-failed"} after
# them when go list failed), {"plugforge":"graph"} (go mod graph).

echo '{"plugforge":"cached"}'; GOPROXY=off go mod download -json 2>/dev/null; echo '{"plugforge":"download"}'; go mod download -json || exit $?; echo '{"plugforge":"linked"}'; GOPROXY=off go list -mod=mod $PLUGFORGE_LIST_FLAGS -deps -f '{{with .Module}}{{if not .Main}}{{.Path}} {{.Version}}{{end}}{{end}}' . || echo '{"plugforge":"list-failed"}'; echo '{"plugforge":"graph"}'; GOPROXY=off exec go mod graph
