#!/bin/sh
# Starts the test S3 server (images/radosgw/Dockerfile): makes the S3 user with the keys
# of RGW_ACCESS_KEY and RGW_SECRET_KEY in the SQLite store, then runs radosgw in the
# foreground as client.rgw.
set -eu
mkdir -p /var/lib/ceph/radosgw /var/run/ceph
radosgw-admin --no-mon-config -n client.rgw user create --uid=plugforge --display-name=plugforge \
  --access-key="$RGW_ACCESS_KEY" --secret-key="$RGW_SECRET_KEY" >/dev/null
echo "start-radosgw: user plugforge made; starting radosgw on port 7480" >&2
exec radosgw -f -n client.rgw --no-mon-config
