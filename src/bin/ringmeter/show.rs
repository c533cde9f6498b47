//! Numbers as the CLI and the demo print them: durations with a unit, fractions as
//! percentages. `examples/demo.rs` includes this file too, with `#[path]`.

use std::fmt;

/// A duration in nanoseconds, shown as ns, µs, ms or s with three significant digits.
pub struct Ns(pub u64);

impl fmt::Display for Ns {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ns = self.0;
        let text = if ns < 1_000 {
            format!("{ns} ns")
        } else {
            const UNITS: [(f64, &str); 3] = [(1e3, "µs"), (1e6, "ms"), (1e9, "s")];
            let mut unit = if ns < 1_000_000 {
                0
            } else if ns < 1_000_000_000 {
                1
            } else {
                2
            };
            let mut value = ns as f64 / UNITS[unit].0;
            if value >= 999.5 && unit < 2 {
                // 999.9 µs would print as "1.00 ms": move up a unit instead.
                unit += 1;
                value = ns as f64 / UNITS[unit].0;
            }
            let decimals = if value < 10.0 {
                2
            } else if value < 100.0 {
                1
            } else {
                0
            };
            format!("{value:.decimals$} {}", UNITS[unit].1)
        };
        f.pad(&text)
    }
}

/// A fraction shown as a percentage.
pub struct Pct(pub f64);

impl fmt::Display for Pct {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&format!("{:.1}%", self.0 * 100.0))
    }
}
