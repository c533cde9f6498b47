#!/usr/bin/env bash
# Runs the hot-path benches REPS times (default 3) and prints the table docs/performance.md
# shows: per scenario the median of the repetitions' medians with their range, the ratio to
# the rdtsc pair taken within each repetition (then the median of those), and the dropped
# shares. Repeating the whole set, rather than trusting one pass, keeps one noisy minute on a
# shared machine from deciding a figure.
#
#   scripts/bench.sh                 # every scenario, REPS times (about 5 minutes per rep)
#   REPS=1 scripts/bench.sh drain    # a criterion filter; ratios need floor/rdtsc_pair too
#
# Needs jq and python3. Honours CARGO_TARGET_DIR; the logs go to $CARGO_TARGET_DIR/bench-reps/.
set -euo pipefail
cd "$(dirname "$0")/.."
target=${CARGO_TARGET_DIR:-target}
reps=${REPS:-3}
out=$target/bench-reps
rm -rf "$out"
mkdir -p "$out"

echo "date:    $(date -u '+%Y-%m-%d %H:%M UTC')"
echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')," \
  "$(nproc) CPUs, clocksource $(cat /sys/devices/system/clocksource/clocksource0/current_clocksource 2>/dev/null || echo '?')"
echo "rustc:   $(rustc --version)"
echo "commit:  $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- src benches Cargo.toml || echo ' + local changes')"
echo "reps:    $reps"
echo

cargo bench --bench hot_path --no-run >&2
for rep in $(seq 1 "$reps"); do
  marker=$(mktemp)
  sleep 1 # estimates written by this repetition are newer than the marker
  cargo bench --bench hot_path -- "$@" >"$out/rep$rep.log" 2>&1 || {
    cat "$out/rep$rep.log" >&2
    exit 1
  }
  # One line per scenario of this repetition: "<group>/<id> <median ns per iteration>".
  find "$target/criterion" -path '*/new/estimates.json' -newer "$marker" | sort | while read -r f; do
    id=${f#"$target/criterion/"}
    id=${id%/new/estimates.json}
    echo "$id $(jq '.median.point_estimate' "$f")"
  done >"$out/rep$rep.medians"
  rm -f "$marker"
  echo "repetition $rep of $reps done" >&2
done

python3 - "$out" "$reps" <<'EOF'
import re, statistics, sys

out, reps = sys.argv[1], int(sys.argv[2])
med = []    # per repetition: scenario -> median ns per iteration
drops = []  # per repetition: scenario -> dropped percentage
for rep in range(1, reps + 1):
    with open(f"{out}/rep{rep}.medians") as f:
        med.append({k: float(v) for k, v in (line.split() for line in f if line.strip())})
    d = {}
    with open(f"{out}/rep{rep}.log") as f:
        for line in f:
            m = re.match(r"ringmeter-bench: (\S+): .*\(([\d.]+)%\)", line)
            if m:
                d[m.group(1)] = float(m.group(2))
    drops.append(d)

ids = sorted(set().union(*med))
FLOOR = "floor/rdtsc_pair"

def spread(values, fmt):
    values = sorted(values)
    mid = statistics.median(values)
    if len(values) == 1:
        return fmt % mid
    return (fmt + " (" + fmt + "–" + fmt + ")") % (mid, values[0], values[-1])

def ratio(num, den):
    r = [m[num] / m[den] for m in med if num in m and den in m]
    return "%.2f" % statistics.median(r) if r else ""

print("| scenario | median ns/op (range over reps) | ÷ rdtsc pair | dropped |")
print("|---|---:|---:|---:|")
for i in ids:
    vals = [m[i] for m in med if i in m]
    if i.startswith("drain/"):
        rates = [1e9 * 1e6 / v / 1e6 for v in vals]
        print(f"| {i} | {spread([v / 1e6 for v in vals], '%.2f')} per event; "
              f"{spread(rates, '%.0f')} M events/s | | none (checked) |")
        continue
    d = [x[i] for x in drops if i in x]
    print(f"| {i} | {spread(vals, '%.2f')} | {ratio(i, FLOOR)} | "
          f"{spread(d, '%.2f') + '%' if d else ''} |")

print()
for label, num, den in [
    ("record_ns / bare slot write", "record/record_ns_manual_flushed", "floor/bare_slot_write"),
    ("2 threads / 1 thread (flushed)", "threads/guard_2t_manual_flushed", "threads/guard_1t_manual_flushed"),
    ("2 threads / 1 thread (aggregator thread)", "threads/guard_2t_ring2p20_agg", "threads/guard_1t_ring2p20_agg"),
]:
    r = ratio(num, den)
    if r:
        print(f"- {label}: {r} (median of the per-repetition ratios)")
EOF
