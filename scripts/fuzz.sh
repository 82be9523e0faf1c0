#!/usr/bin/env bash
# Coverage-guided fuzzing of Keel's decoders (see docs/fuzzing.md).
#
#   scripts/fuzz.sh TARGET|core|all BUDGET_SECONDS
#
# Builds the fuzz targets (fuzz/, libFuzzer through libfuzzer-sys on the stable
# toolchain, sanitizer-coverage instrumentation, no sanitizer), then runs each named
# target for its share of BUDGET_SECONDS (`all`: the budget split evenly, one target
# at a time, one process: one core). Prints executions and crashes per target and
# exits non-zero if any target crashed, timed out or ran out of memory.
#
#   scripts/fuzz.sh core 60           CI mode: under 3 minutes on one core, build included
#   scripts/fuzz.sh all 39600         long mode: 11 hours, 1 hour per target
#   (core: every target but net_config, which also builds keel-net)
#   scripts/fuzz.sh request 3600      one target
#   KEEL_FUZZ_ARGS="-dict=..." ...    extra libFuzzer flags
#   KEEL_FUZZ_ASAN=1 ...              with AddressSanitizer (RUSTC_BOOTSTRAP; see the doc)
#
# The working corpus grows in fuzz/corpus/<target>/ (not committed; a long run keeps
# what it found for the next), seeded from fuzz/seeds/<target>/; inputs in
# fuzz/regressions/<target>/ are run first. A failing input is written to
# fuzz/artifacts/<target>/ and its reproduction command is printed.
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ $# -ne 2 || ! "$2" =~ ^[0-9]+$ ]]; then
  echo "usage: scripts/fuzz.sh TARGET|core|all BUDGET_SECONDS" >&2
  exit 2
fi
what=$1
budget=$2

core_targets=(request connect txn_batch replay peer_msg membership quota_stats wal_segment snapshot snapshot_load)
# net_config also builds keel-net (compio and the rest): about a minute more.
all_targets=("${core_targets[@]}" net_config)
if [[ "$what" == all ]]; then
  targets=("${all_targets[@]}")
elif [[ "$what" == core ]]; then
  targets=("${core_targets[@]}")
else
  found=
  for t in "${all_targets[@]}"; do [[ "$t" == "$what" ]] && found=1; done
  if [[ -z "$found" ]]; then
    echo "unknown target $what; targets: ${all_targets[*]} (or core, all)" >&2
    exit 2
  fi
  targets=("$what")
fi

nice_cmd=(nice -n "${KEEL_FUZZ_NICE:-10}")
triple=$(rustc -vV | sed -n 's/^host: //p')
export CARGO_TARGET_DIR="${KEEL_FUZZ_TARGET_DIR:-$PWD/fuzz/target}"
asan_flags=
if [[ -n "${KEEL_FUZZ_ASAN:-}" ]]; then
  # AddressSanitizer on the stable toolchain: -Zsanitizer is unstable, so this leans
  # on RUSTC_BOOTSTRAP (a hack, opt-in, never in CI). It finds what a crash would not:
  # reads out of bounds in unsafe code (the snapshot mmap, rkyv's archive access).
  export RUSTC_BOOTSTRAP=1
  asan_flags="-Zsanitizer=address"
  CARGO_TARGET_DIR="$CARGO_TARGET_DIR/asan"
fi
# The coverage flags cargo-fuzz uses (no sanitizer): edge coverage as inline 8-bit
# counters with a PC table (libFuzzer's feedback) and comparison tracing (so it can
# solve magic numbers and lengths). All stable rustc flags. --target keeps them off
# build scripts and proc macros.
export RUSTFLAGS="-Cpasses=sancov-module \
 -Cllvm-args=-sanitizer-coverage-level=4 \
 -Cllvm-args=-sanitizer-coverage-inline-8bit-counters \
 -Cllvm-args=-sanitizer-coverage-pc-table \
 -Cllvm-args=-sanitizer-coverage-trace-compares \
 --cfg fuzzing -Cdebug-assertions -Coverflow-checks $asan_flags ${RUSTFLAGS_EXTRA:-}"

start=$(date +%s)
echo "== building fuzz targets ($triple)"
bins=()
features=fuzz
for t in "${targets[@]}"; do
  bins+=(--bin "$t")
  [[ "$t" == net_config ]] && features=fuzz,net
done
"${nice_cmd[@]}" cargo build --manifest-path fuzz/Cargo.toml --locked --release \
  --features "$features" --target "$triple" "${bins[@]}"
built=$(date +%s)
echo "build: $((built - start)) s"

share=$((budget / ${#targets[@]}))
((share < 5)) && share=5
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export KEEL_FUZZ_TMP="$tmp"

failed=0
summary=()
for t in "${targets[@]}"; do
  bin="$CARGO_TARGET_DIR/$triple/release/$t"
  corpus="fuzz/corpus/$t"
  artifacts="fuzz/artifacts/$t"
  mkdir -p "$corpus" "$artifacts" "fuzz/regressions/$t"
  before=$(ls "$artifacts" | wc -l)
  log="$tmp/$t.log"
  echo "== $t: ${share} s"
  rc=0
  # Corpus first (new inputs go there), then the seeds and regressions, read only.
  # Value profile: comparison operands count as coverage, so the fuzzer climbs
  # towards magic values and lengths (a planted bug behind one 32-bit constant is
  # found in under two minutes with it, not in five without).
  # shellcheck disable=SC2086
  "${nice_cmd[@]}" "$bin" "$corpus" "fuzz/seeds/$t" "fuzz/regressions/$t" \
    -max_total_time="$share" -timeout=10 -rss_limit_mb=2048 -max_len=65536 -use_value_profile=1 \
    -print_final_stats=1 -artifact_prefix="$artifacts/" \
    ${KEEL_FUZZ_ARGS:-} >"$log" 2>&1 || rc=$?
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  speed=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  units=$(ls "$corpus" | wc -l)
  new=$(($(ls "$artifacts" | wc -l) - before))
  status=ok
  if ((rc != 0 || new > 0)); then
    status="FAILED (exit $rc)"
    failed=1
    grep -E "panicked at|ERROR: libFuzzer|SUMMARY|Test unit written|^Base64" "$log" | head -20 || true
    for a in $(ls -t "$artifacts" | head -n "$((new > 0 ? new : 1))"); do
      echo "   reproduce: $bin $artifacts/$a"
    done
    cp "$log" "fuzz/artifacts/$t.log"
    echo "   log: fuzz/artifacts/$t.log"
  fi
  summary+=("$(printf '%-14s %12s execs %8s/s  corpus %6s  %s' "$t" "${execs:-?}" "${speed:-?}" "$units" "$status")")
done

echo "== fuzz summary (build $((built - start)) s, total $(($(date +%s) - start)) s)"
printf '%s\n' "${summary[@]}"
exit "$failed"
