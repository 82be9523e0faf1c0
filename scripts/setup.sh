#!/usr/bin/env bash
# Install what Keel's Python test suite needs on a fresh Debian machine that
# already has the Rust toolchain and python3/pip:
#   * Apache ZooKeeper 3.8 (Debian package `zookeeper`, the behavioural oracle)
#     and a Java runtime (the package depends on default-jre);
#   * the clients the suite runs besides kazoo: a JDK, ZooKeeper's Java client,
#     Curator (framework, recipes, discovery), the C client library and headers;
#   * iproute2 and iptables (the fault suite's network namespaces and partitions);
#   * kazoo and pytest, pinned, via pip.
# Idempotent: skips whatever is already present.  Quiet unless something fails.
# Exits non-zero on failure.
set -euo pipefail

KAZOO_VERSION="2.10.0"   # 2.10.0 and 2.11.0 both work on Python 3.8-3.12; neither has addWatch/TTL
PYTEST_VERSION="8.3.5"

log() { printf 'setup: %s\n' "$*"; }
die() { printf 'setup: error: %s\n' "$*" >&2; exit 1; }

if [ "$(id -u)" -eq 0 ]; then
    SUDO=""
elif command -v sudo >/dev/null 2>&1; then
    SUDO="sudo -n"
else
    SUDO=""
fi

have_pkg() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }

apt_updated=0
apt_install() {
    command -v apt-get >/dev/null 2>&1 || die "apt-get not found (this script targets Debian)"
    if [ "$apt_updated" -eq 0 ]; then
        $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null \
            || die "apt-get update failed"
        apt_updated=1
    fi
    log "installing $*"
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" \
        >/tmp/keel-setup-apt.log 2>&1 || { tail -20 /tmp/keel-setup-apt.log >&2; die "apt-get install $* failed"; }
}

# --- ZooKeeper + Java ------------------------------------------------------
if ! have_pkg zookeeper || [ ! -e /usr/share/java/zookeeper.jar ]; then
    apt_install zookeeper
fi
if ! command -v java >/dev/null 2>&1; then
    apt_install default-jre-headless
fi
[ -e /usr/share/java/zookeeper.jar ] || die "/usr/share/java/zookeeper.jar missing after install"
[ -e /usr/share/java/slf4j-simple.jar ] || apt_install libslf4j-java
java -version >/dev/null 2>&1 || die "java does not run"

# --- Other clients the tests run --------------------------------------------
# ZooKeeper's Java client and Curator (compiled against with javac: tests/java/),
# the C client (built with gcc: tests/c/), zkCli.sh (in `zookeeper`, above).
client_pkgs=()
for p in default-jdk-headless libzookeeper-java libcurator-framework-java \
         libcurator-recipes-java libcurator-discovery-java zookeeper-bin libzookeeper-mt-dev \
         gcc libc6-dev; do
    have_pkg "$p" || client_pkgs+=("$p")
done
if [ "${#client_pkgs[@]}" -gt 0 ]; then
    apt_install "${client_pkgs[@]}"
fi
command -v javac >/dev/null 2>&1 || die "javac not found after installing default-jdk-headless"
for f in /usr/share/java/curator-recipes.jar /usr/share/java/curator-x-discovery.jar \
         /usr/include/zookeeper/zookeeper.h /usr/share/zookeeper/bin/zkCli.sh; do
    [ -e "$f" ] || die "$f missing after install"
done

# --- Network namespaces for the fault suite (tests/faults/) -----------------
# `ip netns` / veth / bridge (iproute2) and iptables inside the namespaces the
# suite creates; without them (or without root) those tests skip.
net_pkgs=()
for p in iproute2 iptables; do
    have_pkg "$p" || net_pkgs+=("$p")
done
if [ "${#net_pkgs[@]}" -gt 0 ]; then
    apt_install "${net_pkgs[@]}"
fi
for c in ip iptables; do
    command -v "$c" >/dev/null 2>&1 || [ -x "/usr/sbin/$c" ] || [ -x "/sbin/$c" ] \
        || die "$c missing after installing iproute2/iptables"
done

# --- Patroni + PostgreSQL (tests/test_patroni.py, slow: KEEL_TEST_LONG=1) -------
# Debian's patroni (3.0) with its ZooKeeper DCS (python3-kazoo for the system
# python it runs on) and PostgreSQL's server binaries.
pg_pkgs=()
for p in patroni python3-kazoo postgresql-15; do
    have_pkg "$p" || pg_pkgs+=("$p")
done
if [ "${#pg_pkgs[@]}" -gt 0 ]; then
    apt_install "${pg_pkgs[@]}"
fi
command -v patroni >/dev/null 2>&1 || die "patroni missing after install"
[ -x /usr/lib/postgresql/15/bin/postgres ] || die "/usr/lib/postgresql/15/bin/postgres missing after install"

# --- rustfmt and clippy (scripts/test.sh's tidy step) --------------------------
if ! cargo fmt --version >/dev/null 2>&1 || ! cargo clippy --version >/dev/null 2>&1; then
    command -v rustup >/dev/null 2>&1 || die "cargo fmt / cargo clippy missing and no rustup to add them"
    rustup component add rustfmt clippy >/tmp/keel-setup-rustup.log 2>&1 \
        || { tail -5 /tmp/keel-setup-rustup.log >&2; die "rustup component add rustfmt clippy failed"; }
fi

# --- Python packages ---------------------------------------------------------
PY="${PYTHON:-python3}"
command -v "$PY" >/dev/null 2>&1 || die "$PY not found"

py_has() {  # module version
    "$PY" - "$1" "$2" <<'EOF' >/dev/null 2>&1
import importlib.metadata as md, sys
sys.exit(0 if md.version(sys.argv[1]) == sys.argv[2] else 1)
EOF
}

want=()
py_has kazoo "$KAZOO_VERSION" || want+=("kazoo==$KAZOO_VERSION")
py_has pytest "$PYTEST_VERSION" || want+=("pytest==$PYTEST_VERSION")
if [ "${#want[@]}" -gt 0 ]; then
    log "pip installing ${want[*]}"
    pipargs=(-m pip install --quiet --disable-pip-version-check "${want[@]}")
    if ! "$PY" "${pipargs[@]}" 2>/tmp/keel-setup-pip.log; then
        if grep -q externally-managed /tmp/keel-setup-pip.log; then
            "$PY" "${pipargs[@]}" --break-system-packages 2>/tmp/keel-setup-pip.log \
                || { cat /tmp/keel-setup-pip.log >&2; die "pip install failed"; }
        else
            cat /tmp/keel-setup-pip.log >&2
            die "pip install failed"
        fi
    fi
fi
"$PY" -c "import kazoo, pytest" || die "kazoo/pytest not importable by $PY"

log "ok: $(java -version 2>&1 | head -1); $(javac -version 2>&1); zookeeper $(dpkg-query -W -f='${Version}' zookeeper 2>/dev/null); kazoo $KAZOO_VERSION; pytest $PYTEST_VERSION"
