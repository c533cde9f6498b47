#!/usr/bin/env bash
# The window log's crash-and-damage suite in one command, in a release build, every part
# under a timeout:
#   - SIGKILL at random points (log_crash): RUNS runs (default 500; `CI=1` without RUNS: 40),
#     cycling through the durability policies and the mapping/pwrite write paths;
#   - the damage cases with their expected verdicts (log_damage), the recovery properties
#     (log_recovery), power loss, two writers, fork, read-only and full disk (log_writer,
#     log_engine), and the reader's fuzz seeds (log_fuzz_replay);
#   - the reader's work bounds on crafted segments (unit tests in src/log/reader.rs);
#   - the CLI on damaged, closed and live logs, and with a closed or full standard output
#     (cli).
# Usage: scripts/crash-test.sh [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ $# -ge 1 ]]; then
  runs="$1"
elif [[ -n "${CI:-}" ]]; then
  runs=40
else
  runs=500
fi
limit=$(( 600 + runs * 2 ))
cargo test --release --all-features --test it --no-run
RINGMETER_CRASH_RUNS="$runs" timeout "$limit" \
  cargo test --release --all-features --test it -- --nocapture \
  log_crash::sigkill_at_random_points_leaves_at_most_a_torn_tail
timeout 900 cargo test --release --all-features --test it -- \
  log_damage:: log_recovery:: log_writer:: log_engine:: log_fuzz_replay:: cli::
timeout 300 cargo test --release --all-features --lib -- log::
