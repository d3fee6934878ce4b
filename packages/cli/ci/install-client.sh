#!/usr/bin/env bash
# The first step of action.yml: the plugforge client from the action's own checkout,
# compiled once per checkout (npm ci and npm run build:cli, about a minute), then on PATH
# as `plugforge` (a link to bin/plugforge.js, as npm install would make).
set -eu
root="$GITHUB_ACTION_PATH"
if [ ! -f "$root/packages/cli/dist/client/client-main.js" ]; then
  npm ci --prefix "$root" --no-audit --no-fund
  npm run --prefix "$root" build:cli
fi
bin="${RUNNER_TEMP:-/tmp}/plugforge-client/bin"
mkdir -p "$bin"
ln -sf "$root/packages/cli/bin/plugforge.js" "$bin/plugforge"
echo "$bin" >> "$GITHUB_PATH"
