"""Reads an HdrHistogram interval log with the Python `hdrhistogram` package and prints one
line per tag: tag, total count, then the values at the 50th, 90th, 99th and 99.9th
percentiles and the maximum, space-separated. Used by tests/interop.rs."""
import sys

from hdrh.histogram import HdrHistogram
from hdrh.log import HistogramLogReader

totals = {}
reader = HistogramLogReader(sys.argv[1], HdrHistogram(1, 60 * 10**9, 3))
while True:
    h = reader.get_next_interval_histogram()
    if h is None:
        break
    tag = h.get_tag() or "-"
    if tag in totals:
        totals[tag].add(h)
    else:
        totals[tag] = h
for tag in sorted(totals):
    h = totals[tag]
    values = [h.get_value_at_percentile(p) for p in (50.0, 90.0, 99.0, 99.9)]
    print(tag, h.get_total_count(), *values, h.get_max_value())
