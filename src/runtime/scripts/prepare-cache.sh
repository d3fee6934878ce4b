# Hands the cache volume at /cache (the working directory) to the build user: $1 (uid:gid).
# $2 "seed" (a build cache) also seeds it: the first preparation of the volume (mkdir of
# the mark .plugforge-seed is atomic: one wins, on any number of workers) copies the image's
# precompiled standard library ($PLUGFORGE_STD_CACHE, see images/linux-amd64/precompile-std.sh)
# into it; the others wait for the copy to be done. Images without a seed (older ones,
# gotify/build) leave the cache as it is. $2 "plain" (a module cache): the chown alone.
# Prints nothing; exits non-zero when the copy or a chown fails. Run as root.

set -eu
if [ "$2" = seed ] && [ -d "${PLUGFORGE_STD_CACHE:-/nonexistent}" ]; then
  if mkdir .plugforge-seed 2>/dev/null; then cp -R "$PLUGFORGE_STD_CACHE/." . && chown -R "$1" . && touch .plugforge-seed/done;
  else i=0; while [ ! -e .plugforge-seed/done ] && [ $i -lt 100 ]; do sleep 0.5; i=$((i + 1)); done; fi
fi
chown "$1" .
