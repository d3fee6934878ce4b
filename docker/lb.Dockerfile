# The fleet's load balancer (docker-compose.fleet.yml): nginx from Debian bookworm in front
# of the API replicas, with docker/lb-nginx.conf. FROM the local debian:bookworm, as the
# other images here (images/base/make-debian-base.sh makes it where no registry answers).
FROM debian:bookworm
RUN set -eu; \
    export DEBIAN_FRONTEND=noninteractive; \
    apt-get update || { echo "plugforge: apt-get update failed: is the Debian mirror reachable from containers?" >&2; exit 1; }; \
    apt-get install -y --no-install-recommends nginx; \
    rm -rf /var/lib/apt/lists/* /etc/nginx/sites-enabled/*; \
    ln -sf /dev/stdout /var/log/nginx/access.log; \
    ln -sf /dev/stderr /var/log/nginx/error.log
COPY lb-nginx.conf /etc/nginx/conf.d/plugforge.conf
EXPOSE 8080
CMD ["nginx", "-g", "daemon off;"]
