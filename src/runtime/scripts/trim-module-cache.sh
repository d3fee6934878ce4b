# Empties a module cache (the working directory) that holds more than $1 KiB. Go keeps no
# use times in it (a build reads it read-only), and a module half removed is a broken one,
# so it goes whole; the tenant's next download fetches what it needs again. Go makes the
# extracted modules read-only: they are made writable first.
# Prints "emptied at <KiB> KiB" when it emptied the cache, nothing otherwise.

used=$(du -sk . | cut -f1)
[ "$used" -le "$1" ] && exit 0
chmod -R u+w . && find . -mindepth 1 -delete
echo "emptied at $used KiB"
