# plugforge's service image: `plugforge api` and `plugforge worker` for docker-compose.yml.
#
# BUILD ON THE HOST FIRST:  npm ci && npm run build   (./scripts/serve and ./scripts/test do it)
# This image copies node_modules/ and dist/ from the build context (the repository root)
# and runs no npm itself: containers here cannot reach the npm registry (its TLS is
# intercepted with a CA only the host trusts). node_modules may hold the dev dependencies
# too (tolerated: about 130 MB); npm's unapproved native install scripts are not needed.
#
#   docker build -f docker/service.Dockerfile -t plugforge/service:local .
#
# FROM debian:bookworm, the base of the builder images (made locally by
# images/base/make-debian-base.sh where no registry answers). bookworm has Node 18 only;
# Node 20 comes from trixie's nodejs package, under an apt pin (docker/trixie-nodejs.pref)
# that lets only nodejs and the libraries it needs come from trixie. Those include trixie's
# libc6 and libstdc++6: a partial upgrade that stays inside this image, whose one program is
# node. The builder images, whose toolchain the plugins depend on, stay pure bookworm.
FROM debian:bookworm

COPY docker/trixie-nodejs.pref /etc/apt/preferences.d/trixie-nodejs.pref

# trixie from the same mirror as the base's bookworm (the official image has no
# sources.list line: deb.debian.org then).
RUN set -eu; \
    export DEBIAN_FRONTEND=noninteractive; \
    mirror=$(awk '$1 == "deb" { print $2; exit }' /etc/apt/sources.list 2>/dev/null || true); \
    echo "deb ${mirror:-http://deb.debian.org/debian} trixie main" > /etc/apt/sources.list.d/trixie.list; \
    apt-get update || { echo "plugforge: apt-get update failed: is the Debian mirror reachable from containers?" >&2; exit 1; }; \
    apt-get install -y --no-install-recommends nodejs || { echo "plugforge: apt: installing nodejs from trixie failed (see docker/trixie-nodejs.pref)" >&2; exit 1; }; \
    rm -rf /var/lib/apt/lists/*; \
    node --version

# An unprivileged user owns the data directory; the named volume mounted there takes its
# owner from the image when it is first used.
RUN set -eu; \
    groupadd --system --gid 10001 plugforge; \
    useradd --system --uid 10001 --gid plugforge --home-dir /var/lib/plugforge --shell /usr/sbin/nologin plugforge; \
    mkdir -p /var/lib/plugforge; \
    chown plugforge:plugforge /var/lib/plugforge

WORKDIR /app
COPY package.json ./
COPY bin ./bin
COPY node_modules ./node_modules
COPY dist ./dist
COPY docker/service-entrypoint.sh /usr/local/lib/plugforge/entrypoint.sh
# The fleet's one-shot set-up (docker-compose.fleet.yml), beside node_modules/ that it imports from.
COPY docker/fleet-init.mjs ./docker/fleet-init.mjs

ENV NODE_ENV=production \
    PLUGFORGE_HOST=0.0.0.0 \
    PLUGFORGE_PORT=8080 \
    PLUGFORGE_DATA_DIR=/var/lib/plugforge

USER plugforge
EXPOSE 8080
ENTRYPOINT ["sh", "/usr/local/lib/plugforge/entrypoint.sh"]
CMD ["api"]
