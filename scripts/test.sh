#!/usr/bin/env bash
# The whole test suite: Rust unit and integration tests, then the Python suites
# (kazoo integration, differential against Apache ZooKeeper 3.8, bad input) against a
# real `keel` process. Run scripts/setup.sh once first on a fresh machine.
#
#   scripts/test.sh            everything (servers: keel and zookeeper)
#   KEEL_TEST_SERVERS=keel scripts/test.sh    skip the ZooKeeper side
#   KEEL_TEST_LONG=1 scripts/test.sh          also the slow/soak tests
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TERM_COLOR=never
echo "== tidy: cargo fmt --check, cargo clippy -D warnings, no import cycles"
cargo fmt --all -- --check
python3 scripts/tidy_cycles.py
cargo clippy --workspace --all-targets --locked -q -- -D warnings

echo "== building keel (release)"
cargo build --release --locked -p keel-net --bin keel
export KEEL_BIN="$PWD/target/release/keel"

echo "== cargo tests"
cargo test --workspace --locked -q 2>&1 | tee target/cargo-test.log
grep -q "test result: ok" target/cargo-test.log

echo "== python tests"
servers="${KEEL_TEST_SERVERS:-keel,zookeeper}"
if ! ls /usr/share/java/zookeeper*.jar >/dev/null 2>&1 && [[ "$servers" == *zookeeper* ]]; then
  echo "Apache ZooKeeper is not installed: run scripts/setup.sh (differential tests need it)" >&2
  exit 1
fi
markers=()
if [[ -z "${KEEL_TEST_LONG:-}" ]]; then markers=(-m "not slow"); fi
KEEL_TEST_SERVERS="$servers" python3 -m pytest tests -q -p no:cacheprovider "${markers[@]}"
