# Redis for docker-compose.yml: Debian's redis-server on the locally made debian:bookworm,
# since no registry is needed (or reachable) to run plugforge.
#
#   docker build -f docker/redis.Dockerfile -t plugforge/redis:local docker
FROM debian:bookworm

RUN set -eu; \
    export DEBIAN_FRONTEND=noninteractive; \
    apt-get update || { echo "plugforge: apt-get update failed: is the Debian mirror reachable from containers?" >&2; exit 1; }; \
    apt-get install -y --no-install-recommends redis-server || { echo "plugforge: apt: installing redis-server failed" >&2; exit 1; }; \
    rm -rf /var/lib/apt/lists/*; \
    mkdir -p /data; \
    chown redis:redis /data

# The package's redis user; /data (a named volume in compose) takes its owner from here.
USER redis
WORKDIR /data
EXPOSE 6379
# Reached only on the compose network (the port is not published), hence no password and
# protected mode off. AOF on and noeviction, as plugforge's queue needs.
CMD ["redis-server", "--bind", "0.0.0.0", "--protected-mode", "no", "--dir", "/data", "--appendonly", "yes", "--maxmemory-policy", "noeviction"]
