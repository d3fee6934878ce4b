#!/bin/sh
# Starts the test S3 server (images/radosgw/Dockerfile): the SQLite databases made at build
# time, with the user (make-user.sh), copied into the data directory when they are not
# there (a tmpfs mounted over it starts empty); then radosgw in the foreground.
set -eu
mkdir -p /var/lib/ceph/radosgw /var/run/ceph
[ -f /var/lib/ceph/radosgw/dbstore-default_ns.db ] || cp -a /usr/local/share/plugforge-rgw/. /var/lib/ceph/radosgw/
exec radosgw -f -n client.rgw --no-mon-config
