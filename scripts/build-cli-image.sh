#!/usr/bin/env bash
# Builds the client's image (images/cli/Dockerfile): the client package compiled, packed and
# installed into images/cli/stage/ with npm here, then copied into an image with Debian's
# Node.js. Tags plugforge/cli:<version> (or the tag given).
#
#   scripts/build-cli-image.sh [TAG]
set -eu
cd "$(dirname "$0")/.."
version=$(node -p 'require("./packages/cli/package.json").version')
tag=${1:-plugforge/cli:$version}
stage=images/cli/stage
rm -rf "$stage" images/cli/*.tgz
npm run --silent build:cli
tarball=$(npm pack ./packages/cli --pack-destination images/cli --silent)
npm install -g --prefix "$stage" --prefer-offline --no-audit --no-fund "images/cli/$tarball" >/dev/null
rm -f "images/cli/$tarball"
docker build -q -t "$tag" --label "org.plugforge.cli.version=$version" images/cli >/dev/null
rm -rf "$stage"
echo "$tag"
