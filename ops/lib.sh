# Shared shell functions for ops scripts. Source it; do not run it.
# shellcheck shell=bash

SWEEP_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TANSU_VERSION=0.6.0
CARGO_DEB_VERSION=3.8.0
# Debian's ZooKeeper (the zookeeper package), and what its jar's manifest
# leaves out: the SLF4J binding and log4j it logs through (without them it
# logs nothing) and the Netty codec its TLS port needs.
ZOOKEEPER_JAR=/usr/share/java/zookeeper.jar
ZOOKEEPER_CLASSPATH="$ZOOKEEPER_JAR:/usr/share/java/slf4j-log4j12.jar:/usr/share/java/log4j-1.2.jar:/usr/share/java/netty-codec.jar:/usr/share/java/netty-resolver.jar"

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

# Installs what building and running sweep needs, when it is missing:
# Debian packages (etcd, ZooKeeper, protoc, a C toolchain and OpenSSL for
# librdkafka and SQLite) and
# the Tansu broker from crates.io.
install_deps() {
  local pkgs=()
  command -v etcd >/dev/null || pkgs+=(etcd-server)
  command -v etcdctl >/dev/null || pkgs+=(etcd-client)
  # ZooKeeper, the other coordination backend (start_zookeeper); the package
  # brings a JRE and runs no server of its own (that is zookeeperd).
  [ -f "$ZOOKEEPER_JAR" ] || pkgs+=(zookeeper)
  command -v protoc >/dev/null || pkgs+=(protobuf-compiler)
  command -v cc >/dev/null || pkgs+=(build-essential)
  command -v make >/dev/null || pkgs+=(make)
  command -v pkg-config >/dev/null || pkgs+=(pkg-config)
  command -v curl >/dev/null || pkgs+=(curl)
  dpkg -s zlib1g-dev >/dev/null 2>&1 || pkgs+=(zlib1g-dev)
  # ops/package: cargo-deb reads the packages' library dependencies with
  # dpkg-shlibdeps and strips with binutils (both come with dpkg-dev).
  command -v dpkg-shlibdeps >/dev/null || pkgs+=(dpkg-dev)
  # librdkafka links the system OpenSSL for Kafka TLS and SASL/SCRAM; the
  # end-to-end tests make their TLS certificates with the openssl command.
  dpkg -s libssl-dev >/dev/null 2>&1 || pkgs+=(libssl-dev)
  command -v openssl >/dev/null || pkgs+=(openssl)
  # promtool (from Debian's Prometheus) checks the agent's /metrics output.
  command -v promtool >/dev/null || pkgs+=(prometheus)
  # Independent sources the table tests compare against.
  command -v python3 >/dev/null || pkgs+=(python3)
  command -v mke2fs >/dev/null || pkgs+=(e2fsprogs)
  command -v sysctl >/dev/null || pkgs+=(procps)
  command -v blkid >/dev/null || pkgs+=(util-linux)
  command -v lsblk >/dev/null || pkgs+=(util-linux)
  command -v ssh-keygen >/dev/null || pkgs+=(openssh-client)
  command -v awk >/dev/null || pkgs+=(mawk)
  # The console's browser test drives Debian's Chromium through chromedriver.
  command -v chromium >/dev/null || pkgs+=(chromium)
  command -v chromedriver >/dev/null || pkgs+=(chromium-driver)
  if [ ${#pkgs[@]} -gt 0 ]; then
    log "installing Debian packages: ${pkgs[*]}"
    as_root apt-get update -qq
    # The etcd-server package would start a system etcd on the default ports;
    # sweep starts its own, so keep the package's service from starting.
    echo 'exit 101' | as_root tee /usr/sbin/policy-rc.d >/dev/null
    as_root chmod +x /usr/sbin/policy-rc.d
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${pkgs[@]}" >/dev/null
    as_root rm -f /usr/sbin/policy-rc.d
  fi
  if ! command -v cargo >/dev/null; then
    die "cargo not found: install the Rust toolchain (https://rustup.rs) first"
  fi
  if ! tansu --version 2>/dev/null | grep -q "$TANSU_VERSION"; then
    log "installing the Tansu broker $TANSU_VERSION from crates.io (about 11 minutes)"
    cargo install tansu --version "$TANSU_VERSION" --locked --features dynostore,libsql
  fi
  command -v tansu >/dev/null || die "tansu is installed but not on PATH: add ~/.cargo/bin to PATH"
  install_cargo_deb
}

# cargo-deb, which ops/package (and its end-to-end test) builds the .deb
# packages with, at the pinned version.
install_cargo_deb() {
  if ! cargo deb --version 2>/dev/null | grep -qx "cargo-deb $CARGO_DEB_VERSION"; then
    log "installing cargo-deb $CARGO_DEB_VERSION from crates.io (about 3 minutes)"
    cargo install cargo-deb --version "$CARGO_DEB_VERSION" --locked
  fi
}

# wait_port HOST PORT SECONDS
wait_port() {
  local host=$1 port=$2 secs=$3 i
  for ((i = 0; i < secs * 10; i++)); do
    if (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  return 1
}

# start_etcd DATA_DIR CLIENT_PORT PEER_PORT LOG
start_etcd() {
  local dir=$1 port=$2 peer=$3 logf=$4
  mkdir -p "$dir"
  etcd --name sweep --data-dir "$dir" \
    --listen-client-urls "http://127.0.0.1:$port" --advertise-client-urls "http://127.0.0.1:$port" \
    --listen-peer-urls "http://127.0.0.1:$peer" --initial-advertise-peer-urls "http://127.0.0.1:$peer" \
    --initial-cluster "sweep=http://127.0.0.1:$peer" >"$logf" 2>&1 &
  echo $!
}

# start_broker WORK_DIR PORT LOG — Tansu with SQLite storage in WORK_DIR.
start_broker() {
  local dir=$1 port=$2 logf=$3
  mkdir -p "$dir"
  (cd "$dir" && exec tansu broker --listener-url "tcp://127.0.0.1:$port" \
    --advertised-listener-url "tcp://127.0.0.1:$port" \
    --storage-engine "sqlite://tansu.db") >"$logf" 2>&1 &
  echo $!
}

# start_zookeeper DATA_DIR PORT LOG — a standalone ZooKeeper (Debian's
# package) on 127.0.0.1:PORT: its zoo.cfg and log4j.properties in
# DATA_DIR/conf, its snapshots and transaction log in DATA_DIR/data. Short
# ticks so that sessions may be as short as 1 s (2 ticks); up to 60 s.
start_zookeeper() {
  local dir=$1 port=$2 logf=$3
  mkdir -p "$dir/conf" "$dir/data"
  cat >"$dir/conf/zoo.cfg" <<CFG
tickTime=500
dataDir=$dir/data
clientPort=$port
clientPortAddress=127.0.0.1
admin.enableServer=false
maxSessionTimeout=60000
4lw.commands.whitelist=ruok,srvr
CFG
  cat >"$dir/conf/log4j.properties" <<'LOG4J'
log4j.rootLogger=${zookeeper.root.logger}
log4j.appender.CONSOLE=org.apache.log4j.ConsoleAppender
log4j.appender.CONSOLE.layout=org.apache.log4j.PatternLayout
log4j.appender.CONSOLE.layout.ConversionPattern=%d{ISO8601} - %-5p [%t:%C{1}@%L] - %m%n
LOG4J
  java -cp "$dir/conf:$ZOOKEEPER_CLASSPATH" -Dzookeeper.log.dir="$dir" -Dzookeeper.root.logger=INFO,CONSOLE \
    org.apache.zookeeper.server.ZooKeeperServerMain "$dir/conf/zoo.cfg" >"$logf" 2>&1 &
  echo $!
}
