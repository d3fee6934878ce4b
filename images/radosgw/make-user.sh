#!/bin/sh
# Makes the S3 user of the test server, at image build time (images/radosgw/Dockerfile):
#
#   make-user ACCESS_KEY SECRET_KEY
#
# into the SQLite databases of the data directory (ceph.conf), which the Dockerfile then
# keeps a copy of for start-radosgw (a tmpfs over the data directory starts empty). Done here
# and not at each start because radosgw-admin 18.2 on dbstore now and then never exits
# (seen once in about 30 starts): each try is bounded, and the user is looked up after it.
set -u
access=$1 secret=$2
mkdir -p /var/lib/ceph/radosgw /var/run/ceph
admin() { timeout 60 radosgw-admin --no-mon-config -n client.rgw "$@"; }
for try in 1 2 3; do
  admin user create --uid=plugforge --display-name=plugforge --access-key="$access" --secret-key="$secret" >/dev/null 2>>/tmp/make-user.log || true
  if admin user info --uid=plugforge 2>>/tmp/make-user.log | grep -q "\"access_key\": \"$access\""; then
    echo "make-user: user plugforge made (try $try)"
    exit 0
  fi
done
tail -n 30 /tmp/make-user.log >&2
echo "make-user: radosgw-admin could not make the user plugforge (its log above)" >&2
exit 1
