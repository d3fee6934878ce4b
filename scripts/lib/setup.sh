# shellcheck shell=bash
# The machine set-up shared by scripts/serve and scripts/test. Source it from the
# repository root (both scripts cd there first):
#
#   . scripts/lib/setup.sh
#   setup_node_deps; setup_docker; setup_redis; setup_images
#   setup_chromium   (scripts/test only: the web page's browser tests)
#   setup_cosign     (scripts/test only: cosign checks the provenance and signatures)
#   setup_gpg        (scripts/test only: GnuPG checks the OpenPGP signatures of bundles)
#   setup_s3_server  (scripts/test only: the S3 server the S3 blob store is tested on)
#   setup_compose    (scripts/test only: docker-compose, which the fleet test starts the fleet with)
#
# Every setup_* function is idempotent: it looks first and acts only on what is missing,
# prints one "==> " line of what it found or does, and stops the script, naming the step
# to take by hand, when it cannot go on. Debian packages are installed with apt-get,
# which needs root; everything else runs as the calling user.
#
# Logs and local state go to PLUGFORGE_STATE_DIR (default .data, next to plugforge's
# own data): dockerd.log, redis.log, redis.pid, redis/ (the AOF), apt.log, npm-ci.log.

PF_STATE_DIR=${PLUGFORGE_STATE_DIR:-.data}

say() {
  printf '==> %s\n' "$*"
}

# fail MESSAGE [LINE…]: the message, then the manual steps indented under it.
fail() {
  printf 'plugforge set-up: %s\n' "$1" >&2
  shift
  for line in "$@"; do printf '    %s\n' "$line" >&2; done
  exit 1
}

# The state directory as an absolute path (daemons chdir, so relative paths would move).
state_dir() {
  mkdir -p "$PF_STATE_DIR"
  (cd "$PF_STATE_DIR" && pwd)
}

# need_root_for WHAT COMMAND: stops with the exact command to run as root when we are not.
need_root_for() {
  [ "$(id -u)" = 0 ] && return 0
  fail "$1 needs root, and this runs as $(id -un)." \
    "Run as root:  $2" \
    "then run this script again."
}

# apt_install WHAT PACKAGE…: installs Debian packages. The package lists are refreshed only
# when the install fails without them (a fresh machine has none; old ones point at
# .deb files the mirror no longer has), as images/base/make-debian-base.sh does.
apt_install() {
  what=$1
  shift
  command -v apt-get >/dev/null 2>&1 ||
    fail "$what: $* is not installed, and there is no apt-get to install it with." \
      "Install $* with this system's package manager, then run this script again."
  need_root_for "Installing $*" "apt-get update && apt-get install -y $*"
  log="$(state_dir)/apt.log"
  say "$what: installing Debian's $* with apt-get (log: $log)"
  export DEBIAN_FRONTEND=noninteractive
  if apt-get install -y "$@" >>"$log" 2>&1; then return 0; fi
  # apt-get update exits 0 even when a mirror cannot be reached (it only warns), so
  # the install after it is what tells; its failure shows the warnings too.
  apt-get update >>"$log" 2>&1 || true
  if ! apt-get install -y "$@" >>"$log" 2>&1; then
    grep -E '^(W|E|Err):' "$log" | tail -n 8 >&2
    fail "$what: apt-get could not install $* (apt's messages above; full log: $log)." \
      "Is the Debian mirror reachable (apt sources under /etc/apt/)? Then, as root:  apt-get update && apt-get install -y $*"
  fi
}

# --- Node dependencies and the compiled TypeScript ---------------------------------------

# npm writes node_modules/.package-lock.json at the end of every successful install, so
# node_modules is current when that file is not older than package-lock.json. dist/ gets
# a stamp of when its build started; any source newer than it means a rebuild.
# npm 11 warns that the install scripts of cpu-features and ssh2 (optional native parts
# of dockerode's ssh transport) await approval: plugforge does not use them; leave them.
setup_node_deps() {
  if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
    say "Node dependencies: npm ci (node_modules is missing or older than package-lock.json)"
    npm_ci
  else
    say "Node dependencies: node_modules matches package-lock.json"
  fi
  setup_dist
}

