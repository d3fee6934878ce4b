#!/bin/sh
# Runs `plugforge "$@"` as the unprivileged user plugforge.
#
# The image runs as plugforge already. The worker alone is started as root
# (docker-compose.yml), only so that this script can see which group owns the Docker socket
# on this host (the gid differs from host to host) and hand plugforge that one group;
# then root is dropped for good, with no capabilities and no way to regain privileges.
set -eu

if [ "$(id -u)" = 0 ]; then
  socket=/var/run/docker.sock
  case ${PLUGFORGE_DOCKER_HOST:-} in unix://*) socket=${PLUGFORGE_DOCKER_HOST#unix://} ;; esac
  if [ -S "$socket" ]; then
    groups="--groups=$(stat -c %g "$socket")"
  else
    groups=--clear-groups
  fi
  exec setpriv --reuid=plugforge --regid=plugforge "$groups" \
    --inh-caps=-all --bounding-set=-all --no-new-privs \
    node /app/bin/plugforge.js "$@"
fi
exec node /app/bin/plugforge.js "$@"
