#!/usr/bin/env bash
# Runs every built fuzz target for a bounded time, seeded from its corpus in
# tests/fuzz/corpus/<target>/ (read-only: new inputs go to a scratch folder).
# Usage: run_fuzzers.sh BUILD_DIR SECONDS
set -euo pipefail
build=$1
seconds=$2
src=$(cd "$(dirname "$0")" && pwd)
status=0
# Fuzzers live beside their module (tests/fuzz/, or a daemon's folder).
for bin in $(find "$build" -type f -perm -u+x -name '*_fuzz' | sort); do
  name=$(basename "$bin")
  scratch=$(mktemp -d)
  seeds=()
  [[ -d "$src/corpus/$name" ]] && seeds+=("$src/corpus/$name")
  echo "fuzz: $name for ${seconds}s"
  if ! "$bin" -max_total_time="$seconds" -rss_limit_mb=2048 -print_final_stats=1 \
       -artifact_prefix="$scratch/" "$scratch" "${seeds[@]}" > "$scratch/log" 2>&1; then
    echo "fuzz: $name FAILED"; tail -50 "$scratch/log"; status=1
  else
    grep -E "stat::number_of_executed_units|Done" "$scratch/log" | tail -2
  fi
  rm -rf "$scratch"
done
exit $status