# setup_dist: dist/ built when missing or older than its sources (the CLI's tests run it,
# so test/support/compiled-dist.ts calls this too). One build at a time: a second caller
# waits on dist/.build-lock, then finds dist/ current.
setup_dist() {
  mkdir -p dist
  exec 9>dist/.build-lock
  if command -v flock >/dev/null 2>&1; then flock 9; fi
  stamp=dist/.build-stamp
  if [ ! -f "$stamp" ] || [ -n "$(find src web tsconfig.json tsconfig.build.json tsconfig.web.json package-lock.json -newer "$stamp" -print -quit)" ]; then
    say "TypeScript: npm run build into dist/ (missing or older than src/)"
    # Stamped with the start time: a file saved during the build makes the next run build again.
    started=$(mktemp)
    npm run --silent build || { rm -f "$started"; fail "npm run build failed (tsc output above)."; }
    mv "$started" "$stamp"
  else
    say "TypeScript: dist/ is up to date with src/"
  fi
  exec 9>&-
}

npm_ci() {
  log="$(state_dir)/npm-ci.log"
  if npm ci --no-audit --no-fund >"$log" 2>&1; then
    grep -v '^npm warn Unknown user config' "$log" || true
    return 0
  fi
  grep -E '^npm (error|ERR)' "$log" | head -n 15 >&2
  fail "npm ci failed (its errors above; full output: $log)." \
    "Is the npm registry reachable ($(npm config get registry 2>/dev/null))? Is package-lock.json in sync with package.json? Then run: npm ci"
}

# --- Docker engine -----------------------------------------------------------------------

# docker, aimed where plugforge will aim (PLUGFORGE_DOCKER_HOST, else DOCKER_HOST or the socket).
pf_docker() {
  if [ -n "${PLUGFORGE_DOCKER_HOST:-}" ]; then
    DOCKER_HOST=$PLUGFORGE_DOCKER_HOST docker "$@"
  else
    docker "$@"
  fi
}

docker_answers() {
  command -v docker >/dev/null 2>&1 && pf_docker info >/dev/null 2>&1
}

setup_docker() {
  if docker_answers; then
    say "Docker engine: running (server $(pf_docker version -f '{{.Server.Version}}' 2>/dev/null))"
    return 0
  fi

  # An engine configured elsewhere is not ours to start.
  remote=${PLUGFORGE_DOCKER_HOST:-${DOCKER_HOST:-}}
  if [ -n "$remote" ]; then
    fail "Docker engine: nothing answers at $remote (PLUGFORGE_DOCKER_HOST / DOCKER_HOST)." \
      "Start that engine, or unset the variable to use (and start) a local dockerd."
  fi

  # A dockerd that runs but refuses us: a permission problem, not a missing engine.
  if [ "$(id -u)" != 0 ] && [ -S /var/run/docker.sock ] && [ ! -w /var/run/docker.sock ]; then
    fail "Docker engine: dockerd runs, but $(id -un) may not use /var/run/docker.sock." \
      "Run as root, or join the socket's group:  usermod -aG $(stat -c %G /var/run/docker.sock) $(id -un)  (then log in again)."
  fi

  # Debian's docker.io brings dockerd, containerd, runc and a docker client.
  if ! command -v dockerd >/dev/null 2>&1 || ! command -v docker >/dev/null 2>&1; then
    apt_install "Docker engine" docker.io
  fi

  log="$(state_dir)/dockerd.log"
  pid=
  # dockerd writes its pid file first thing: one that names a live process is starting up.
  if [ -f /var/run/docker.pid ] && kill -0 "$(cat /var/run/docker.pid)" 2>/dev/null; then
    pid=$(cat /var/run/docker.pid)
    say "Docker engine: dockerd (pid $pid) is running but not answering yet; waiting up to 60 s"
  else
    need_root_for "Starting dockerd" "nohup dockerd >$log 2>&1 &"
    say "Docker engine: starting dockerd (log: $log)"
    # No systemd here: nohup + setsid put dockerd in its own session, so it outlives this
    # script and a Ctrl-C on the service does not reach it.
    nohup setsid dockerd >>"$log" 2>&1 </dev/null &
    pid=$!
  fi

  # Wait for the API, not the process: dockerd answers only once storage and networks are up.
  waited=0
  while ! docker_answers; do
    if ! kill -0 "$pid" 2>/dev/null; then
      tail -n 20 "$log" >&2
      fail "Docker engine: dockerd exited (last lines of $log above)." \
        "Fix what the log says, then start it by hand as root:  nohup dockerd >$log 2>&1 &"
    fi
    if [ "$waited" -ge 60 ]; then
      tail -n 20 "$log" >&2
      fail "Docker engine: dockerd (pid $pid) did not answer within 60 s (last lines of $log above)." \
        "Check the log, then see whether it comes up:  docker info"
    fi
    sleep 1
    waited=$((waited + 1))
  done
  say "Docker engine: dockerd answers after ${waited} s (server $(pf_docker version -f '{{.Server.Version}}' 2>/dev/null))"
}

