# The dependency step, in the plugin's module (the working directory), no arguments: first
# what the module cache already holds (lookups off), then the download itself.
# Prints two sections, each after its mark line (DEPS_MARK in plan.ts, kept equal by
# test/plan.test.ts): {"plugforge":"cached"} and {"plugforge":"download"}, each a stream of
# go mod download -json objects. Exits as the download does.

echo '{"plugforge":"cached"}'; GOPROXY=off go mod download -json 2>/dev/null; echo '{"plugforge":"download"}'; exec go mod download -json
