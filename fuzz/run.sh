#!/usr/bin/env bash
# Runs every fuzz target for SECONDS each (default 60) and prints how many
# inputs each executed. JOBS=N runs N targets at a time (default 1; each
# libFuzzer process uses one core). Extra libFuzzer flags go in
# FUZZ_FLAGS (e.g. FUZZ_FLAGS=-max_len=70000). FUZZ_BUILD=--dev builds
# without optimisation: half the build time, a fraction of the executions
# per second, which suits CI's few-second smoke run and not the long runs.
#
#   fuzz/run.sh 600            # ten minutes per target, one after another
#   JOBS=2 fuzz/run.sh 60
#   FUZZ_BUILD=--dev JOBS=2 fuzz/run.sh 3     # what CI runs
#
# Needs the nightly toolchain and cargo-fuzz (`cargo install cargo-fuzz
# --locked --version 0.13.2`). Seeds are in seeds/TARGET and dictionaries in
# dicts/TARGET.dict (committed); what
# the fuzzer learns goes to corpus/TARGET, crashes to artifacts/TARGET, the
# logs to logs/TARGET.log (none of these committed). Exits 1 if any target
# crashed, leaked, or timed out on an input.
set -euo pipefail
cd "$(dirname "$0")"

seconds=${1:-60}
jobs=${JOBS:-1}
case $seconds in '' | *[!0-9]*) echo "usage: $0 SECONDS" >&2; exit 2 ;; esac

# Debug assertions on: integer overflow panics, so the fuzzer finds it.
# FUZZ_BUILD is word-split on purpose: it holds cargo-fuzz flags.
# shellcheck disable=SC2086
cargo +nightly fuzz build -a ${FUZZ_BUILD:-}
mapfile -t targets < <(cargo +nightly fuzz list)
mkdir -p logs

run_one() {
  local target=$1
  local dict=()
  mkdir -p "corpus/$target" "seeds/$target"
  # A dictionary of the target's tokens (JSON names, escapes), if it has one.
  [ -f "dicts/$target.dict" ] && dict=(-dict="dicts/$target.dict")
  # corpus/ first: libFuzzer writes new inputs to the first directory.
  # shellcheck disable=SC2086
  if cargo +nightly fuzz run -a ${FUZZ_BUILD:-} "$target" "corpus/$target" "seeds/$target" -- \
    -max_total_time="$seconds" -print_final_stats=1 -timeout=10 "${dict[@]}" ${FUZZ_FLAGS:-} \
    >"logs/$target.log" 2>&1; then
    echo ok >"logs/$target.status"
  else
    echo FAILED >"logs/$target.status"
  fi
}

running=0
for target in "${targets[@]}"; do
  rm -f "logs/$target.status"
  run_one "$target" &
  running=$((running + 1))
  if ((running >= jobs)); then
    wait -n || true
    running=$((running - 1))
  fi
done
wait

failed=0
printf '%-20s %8s %14s %10s\n' target result executions exec/s
for target in "${targets[@]}"; do
  log="logs/$target.log"
  status=$(cat "logs/$target.status" 2>/dev/null || echo FAILED)
  # libFuzzer's final stats: `stat::number_of_executed_units: N`, and
  # `#N DONE ... exec/s: R` (the last status line).
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
  rate=$(grep -o 'exec/s: [0-9]*' "$log" | tail -n 1 | cut -d' ' -f2)
  printf '%-20s %8s %14s %10s\n' "$target" "$status" "${execs:-?}" "${rate:-?}"
  if [ "$status" != ok ]; then
    failed=1
    grep -m 3 -E 'panicked at|ERROR: libFuzzer|ERROR: AddressSanitizer|Test unit written to' "$log" |
      sed 's/^/    /' || true
  fi
done
exit "$failed"
