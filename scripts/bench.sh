#!/usr/bin/env bash
# Runs the hot-path benches once and prints the medians, the ratios against the rdtsc pair of
# the same run, and the dropped shares, as the table docs/performance.md shows.
#
#   scripts/bench.sh                 # every scenario (about 4 minutes)
#   scripts/bench.sh timed_op        # a criterion filter; ratios need floor/rdtsc_pair too
#
# Needs jq and awk. Honours CARGO_TARGET_DIR; the full log goes to $CARGO_TARGET_DIR/bench.log.
set -euo pipefail
cd "$(dirname "$0")/.."
target=${CARGO_TARGET_DIR:-target}
log=$target/bench.log
mkdir -p "$target"
marker=$(mktemp)
trap 'rm -f "$marker"' EXIT

echo "date:    $(date -u '+%Y-%m-%d %H:%M UTC')"
echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(nproc) CPUs," \
  "clocksource $(cat /sys/devices/system/clocksource/clocksource0/current_clocksource 2>/dev/null || echo '?')"
echo "rustc:   $(rustc --version)"
echo "commit:  $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- src benches Cargo.toml || echo ' + local changes')"
echo

sleep 1 # estimates written by this run are newer than the marker
cargo bench --bench hot_path -- "$@" 2>&1 | tee "$log" >&2

# One line per scenario of this run: "<group>/<id> <median ns per iteration>".
medians=$(
  find "$target/criterion" -path '*/new/estimates.json' -newer "$marker" | sort | while read -r f; do
    id=${f#"$target/criterion/"}
    id=${id%/new/estimates.json}
    echo "$id $(jq '.median.point_estimate' "$f")"
  done
)

echo
echo "| scenario | median ns/op | ÷ rdtsc pair | dropped |"
echo "|---|---:|---:|---:|"
awk -v drops="$(grep '^ringmeter-bench:' "$log" || true)" '
  BEGIN {
    n = split(drops, lines, "\n")
    for (i = 1; i <= n; i++) {
      split(lines[i], w, " ")
      id = w[2]; sub(/:$/, "", id)
      pct = lines[i]; sub(/.*\(/, "", pct); sub(/\).*/, "", pct)
      dropped[id] = pct
    }
  }
  { med[$1] = $2; order[++k] = $1 }
  END {
    floor = med["floor/rdtsc_pair"]
    for (i = 1; i <= k; i++) {
      id = order[i]
      if (id ~ /^drain\//) {
        printf "| %s | %.2f per event (%s M events/s) | | none (checked) |\n", id, med[id] / 1e6, sprintf("%.0f", 1e3 * 1e6 / med[id])
        continue
      }
      ratio = (floor > 0) ? sprintf("%.2f", med[id] / floor) : ""
      printf "| %s | %.2f | %s | %s |\n", id, med[id], ratio, (id in dropped) ? dropped[id] : ""
    }
    if (("record/record_ns_manual_flushed" in med) && ("floor/bare_slot_write" in med))
      printf "\nrecord_ns / bare slot write: %.2f\n", med["record/record_ns_manual_flushed"] / med["floor/bare_slot_write"]
    if (("threads/guard_1t_manual_flushed" in med) && ("threads/guard_2t_manual_flushed" in med))
      printf "2 threads / 1 thread (flushed): %.2f\n", med["threads/guard_2t_manual_flushed"] / med["threads/guard_1t_manual_flushed"]
    if (("threads/guard_1t_ring2p20_agg" in med) && ("threads/guard_2t_ring2p20_agg" in med))
      printf "2 threads / 1 thread (aggregator thread): %.2f\n", med["threads/guard_2t_ring2p20_agg"] / med["threads/guard_1t_ring2p20_agg"]
  }
' <<<"$medians"