# --- Redis ---------------------------------------------------------------------------------

# redis_answers URL HOST PORT: true when a Redis answers PING there. redis-cli speaks the
# URL (password, TLS); without it a PING over bash's /dev/tcp does, and NOAUTH also means
# a Redis is there (plugforge itself sends the password from the URL).
redis_answers() {
  if command -v redis-cli >/dev/null 2>&1; then
    tls=
    case $1 in rediss://*) tls=--tls ;; esac
    timeout 5 redis-cli $tls -u "$1" ping 2>/dev/null | grep -q PONG
  else
    # shellcheck disable=SC2016
    timeout 5 bash -c 'exec 3<>"/dev/tcp/$0/$1" && printf "PING\r\n" >&3 && IFS= read -r reply <&3 &&
      case $reply in +PONG*|-NOAUTH*) exit 0 ;; *) exit 1 ;; esac' "$2" "$3" 2>/dev/null
  fi
}

# setup_redis [URL]: the URL defaults to PLUGFORGE_REDIS_URL, as plugforge's own.
setup_redis() {
  url=${1:-${PLUGFORGE_REDIS_URL:-redis://127.0.0.1:6379}}
  # redis[s]://[user:password@]host[:port][/db]
  hostport=${url#*://}
  hostport=${hostport%%/*}
  hostport=${hostport##*@}
  case $hostport in
    *:*) host=${hostport%:*} port=${hostport##*:} ;;
    *) host=$hostport port=6379 ;;
  esac
  host=${host:-127.0.0.1}
  # The URL as messages show it: any password left out.
  shown=$url
  case $url in *@*) shown="${url%%://*}://***@${url#*@}" ;; esac

  if redis_answers "$url" "$host" "$port"; then
    say "Redis: answering at $host:$port"
    return 0
  fi

  # Only a Redis on this machine is ours to start.
  case $host in
    127.0.0.1 | localhost) ;;
    *) fail "Redis: nothing answers at $host:$port ($shown), and it is not on this machine." \
      "Start that Redis, or unset PLUGFORGE_REDIS_URL to use (and start) a local one on 127.0.0.1:6379." ;;
  esac

  if ! command -v redis-server >/dev/null 2>&1; then
    apt_install "Redis" redis-server
    # Where the package may start services, Debian's own Redis may be up now on 6379.
    if redis_answers "$url" "$host" "$port"; then
      say "Redis: the redis-server package started Debian's service at $host:$port (config /etc/redis/redis.conf)"
      return 0
    fi
  fi

  sd=$(state_dir)
  mkdir -p "$sd/redis"
  say "Redis: starting redis-server on $host:$port (AOF in $sd/redis, log: $sd/redis.log)"
  # The design's settings: AOF on so queued builds survive a restart, noeviction so Redis
  # refuses writes rather than dropping queue entries. Bound to loopback only: no password.
  redis-server --daemonize yes --port "$port" --bind 127.0.0.1 -::1 \
    --appendonly yes --maxmemory-policy noeviction \
    --dir "$sd/redis" --logfile "$sd/redis.log" --pidfile "$sd/redis.pid" ||
    fail "Redis: redis-server did not start (see $sd/redis.log)."

  waited=0
  until redis_answers "$url" "$host" "$port"; do
    if [ "$waited" -ge 10 ]; then
      tail -n 20 "$sd/redis.log" >&2
      fail "Redis: redis-server did not answer at $host:$port within 10 s (last lines of $sd/redis.log above)." \
        "Is port $port taken by something else?  ss -ltnp | grep :$port"
    fi
    sleep 1
    waited=$((waited + 1))
  done
  say "Redis: answering at $host:$port (stop it with: redis-cli -p $port shutdown)"
}

# --- Builder images ------------------------------------------------------------------------

# setup_images [GO]: the four builder images of one Go release. plugforge does the work
# (and makes the debian:bookworm base with debootstrap when there is none, as root); it is
# a no-op when the images exist, and reports its own progress.
setup_images() {
  go=${1:-${PLUGFORGE_DEFAULT_GO:-1.22}}
  say "Builder images: Go $go for linux-amd64, linux-arm-7, linux-arm64, linux-386"
  node bin/plugforge.js images build --go "$go" ||
    fail "Builder images: building the Go $go images failed (output above)." \
      "Retry by hand:  node bin/plugforge.js images build --go $go"
}

# --- Test fixtures -------------------------------------------------------------------------

# setup_test_sources: real third-party Go source for the tests, from Debian's packages
# (under /usr/share/gocode/src): test/modules.test.ts makes a module proxy of go-kit/log
# and logfmt; test/gin-host.test.ts vendors gin 1.8.1 and its dependencies.
setup_test_sources() {
  src=/usr/share/gocode/src
  if [ -f $src/github.com/go-kit/log/go.mod ] && [ -f $src/github.com/go-logfmt/logfmt/go.mod ] && [ -f $src/github.com/gin-gonic/gin/go.mod ]; then
    say "Test Go sources: go-kit/log, go-logfmt/logfmt and gin are installed"
    return 0
  fi
  apt_install "Test Go sources" golang-github-go-kit-log-dev golang-github-go-logfmt-logfmt-dev golang-github-gin-gonic-gin-dev
}

# --- Chromium, for the web page's tests ----------------------------------------------------

# setup_chromium: Debian's chromium, the browser test/web-page.test.ts drives headless
# through puppeteer-core (an npm package that downloads no browser of its own). With
# PLUGFORGE_CHROMIUM set, that binary is used instead and nothing is installed.
setup_chromium() {
  bin=${PLUGFORGE_CHROMIUM:-/usr/bin/chromium}
  if [ -x "$bin" ]; then
    say "Chromium: $("$bin" --version 2>/dev/null || echo "$bin") at $bin"
    return 0
  fi
  if [ -n "${PLUGFORGE_CHROMIUM:-}" ]; then
    fail "Chromium: PLUGFORGE_CHROMIUM=$bin is not an executable file." \
      "Point it at a Chromium or Chrome binary, or unset it to use (and install) Debian's chromium."
  fi
  apt_install "Chromium" chromium
  say "Chromium: $(/usr/bin/chromium --version 2>/dev/null) at /usr/bin/chromium"
}

# --- docker-compose (scripts/test only: test/fleet.test.ts starts docker-compose.fleet.yml)

# setup_compose: Debian's docker-compose (1.29), which reads docker-compose.yml and
# docker-compose.fleet.yml (file format 2.4, written for it).
setup_compose() {
  if ! command -v docker-compose >/dev/null 2>&1; then
    apt_install "docker-compose" docker-compose
  fi
  say "docker-compose: $(docker-compose version --short 2>/dev/null || echo '?') at $(command -v docker-compose)"
}

# --- GnuPG (scripts/test only: test/bundle.test.ts and test/openpgp-signature.test.ts check
# plugforge's OpenPGP signatures with it, an implementation plugforge did not write)

setup_gpg() {
  if command -v gpg >/dev/null 2>&1; then
    say "gpg: $(gpg --version | head -n 1) at $(command -v gpg)"
    return 0
  fi
  need_root_for "Installing GnuPG" "apt-get install gnupg"
  apt_install "gpg" gnupg
  say "gpg: $(gpg --version | head -n 1) at $(command -v gpg)"
}

# --- cosign (scripts/test only: test/provenance.test.ts checks plugforge's signatures with it)

# setup_cosign: Sigstore's cosign, a verifier plugforge did not write. Debian packages it
# from trixie on (2.5); bookworm has none. On bookworm it comes from trixie alone: an apt
# source for trixie pinned at priority 100 (below bookworm's 500, so no other package
# moves to trixie on an upgrade) and `apt-get install cosign/trixie`, which takes cosign
# from trixie and its dependencies (it has none beyond libc) from the release installed.
# PLUGFORGE_COSIGN names another binary, and then nothing is installed.
setup_cosign() {
  bin=${PLUGFORGE_COSIGN:-cosign}
  if command -v "$bin" >/dev/null 2>&1; then
    say "cosign: $(cosign_version "$bin") at $(command -v "$bin")"
    return 0
  fi
  if [ -n "${PLUGFORGE_COSIGN:-}" ]; then
    fail "cosign: PLUGFORGE_COSIGN=$bin is not an executable." \
      "Point it at a cosign 2.x binary, or unset it to use (and install) Debian's cosign."
  fi
  if grep -qs '^VERSION_CODENAME=bookworm' /etc/os-release; then
    need_root_for "Installing cosign from Debian trixie" "apt-get install cosign/trixie (after adding trixie as an apt source)"
    if [ ! -f /etc/apt/sources.list.d/plugforge-trixie.sources ]; then
      say "cosign: adding Debian trixie as an apt source pinned at priority 100, for cosign alone"
      printf '%s\n' 'Types: deb' 'URIs: http://deb.debian.org/debian' 'Suites: trixie' 'Components: main' \
        'Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg' >/etc/apt/sources.list.d/plugforge-trixie.sources
      printf '%s\n' 'Package: *' 'Pin: release n=trixie' 'Pin-Priority: 100' >/etc/apt/preferences.d/plugforge-trixie
      apt-get update >>"$(state_dir)/apt.log" 2>&1 || true
    fi
    apt_install "cosign" cosign/trixie
  else
    apt_install "cosign" cosign
  fi
  say "cosign: $(cosign_version cosign) at $(command -v cosign)"
}

# Debian's cosign says "devel" for its own version; the package's version says more.
cosign_version() {
  dpkg-query -W -f '${Version}' cosign 2>/dev/null || "$1" version 2>/dev/null | awk '/^GitVersion:/ { print $2 }'
}

# --- S3 server (scripts/test only: test/s3-blob-store.test.ts runs the S3 blob store on it) --

# setup_s3_server: the image of a real S3 server, Ceph's radosgw 18.2 from Debian trixie on
# its SQLite backend (images/radosgw/), which the tests start and remove themselves. Built
# when missing or when images/radosgw/ changed since (a label on the image holds the
# sha256 of its files): about 2-3 minutes (trixie's packages from the Debian mirror, on the
# debian:bookworm base, which images/base/make-debian-base.sh makes first when it is
# missing, as root). A no-op otherwise. Log: <state dir>/radosgw-image.log.
# PLUGFORGE_TEST_S3_IMAGE names the image (default plugforge/radosgw:reef).
setup_s3_server() {
  image=${PLUGFORGE_TEST_S3_IMAGE:-plugforge/radosgw:reef}
  recipe=$(cat images/radosgw/Dockerfile images/radosgw/*.conf images/radosgw/*.sh | sha256sum | cut -c1-16)
  have=$(pf_docker image inspect -f '{{index .Config.Labels "dev.plugforge.s3-server-recipe"}}' "$image" 2>/dev/null || true)
  if [ "$have" = "$recipe" ]; then
    say "S3 server: $image (Ceph radosgw, images/radosgw/) is built"
    return 0
  fi
  if ! pf_docker image inspect debian:bookworm >/dev/null 2>&1; then
    say "S3 server: making the debian:bookworm base first (images/base/make-debian-base.sh)"
    need_root_for "Making debian:bookworm" "images/base/make-debian-base.sh bookworm"
    images/base/make-debian-base.sh bookworm || fail "S3 server: the debian:bookworm base could not be made (output above)."
  fi
  log="$(state_dir)/radosgw-image.log"
  say "S3 server: building $image (Ceph radosgw 18.2 from Debian trixie; about 2-3 minutes; log: $log)"
  if ! pf_docker build --label "dev.plugforge.s3-server-recipe=$recipe" -t "$image" images/radosgw >"$log" 2>&1; then
    tail -n 20 "$log" >&2
    fail "S3 server: building $image failed (last lines of $log above)." \
      "Is the Debian mirror reachable from containers? Retry by hand:  docker build -t $image images/radosgw"
  fi
  say "S3 server: $image built ($(pf_docker image inspect -f '{{.Size}}' "$image" | awk '{printf "%d MB", $1/1000/1000}'))"
}
