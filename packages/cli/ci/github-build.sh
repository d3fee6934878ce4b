#!/usr/bin/env bash
# The build step of action.yml (docs/ci.md): `plugforge build` with the action's inputs
# (INPUT_*), the Markdown summary into $GITHUB_STEP_SUMMARY, each compiler error as an
# annotation at its line, and the outputs build-id, artifacts and status. Exits as the CLI
# does: 0 built and verified, 1 a target failed, 2 a usage error, 3 the server refused.
set -u
out="${INPUT_OUT:-plugforge-dist}"
doc="${RUNNER_TEMP:-/tmp}/plugforge-build-$$.json"
rm -f "$doc"
args=(build "${INPUT_PATH:-.}" --out "$out" --server "$INPUT_URL" --annotations github --document "$doc")
[ -n "${GITHUB_STEP_SUMMARY:-}" ] && args+=(--summary "$GITHUB_STEP_SUMMARY")
[ -n "${INPUT_TARGETS:-}" ] && args+=(--targets "$INPUT_TARGETS")
[ -n "${INPUT_GO:-}" ] && args+=(--go "$INPUT_GO")
[ -n "${INPUT_HOST:-}" ] && args+=(--host "$INPUT_HOST")
[ -n "${INPUT_HOSTS:-}" ] && args+=(--hosts "$INPUT_HOSTS")
[ -n "${INPUT_VERIFY:-}" ] && args+=(--verify "$INPUT_VERIFY")
if [ -n "${INPUT_HOST_BINARY:-}" ]; then
  while IFS= read -r file; do
    [ -n "$file" ] && args+=(--host-binary "$file")
  done < <(printf '%s\n' "$INPUT_HOST_BINARY" | tr ',' '\n')
fi

status=0
PLUGFORGE_TOKEN="${INPUT_TOKEN:-}" plugforge "${args[@]}" || status=$?

if [ -f "$doc" ]; then
  node -e '
    const doc = JSON.parse(require("node:fs").readFileSync(process.argv[1], "utf8"));
    process.stdout.write(`build-id=${doc.id}\nstatus=${doc.status}\n`);
  ' "$doc" >> "$GITHUB_OUTPUT"
else
  echo "status=error" >> "$GITHUB_OUTPUT"
fi
echo "artifacts=$out" >> "$GITHUB_OUTPUT"
exit "$status"
