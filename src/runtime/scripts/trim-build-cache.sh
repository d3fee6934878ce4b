# Trims a Go build cache (the working directory) to its bound: when it holds more than $1
# KiB, its least recently used files (Go refreshes an entry's mtime when a build uses it) go
# until $2 KiB remain; the seed's mark (.plugforge-seed, see prepare-cache.sh) is kept.
# Cache entries are named by hashes: no blanks in the paths.
# Prints "trimmed from <KiB> KiB to <KiB> KiB" when it trimmed, nothing otherwise.

used=$(du -sk . | cut -f1)
[ "$used" -le "$1" ] && exit 0
find . -path ./.plugforge-seed -prune -o -type f -printf '%T@ %k %p\n' | sort -n |
  awk -v over=$((used - $2)) '{ if (freed >= over) exit; freed += $2; print $3 }' | xargs -r rm -f --
echo "trimmed from $used KiB to $(du -sk . | cut -f1) KiB"
