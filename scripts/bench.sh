#!/usr/bin/env bash
# One command for every benchmark: the library's hot-path benches (benches/hot_path.rs) and
# the comparison against peer crates (benches/compare: the per-call benches and the engine
# scenarios: sustained throughput with drops, heap growth, drain rate, publication latency)
# and the library's heap per active operation (benches/memory.rs) and merge speed of stats and
# dump --rollup (benches/merge.rs, its records/s in bench-reps/repN.merge.log),
# REPS times (default 3), each repetition running the whole set in alternating order. Then
# scripts/bench_report.py writes the tables: per scenario the median of the repetitions'
# medians with their range (min–max), ratios taken within each repetition (then the median of
# those) to the rdtsc pair and to each peer, the dropped fractions, crate versions, CPU, date
# and load. Repeating the whole set, rather than trusting one pass, keeps one noisy minute on
# a shared machine from deciding a figure.
#
#   scripts/bench.sh                 # everything, REPS times (about 9 minutes per rep);
#                                    # rewrites docs/performance.md's and README.md's tables
#   REPS=1 scripts/bench.sh record   # a filter (criterion's, and the engine bench's by name);
#                                    # prints the tables only, docs untouched
#
# Needs jq and python3. Honours CARGO_TARGET_DIR (both packages build there); the logs go to
# $CARGO_TARGET_DIR/bench-reps/.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target}
target=$CARGO_TARGET_DIR
reps=${REPS:-3}
out=$target/bench-reps
cmp=benches/compare/Cargo.toml
rm -rf "$out"
mkdir -p "$out"

loadavg() { cut -d' ' -f1-3 /proc/loadavg; }

{
  echo "date=$(date -u '+%Y-%m-%d %H:%M UTC')"
  echo "cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//') (family $(grep -m1 'cpu family' /proc/cpuinfo | cut -d: -f2 | tr -d ' '), model $(grep -m1 '^model[[:space:]]*:' /proc/cpuinfo | cut -d: -f2 | tr -d ' '))"
  echo "cpus=$(nproc)"
  echo "clocksource=$(cat /sys/devices/system/clocksource/clocksource0/current_clocksource 2>/dev/null || echo '?')"
  echo "rustc=$(rustc --version)"
  echo "commit=$(git rev-parse --short HEAD)$(git diff --quiet HEAD -- src benches Cargo.toml || echo ' + local changes')"
  echo "reps=$reps"
  echo "filter=$*"
  echo "load_start=$(loadavg)"
} >"$out/info"
cat "$out/info"
echo

# Crate versions as resolved by the two lock files.
cargo metadata --format-version 1 >"$out/meta-lib.json"
cargo metadata --format-version 1 --manifest-path "$cmp" >"$out/meta-cmp.json"

cargo bench --bench hot_path --no-run >&2
cargo bench --bench memory --no-run >&2
cargo bench --bench merge --no-run >&2
cargo bench --manifest-path "$cmp" --no-run >&2

# Runs one criterion bench and keeps "<group>/<id> <median ns per iteration>" per scenario
# from the estimates this run wrote.
criterion() {
  local tag=$1
  shift
  local marker
  marker=$(mktemp)
  sleep 1 # estimates written by this run are newer than the marker
  "$@" >"$out/$tag.log" 2>&1 || {
    cat "$out/$tag.log" >&2
    exit 1
  }
  find "$target/criterion" -path '*/new/estimates.json' -newer "$marker" | sort | while read -r f; do
    id=${f#"$target/criterion/"}
    id=${id%/new/estimates.json}
    echo "$id $(jq '.median.point_estimate' "$f")"
  done >"$out/$tag.medians"
  rm -f "$marker"
}

for rep in $(seq 1 "$reps"); do
  echo "rep$rep start $(loadavg)" >>"$out/load"
  hot() { criterion "rep$rep.hot" cargo bench --bench hot_path -- "$@"; }
  peers() { criterion "rep$rep.cmp" cargo bench --manifest-path "$cmp" --bench compare -- "$@"; }
  if ((rep % 2)); then
    hot "$@"
    peers "$@"
  else
    peers "$@"
    hot "$@"
  fi
  cargo bench --manifest-path "$cmp" --bench engine -- "$@" >"$out/rep$rep.engine.log" 2>&1 || {
    cat "$out/rep$rep.engine.log" >&2
    exit 1
  }
  # Heap per active operation (the library's benches/memory.rs); it takes no criterion filter.
  if [ $# -eq 0 ]; then
    cargo bench --bench memory >"$out/rep$rep.memory.log" 2>&1 || {
      cat "$out/rep$rep.memory.log" >&2
      exit 1
    }
    # Merge speed of stats and dump --rollup (benches/merge.rs): records/s, kept in the log.
    cargo bench --bench merge >"$out/rep$rep.merge.log" 2>&1 || {
      cat "$out/rep$rep.merge.log" >&2
      exit 1
    }
  fi
  echo "rep$rep end $(loadavg)" >>"$out/load"
  echo "repetition $rep of $reps done" >&2
done
echo "load_end=$(loadavg)" >>"$out/info"

if [ $# -eq 0 ]; then
  python3 scripts/bench_report.py "$out" --write docs/performance.md README.md
else
  python3 scripts/bench_report.py "$out"
fi
