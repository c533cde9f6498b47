#!/usr/bin/env bash
# Runs the window log's SIGKILL crash test N times (default 500) in a release build.
# Each run starts a child that writes windows, kills it at a random point, and checks that
# the log has at most a torn tail and holds every window the child reported flushed.
set -euo pipefail
cd "$(dirname "$0")/.."
runs="${1:-500}"
RINGMETER_CRASH_RUNS="$runs" cargo test --release --test it -- --nocapture \
  log_crash::sigkill_at_random_points_leaves_at_most_a_torn_tail
