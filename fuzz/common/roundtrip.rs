//! The structured round trip of the `record_roundtrip` fuzz target, shared with the test
//! that runs it on stable (`tests/it/log_fuzz_replay.rs` includes this file with `#[path]`):
//! a record drawn by `arbitrary`, encoded, decoded, re-encoded.

use std::sync::Arc;

use arbitrary::Arbitrary;
use ringmeter::alert::{Alert, AlertState, Condition};
use ringmeter::hdrhistogram::Histogram;
use ringmeter::log::{
    DictEntry, EngineEvent, EngineEventKind, Exemplar, Record, SamplingMode, WindowRecord,
};
use ringmeter::{OpStats, ProcessSample, ProcessStats};

/// A record as the fuzzer draws it.
#[derive(Arbitrary, Debug)]
pub enum Input {
    Dictionary(Vec<(u32, String)>),
    Window {
        op_id: u32,
        index: u64,
        start: u64,
        length: u64,
        counts: [u64; 12],
        mean: u32,
        sampling: (u8, u32),
        unsampled: u64,
        slow: u64,
        exemplars: Vec<(u64, u64, u64)>,
        kinds: Vec<(String, u64)>,
        values: Vec<u32>,
    },
    Event(u8, u64, String),
    Unknown(u8, Vec<u8>),
    Alert {
        rule: String,
        operation: String,
        firing: bool,
        /// Condition kind (mod 3) and its threshold parts.
        condition: (u8, u32, u64),
        value: Option<i64>,
        calls: u64,
        window: (u64, u64, u64),
        windows_breached: u32,
    },
    Process {
        unix_ns: u64,
        /// Resident, virtual, heap, CPU user, CPU system, threads, open and maximum
        /// descriptors, start.
        figures: [Option<u64>; 9],
        rises: u32,
        growing: bool,
    },
}

/// The record `input` describes, if it is one a writer can encode.
pub fn build(input: Input) -> Option<Record> {
    Some(match input {
        Input::Dictionary(v) => Record::Dictionary(
            v.into_iter()
                .filter(|(_, n)| n.len() <= u16::MAX as usize)
                .map(|(id, n)| DictEntry {
                    id,
                    name: Arc::from(n),
                })
                .collect(),
        ),
        Input::Window {
            op_id,
            index,
            start,
            length,
            counts: c,
            mean,
            sampling,
            unsampled,
            slow,
            exemplars,
            kinds,
            values,
        } => {
            let mut histogram = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3).ok()?;
            for v in values {
                histogram.saturating_record(u64::from(v).max(1));
            }
            Record::Window(Box::new(WindowRecord {
                op_id,
                op: Arc::from(""),
                index,
                start_unix_ns: start,
                length_ns: length,
                stats: {
                    let mut st = OpStats::default();
                    st.count = c[0];
                    st.errors = c[1];
                    st.slow = c[2];
                    st.dropped = c[3];
                    st.late = c[4];
                    st.min_ns = c[5];
                    st.max_ns = c[6];
                    st.mean_ns = f64::from(mean);
                    st.stddev_ns = f64::from(mean) / 2.0;
                    st.p50_ns = c[7];
                    st.p90_ns = c[8];
                    st.p95_ns = c[9];
                    st.p99_ns = c[10];
                    st.p999_ns = c[11];
                    st
                },
                unsampled,
                sampling: match sampling.0 % 4 {
                    0 => SamplingMode::All,
                    1 => SamplingMode::Every(sampling.1),
                    2 => SamplingMode::Probability(f64::from(sampling.1) / f64::from(u32::MAX)),
                    _ => SamplingMode::CountOnly,
                },
                slow_threshold_ns: slow,
                slowest: exemplars
                    .into_iter()
                    .map(|(d, e, t)| Exemplar::new(d, e, t))
                    .collect(),
                error_kinds: kinds
                    .into_iter()
                    .filter(|(k, _)| k.len() <= u16::MAX as usize)
                    .map(|(k, n)| (Arc::from(k), n))
                    .collect(),
                histogram,
                stored_histogram: None,
            }))
        }
        Input::Event(k, t, d) => Record::Event(EngineEvent {
            kind: match k {
                1 => EngineEventKind::Start,
                2 => EngineEventKind::ConfigChange,
                3 => EngineEventKind::Shutdown,
                k => EngineEventKind::Other(k),
            },
            unix_ns: t,
            detail: d,
        }),
        Input::Unknown(k, payload) => Record::Unknown {
            kind: k.max(16),
            payload,
        },
        Input::Alert {
            rule,
            operation,
            firing,
            condition: (kind, x, y),
            value,
            calls,
            window: (start, end, since),
            windows_breached,
        } => {
            if rule.len() > usize::from(u16::MAX) || operation.len() > usize::from(u16::MAX) {
                return None;
            }
            // Finite values only: the decoded record is compared with `==`.
            let fraction = f64::from(x) / f64::from(u32::MAX);
            Record::Alert(Alert {
                rule: Arc::from(rule),
                operation: Arc::from(operation),
                state: if firing {
                    AlertState::Firing
                } else {
                    AlertState::Resolved
                },
                condition: match kind % 3 {
                    0 => Condition::ErrorRate { above: fraction },
                    1 => Condition::Percentile {
                        quantile: fraction.max(f64::MIN_POSITIVE),
                        above_ns: y,
                    },
                    _ => Condition::SlowCalls { above: y },
                },
                value: value.map(|v| v as f64),
                calls,
                window_start_unix_ns: start,
                window_end_unix_ns: end,
                since_unix_ns: since,
                windows_breached,
            })
        }
        Input::Process {
            unix_ns,
            figures: f,
            rises,
            growing,
        } => {
            let mut s = ProcessSample::default();
            let set = |s: ProcessSample,
                       v: Option<u64>,
                       with: fn(ProcessSample, u64) -> ProcessSample| {
                v.map_or(s, |v| with(s, v))
            };
            s = set(s, f[0], ProcessSample::with_resident_bytes);
            s = set(s, f[1], ProcessSample::with_virtual_bytes);
            s = set(s, f[2], ProcessSample::with_heap_bytes);
            if let (Some(user), Some(system)) = (f[3], f[4]) {
                s = s.with_cpu_ns(user, system);
            }
            s = set(s, f[5], ProcessSample::with_threads);
            if let Some(open) = f[6] {
                s = s.with_fds(open, f[7]);
            }
            s = set(s, f[8], ProcessSample::with_start_unix_ns);
            Record::Process(ProcessStats::new(unix_ns, s, rises, growing))
        }
    })
}

/// Encode then decode gives the record back.
///
/// # Panics
/// When it does not.
pub fn check(input: Input) {
    let Some(record) = build(input) else { return };
    let mut buf = Vec::new();
    let kind = record.encode(&mut buf).expect("encodes");
    let back = Record::decode(kind, &buf).expect("decodes");
    // Byte-exact round trip (covers every stored field, `unsampled` included)...
    let mut again = Vec::new();
    back.encode(&mut again).expect("re-encodes");
    assert_eq!(again, buf);
    // ...and the decoded record equals the original where the types agree.
    if let (Record::Window(b), Record::Window(r)) = (&back, &record) {
        assert_eq!(b.unsampled, r.unsampled);
        assert_eq!(
            (&b.histogram, &b.slowest, &b.error_kinds),
            (&r.histogram, &r.slowest, &r.error_kinds)
        );
    } else {
        assert_eq!(back, record);
    }
}
